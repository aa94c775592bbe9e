"""OGC API - Processes over the engine: processes, executions as runs, jobs, results, deployed packages.

A process is the built-in ``echo`` or a deployed CWL application package. Executing one stores a run of the
engine (a one-node openEO graph calling ``echo`` or ``run_ogc_application_package``) with the caller's grants,
quotas and site, so a job is a run: it has the run's id, status, logs, provenance and results, it is in the
store before the answer is sent, and it outlives a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.errors import (
    DuplicateProcess,
    InvalidInput,
    PermissionDenied,
    Problem,
    ProcessNotFound,
    ValidationFailed,
)
from twinengine.processes.echo import ECHO
from twinengine.processes.models import DeployedProcess, ProcessJob
from twinengine.processes.nesting import Compiler
from twinengine.store.base import utcnow
from twinengine.workflows import service as runs
from twinengine.workflows.models import WorkflowRun

if TYPE_CHECKING:
    from twinengine.cwl.package import Package
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["BUILT_IN", "deploy", "describe", "execute", "job_of", "list_processes", "package_of",
           "process_graph", "undeploy"]

BUILT_IN: dict[str, dict[str, Any]] = {"echo": ECHO}
RESPONSES = ("raw", "document")
TRANSMISSIONS = ("value", "reference")


def list_processes(session: Session, *, limit: int, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Summaries of the built-in processes, then the deployed ones by id."""
    built_in = [_summary(p) for p in BUILT_IN.values()]
    total = len(built_in) + (session.scalar(select(func.count()).select_from(DeployedProcess)) or 0)
    page = built_in[offset:offset + limit]
    left = limit - len(page)
    if left > 0:
        rows = session.scalars(select(DeployedProcess).order_by(DeployedProcess.id)
                               .offset(max(0, offset - len(built_in))).limit(left))
        page += [_summary(r.process) for r in rows]
    return page, total


def _summary(process: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in process.items() if k not in ("inputs", "outputs")}


def describe(session: Session, process_id: str) -> dict[str, Any]:
    if process_id in BUILT_IN:
        return dict(BUILT_IN[process_id])
    row = session.get(DeployedProcess, process_id)
    if row is None:
        raise ProcessNotFound(f"no process {process_id!r}")
    return dict(row.process)


def runs_asynchronously(description: dict[str, Any], *, asked: bool) -> bool:
    """Whether an execution runs as a job (OGC API - Processes 1.0, the execution mode): asynchronously when
    the client asked so (``Prefer: respond-async``) and the process may run so, or when it may only run so;
    otherwise synchronously."""
    options = description.get("jobControlOptions") or ["sync-execute", "async-execute"]
    if asked:
        return "async-execute" in options
    return "sync-execute" not in options


def dismissable(session: Session, process_id: str) -> bool:
    """Whether the jobs of a process may be dismissed (its description lists ``dismiss``; an undeployed
    process's jobs may)."""
    try:
        return "dismiss" in (describe(session, process_id).get("jobControlOptions") or ["dismiss"])
    except ProcessNotFound:
        return True


def package_of(session: Session, *, principal: Principal, process_id: str) -> dict[str, Any]:
    """The CWL document a process was deployed with (built-in processes have none)."""
    require(principal, "app.read")
    row = session.get(DeployedProcess, process_id)
    if row is None:
        raise ProcessNotFound(f"no deployed process {process_id!r}" + (
            " (echo is built in: it has no package)" if process_id in BUILT_IN else ""))
    return dict(row.package)


# -- execution -----------------------------------------------------------------------------------------------


def _node(process_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The openEO node that executes ``process_id`` on ``arguments``."""
    if process_id in BUILT_IN:
        return {"process_id": process_id, "namespace": "ogc", "arguments": arguments}
    return {"process_id": "run_ogc_application_package", "arguments": {"package": process_id, "inputs": arguments}}


def process_graph(session: Session, process_id: str, inputs: Any, *, origin: str | None = None) -> dict[str, Any]:
    """The openEO process that executes ``process_id`` on ``inputs``, each checked against its description, and
    the processes nested in them (Part 3) as nodes before it."""
    compiler = Compiler(lambda pid: describe(session, pid), _checked_inputs, _node, origin)
    root = compiler.compile(process_id, inputs)
    compiler.nodes[root]["result"] = True
    return {"process_graph": compiler.nodes}


def execute(session: Session, engine: WorkflowEngine, *, principal: Principal, process_id: str, body: Any,
            asynchronous: bool, origin: str | None = None) -> WorkflowRun:
    """Store the run that executes ``body`` (an OGC execute request, processes nested in its inputs included:
    ``origin`` is this engine's URL they name) and its job; queued when ``asynchronous``, else created for the
    caller to run now (``workflows.sync``)."""
    description = describe(session, process_id)
    if not isinstance(body, dict):
        raise InvalidInput("body: an execute request (a JSON object with inputs) is required")
    graph = process_graph(session, process_id, body.get("inputs"), origin=origin)
    outputs = _checked_outputs(description, body.get("outputs"))
    response = body.get("response", "raw")
    if response not in RESPONSES:
        raise ValidationFailed.one("response", f"one of {', '.join(RESPONSES)} is required")
    run = runs.submit(session, engine, principal=principal, process=graph,
                      kind="job" if asynchronous else "sync", title=f"{process_id} (OGC API - Processes)",
                      queue=asynchronous)
    pinned = _pinned_app(session, process_id)
    if pinned is not None:
        run.app = pinned  # the app version the process is pinned to: in the run's provenance and its crate
    session.add(ProcessJob(run_id=run.id, process_id=process_id,
                           request={"outputs": outputs, "response": response}))
    session.flush()
    if asynchronous:
        engine.notify(session)
    return run


def _pinned_app(session: Session, process_id: str) -> str | None:
    if process_id in BUILT_IN:
        return None
    row = session.get(DeployedProcess, process_id)
    return row.app if row is not None else None


def _plain(value: Any) -> Any:
    """An input's value: a qualified value's ``value``, a reference as it is (``{"href": ...}``)."""
    if isinstance(value, dict) and "value" in value and "href" not in value:
        return value["value"]
    return value


def _checked_inputs(description: dict[str, Any], given: Any, where: str = "inputs",
                    nested: Callable[[Any], bool] = lambda _value: False) -> dict[str, Any]:
    """``given`` checked against the inputs ``description`` declares, each problem naming its place under
    ``where``; a value ``nested`` says is a nested process is kept as it is (checked as it compiles)."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ValidationFailed.one(where, "an object of inputs by id is required")
    declared: dict[str, Any] = description.get("inputs") or {}
    problems: list[Problem] = []
    for name in given:
        if name not in declared:
            problems.append(Problem(f"{where}.{name}", f"the process has no such input (it has "
                                                      f"{', '.join(declared) or 'none'})"))
    checked: dict[str, Any] = {}
    for name, spec in declared.items():
        if name not in given:
            if int(spec.get("minOccurs", 1)) > 0:
                problems.append(Problem(f"{where}.{name}", "required"))
            continue
        value = _plain(given[name])
        if nested(value):
            checked[name] = value
            continue
        schema = spec.get("schema") or {}
        if isinstance(value, dict) and "href" in value:
            if not isinstance(value["href"], str) or (schema.get("format") != "uri" and not _accepts_uri(schema)):
                problems.append(Problem(f"{where}.{name}", "a reference (href) is not accepted here"))
            checked[name] = {"href": value["href"]}
            continue
        from jsonschema import Draft7Validator  # here: the API answers before it imports jsonschema

        error = next(iter(Draft7Validator(schema).iter_errors(value)), None)
        if error is not None:
            at = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            problems.append(Problem(f"{where}.{name}{at}", error.message[:300]))
            continue
        checked[name] = value
    if problems:
        raise ValidationFailed(problems)
    return checked


def _accepts_uri(schema: dict[str, Any]) -> bool:
    items = schema.get("items") if schema.get("type") == "array" else None
    return isinstance(items, dict) and items.get("format") == "uri"


def _checked_outputs(description: dict[str, Any], given: Any) -> dict[str, dict[str, str]]:
    """The outputs asked for (all, by value, when none are named) with their transmission mode."""
    declared: dict[str, Any] = description.get("outputs") or {}
    if not given:
        return {name: {"transmissionMode": "value"} for name in declared}
    if not isinstance(given, dict):
        raise ValidationFailed.one("outputs", "an object of outputs by id is required")
    chosen: dict[str, dict[str, str]] = {}
    for name, spec in given.items():
        if name not in declared:
            raise ValidationFailed.one(f"outputs.{name}", f"the process has no such output (it has "
                                                          f"{', '.join(declared) or 'none'})")
        mode = (spec or {}).get("transmissionMode", "value") if isinstance(spec, dict) else "value"
        if mode not in TRANSMISSIONS:
            raise ValidationFailed.one(f"outputs.{name}.transmissionMode",
                                       f"one of {', '.join(TRANSMISSIONS)} is required")
        chosen[name] = {"transmissionMode": mode}
    return chosen


# -- jobs ----------------------------------------------------------------------------------------------------


def job_of(session: Session, *, principal: Principal, job_id: str) -> tuple[WorkflowRun, ProcessJob | None]:
    """A run the caller may see, with the OGC request that started it (None for runs started otherwise)."""
    run = runs.get_run(session, principal=principal, run_id=job_id)
    return run, session.get(ProcessJob, run.id)


# -- deploy, replace, undeploy (Part 2) ------------------------------------------------------------------------


def deploy(session: Session, *, principal: Principal, package: Package, app: tuple[str, str] | None = None,
           replace: str | None = None) -> DeployedProcess:
    """Deploy (or, with ``replace``, replace) a checked package as a process; its id is the package's. ``app``:
    the app version it is pinned to (``name@version`` and its archive's SHA-256); a replacement keeps the pin of
    the process it replaces unless it names another."""
    require(principal, "app.publish")
    process_id = replace or package.process_id
    if process_id in BUILT_IN:
        raise PermissionDenied(f"process {process_id!r} is built in and cannot be replaced")
    row = session.get(DeployedProcess, process_id, with_for_update=True)
    now = utcnow()
    if replace is None and row is not None:
        raise DuplicateProcess(f"a process {process_id!r} is deployed already: replace it (PUT) or undeploy it")
    if replace is not None:
        if row is None:
            raise ProcessNotFound(f"no deployed process {process_id!r}")
        _owned(principal, row)
    description = package.description(process_id)
    pinned = app if app is not None else _pin_of(row) if row is not None else None
    if pinned is not None:
        description["metadata"] = [
            {"role": "app", "title": "the app version this process is pinned to", "value": pinned[0]},
            {"role": "app-sha256", "title": "the SHA-256 of that app version's archive", "value": pinned[1]}]
    if row is None:
        row = DeployedProcess(id=process_id, created_at=now)
        session.add(row)
    row.version, row.owner = package.version, principal.name if replace is None else row.owner
    row.app = pinned[0] if pinned is not None else None
    row.title, row.description = package.label, package.doc
    row.package, row.package_sha256, row.process, row.updated_at = package.document, package.sha256, description, now
    session.flush()
    return row


def _pin_of(row: DeployedProcess) -> tuple[str, str] | None:
    if row.app is None:
        return None
    sha = next((str(m.get("value")) for m in row.process.get("metadata") or [] if m.get("role") == "app-sha256"), "")
    return row.app, sha


def undeploy(session: Session, *, principal: Principal, process_id: str) -> None:
    require(principal, "app.publish")
    if process_id in BUILT_IN:
        raise PermissionDenied(f"process {process_id!r} is built in and cannot be undeployed")
    row = session.get(DeployedProcess, process_id, with_for_update=True)
    if row is None:
        raise ProcessNotFound(f"no deployed process {process_id!r}")
    _owned(principal, row)
    session.delete(row)
    session.flush()


def _owned(principal: Principal, row: DeployedProcess) -> None:
    if not principal.is_admin and row.owner != principal.name:
        raise PermissionDenied(f"process {row.id!r} was deployed by someone else")
