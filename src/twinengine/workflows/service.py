"""Runs of workflows: submit (ad hoc or a twin's workflow), read, list, cancel, delete, logs, results.

Submitting validates the graph against the registry and binds the parameters before anything is stored;
the run then waits in the ``queued`` state for a worker (``daemons/workflows_runner``).
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session, defer

from twinengine.auth.policy import allowed, require
from twinengine.auth.principal import Principal
from twinengine.auth.scopes import twin_ids_only, twin_limit
from twinengine.catalog import service as catalog
from twinengine.compute.hooks import before_queue, requeue_check
from twinengine.errors import (
    ProcessParameterInvalid,
    ProcessParameterMissing,
    RunLocked,
    RunNotFound,
    WorkflowNotFound,
)
from twinengine.store.base import utcnow
from twinengine.twins import service as twins
from twinengine.twins.models import Twin
from twinengine.workflows.apps import read_app_file
from twinengine.workflows.graph import graph_hash, parse_graph, parse_process, validate
from twinengine.workflows.initial_state import starting_values
from twinengine.workflows.models import RunLog, RunNode, Trigger, WorkflowRun
from twinengine.workflows.schemas import RunOptions, RunStart, RunStatus
from twinengine.workflows.site_queues import site_queues
from twinengine.workflows.udp import user_registry

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = [
    "ENGINE_PARAMETERS",
    "bind_parameters",
    "cancel_run",
    "check_graph",
    "delete_run",
    "get_run",
    "list_logs",
    "list_runs",
    "listable",
    "nodes_of",
    "start_run",
    "stop_and_delete_run",
    "submit",
    "submit_twin_workflow",
    "submit_what_if",
    "twin_workflow_process",
    "update_run",
]

# Parameters every graph may use without declaring them; filled from the run's twin.
ENGINE_PARAMETERS = ("twin_id", "twin_name", "twin_parameters", "run_id")


def _new_id() -> str:
    return f"run-{secrets.token_hex(8)}"


def bind_parameters(process: dict[str, Any], given: dict[str, Any], engine_values: dict[str, Any]) -> dict[str, Any]:
    """Declared parameters: given value, else default, else ProcessParameterMissing; types checked."""
    declared = {p["name"]: p for p in process.get("parameters") or []}
    unknown = [k for k in given if k not in declared and k not in ENGINE_PARAMETERS]
    if unknown:
        raise ProcessParameterInvalid(f"parameters.{unknown[0]}: the process declares no such parameter "
                                      f"(it declares {', '.join(declared) or 'none'})",
                                      details=[{"loc": f"parameters.{unknown[0]}", "msg": "unknown parameter"}])
    bound = dict(engine_values)
    for name, spec in declared.items():
        if name in given:
            value = given[name]
            schema = spec.get("schema")
            if schema:
                from jsonschema import Draft7Validator  # here: the API answers before it imports jsonschema

                validator = Draft7Validator({"anyOf": schema} if isinstance(schema, list) else schema)
                error = next(iter(validator.iter_errors(value)), None)
                if error is not None:
                    raise ProcessParameterInvalid(
                        f"parameters.{name}: {error.message}",
                        details=[{"loc": f"parameters.{name}", "msg": error.message}])
            bound[name] = value
        elif "default" in spec:
            bound[name] = spec["default"]
        elif not spec.get("optional", False) and name not in engine_values:
            raise ProcessParameterMissing(f"parameters.{name}: the process requires a value",
                                          details=[{"loc": f"parameters.{name}", "msg": "required"}])
    return bound


def _engine_values(twin: Twin | None, run_id: str) -> dict[str, Any]:
    values: dict[str, Any] = {"run_id": run_id}
    if twin is not None:
        values.update(twin_id=twin.id, twin_name=twin.name, twin_parameters=dict(twin.parameters))
    return values


def twin_workflow_process(session: Session, engine: WorkflowEngine, twin: Twin, workflow: str) -> dict[str, Any]:
    """The process graph of a workflow the twin's app declares, read from the published archive."""
    manifest = twins.manifest_for(session, twin)
    spec = manifest.workflows.get(workflow)
    if spec is None:
        raise WorkflowNotFound(f"app {twin.app_name}@{twin.app_version} declares no workflow {workflow!r} "
                               f"(it declares {', '.join(manifest.workflows) or 'none'})")
    row = catalog.get_app_version(session, principal=engine.system, name=twin.app_name, version=twin.app_version)
    raw = json.loads(read_app_file(engine.blobs, row, spec.process_graph))
    process = parse_process(raw)
    extra = spec.model_extra or {}
    if "retry" in extra and isinstance(extra["retry"], dict):
        process = {**process, "x-retry": extra["retry"]}
    return process


def submit(session: Session, engine: WorkflowEngine, *, principal: Principal, process: Any,
           parameters: dict[str, Any] | None = None, twin_ref: str | None = None, workflow: str | None = None,
           kind: str = "run", title: str | None = None, description: str | None = None,
           options: RunOptions | None = None, queue: bool = True, trigger_id: str | None = None,
           start: dict[str, Any] | None = None) -> WorkflowRun:
    """Validate and store a run; ``queue`` puts it in line for a worker (else it waits as ``created``);
    ``start``: the twin's state it starts from, recorded with it (``workflows.initial_state``)."""
    require(principal, "workflow.run")
    twin = None
    if twin_ref is not None:
        twin = twins.get_twin(session, principal=principal, ref=twin_ref, action="twin.operate")
    process = parse_process(process)
    run_id = _new_id()
    graph = parse_graph(process)
    validate(graph, user_registry(session, engine.registry, principal.name),
             app_version=twin.app_version if twin else None,
             available=set(ENGINE_PARAMETERS) if twin else {"run_id"})
    bound = bind_parameters(process, parameters or {}, _engine_values(twin, run_id))
    opts = (options or RunOptions()).model_dump(mode="json")
    opts["role"] = principal.role.value
    if twin is not None:
        opts["on_twin"] = True  # placed on a site that can read the twin (not another engine)
    if start is not None:
        opts["start"] = start
    if "x-retry" in process:
        opts.setdefault("manifest_retry", process["x-retry"])
    if queue:
        before_queue(session, principal=principal, options=opts, process=process,  # the site, quotas
                     app=f"{twin.app_name}@{twin.app_version}" if twin else None, queues=site_queues)
    now = utcnow()
    run = WorkflowRun(id=run_id, kind=kind, owner=principal.name, title=title, description=description,
                      twin_id=twin.id if twin else None, twin_name=twin.name if twin else None,
                      app=f"{twin.app_name}@{twin.app_version}" if twin else None, workflow=workflow,
                      process=process, graph_sha256=graph_hash(process), parameters=bound, options=opts,
                      trigger_id=trigger_id, status=RunStatus.QUEUED if queue else RunStatus.CREATED,
                      progress=0.0, assets=[], created_at=now, updated_at=now, queued_at=now if queue else None,
                      executor=engine.executor.name)
    session.add(run)
    session.flush()
    session.execute(insert(RunNode), [{"run_id": run_id, "node_id": node.id, "process_id": node.process_id,
                                       "namespace": node.namespace, "status": "pending", "attempts": 0}
                                      for node in graph.nodes.values()])
    return run


def submit_twin_workflow(session: Session, engine: WorkflowEngine, *, principal: Principal, twin_ref: str,
                         workflow: str, parameters: dict[str, Any] | None = None,
                         options: RunOptions | None = None, trigger_id: str | None = None,
                         start: RunStart | None = None) -> WorkflowRun:
    """A run of a workflow the twin's app declares, starting from the twin's state where the app maps it
    (``initial_state``; ``start`` picks another state or none)."""
    twin = twins.get_twin(session, principal=principal, ref=twin_ref, action="twin.operate")
    process = twin_workflow_process(session, engine, twin, workflow)
    given = dict(parameters or {})
    from_state, record = starting_values(session, principal=principal, twin=twin,
                                         manifest=twins.manifest_for(session, twin), workflow=workflow,
                                         given=given, start=start)
    return submit(session, engine, principal=principal, process=process, parameters={**from_state, **given},
                  twin_ref=twin.id, workflow=workflow, title=f"{workflow} of {twin.name}", options=options,
                  trigger_id=trigger_id, start=record)


def submit_what_if(session: Session, engine: WorkflowEngine, *, principal: Principal, twin_ref: str,
                   workflow: str, parameters: dict[str, Any] | None = None, options: RunOptions | None = None,
                   name: str | None = None, at_revision: int | None = None,
                   start: RunStart | None = None, keep_for: timedelta | None = None) -> WorkflowRun:
    """A what-if: the workflow runs on a new fork of the twin, never on the twin, so nothing its graph writes
    (``update_twin_state``, ``save_forecast``) can reach the twin's own state. Fork and run are one unit:
    a refused run leaves no fork. ``keep_for``: the fork expires then (``what_if_ttl``; the expiry loop deletes
    it), so what-ifs stay to be looked at again and never pile up."""
    origin = twins.get_twin(session, principal=principal, ref=twin_ref, action="twin.read")
    twin_workflow_process(session, engine, origin, workflow)  # an unknown workflow is refused before forking
    with session.begin_nested():  # a refused run takes its fork back with it, whatever the caller does next
        fork = twins.fork_twin(session, principal=principal, ref=origin.id,
                               name=name or twins.free_name(session, f"{origin.name}-what-if"),
                               at_revision=at_revision, parameters=None,
                               description=f"what-if of {origin.name} ({workflow})")
        if keep_for is not None:
            fork.expires_at = utcnow() + keep_for
        # a what-if is the one run asked for: the app's triggers (new rain, a schedule) never run the fork again
        session.execute(update(Trigger).where(Trigger.twin_id == fork.id).values(enabled=False))
        return submit_twin_workflow(session, engine, principal=principal, twin_ref=fork.id, workflow=workflow,
                                    parameters=parameters, options=options, start=start)


def _visible(principal: Principal, run: WorkflowRun) -> bool:
    """Its owner's (and admins'); a run of a twin, to a token limited to some twins, only through that twin
    (``get_run`` asks the twin): the run is the twin's data, which such a token reaches only on its twins."""
    if principal.is_admin:
        return True
    return run.owner == principal.name and (principal.twins is None or run.twin_id is None)


def get_run(session: Session, *, principal: Principal, run_id: str, for_update: bool = False) -> WorkflowRun:
    """The run, if the principal may see it: its own, or one of a twin it may read (``twin.read``, the rule
    ``list_runs`` filters a twin's runs by). ``for_update``: its row locked first, as every change of a run
    (start, cancel, change, delete) takes it, before its nodes or its log: changes of one run then take turns
    in one order (two at once had locked the run and its nodes in opposite orders, and PostgreSQL ended one
    as a deadlock), and a run deleted meanwhile is not found."""
    run = session.get(WorkflowRun, run_id, with_for_update=for_update) if for_update else session.get(
        WorkflowRun, run_id)
    if run is None or not _visible(principal, run):
        if run is not None and run.twin_id is not None:
            twin = session.get(Twin, run.twin_id)
            if twin is not None and allowed(principal, "twin.read", twin):
                return run
        raise RunNotFound(f"no run {run_id!r}")
    return run


# What a list of runs never reads: values, graphs, parameters and provenance are read one run at a time
# (``get_run``); reading one of them from a listed row raises, so no listing can carry them by mistake.
_NOT_LISTED = tuple(defer(column, raiseload=True) for column in (
    WorkflowRun.value, WorkflowRun.process, WorkflowRun.parameters, WorkflowRun.options, WorkflowRun.provenance,
    WorkflowRun.lineage))


def listable(principal: Principal, query: Any) -> Any:
    """``query`` of runs narrowed to those the principal may list without naming a twin: all for admins, else
    its own, and with a token limited to some twins, those of no twin and of those twins (by id if known)."""
    if principal.is_admin:
        return query
    query = query.where(WorkflowRun.owner == principal.name)
    only = twin_limit(principal)
    if only is not None:
        limited = sorted(only) if twin_ids_only(principal) else select(Twin.id).where(
            or_(Twin.id.in_(only), Twin.name.in_(only)))
        query = query.where(or_(WorkflowRun.twin_id.is_(None), WorkflowRun.twin_id.in_(limited)))
    return query


def list_runs(session: Session, *, principal: Principal, twin_ref: str | None = None, kind: str | None = None,
              status: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[WorkflowRun], int]:
    """A page of the runs the caller may list, newest first, without the columns of ``_NOT_LISTED``."""
    query = select(WorkflowRun).options(*_NOT_LISTED)
    if twin_ref is not None:
        twin = twins.get_twin(session, principal=principal, ref=twin_ref)
        query = query.where(WorkflowRun.twin_id == twin.id)
    else:
        query = listable(principal, query)
    if kind:
        query = query.where(or_(*[WorkflowRun.kind == k for k in kind.split(",")]))
    if status:
        query = query.where(WorkflowRun.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(WorkflowRun.created_at.desc(), WorkflowRun.id).limit(limit).offset(offset))
    return list(rows), total


def nodes_of(session: Session, run: WorkflowRun) -> list[RunNode]:
    return list(session.scalars(select(RunNode).where(RunNode.run_id == run.id).order_by(RunNode.started_at,
                                                                                         RunNode.node_id)))


def start_run(session: Session, *, principal: Principal, run_id: str) -> WorkflowRun:
    """Queue a created (or finished, canceled, failed) run again; a queued or running one stays as it is."""
    run = get_run(session, principal=principal, run_id=run_id, for_update=True)
    if run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        return run
    requeue_check(session, owner=run.owner, options=run.options)
    now = utcnow()
    session.execute(update(RunNode).where(RunNode.run_id == run.id).values(
        status="pending", attempts=0, seconds=None, error=None, started_at=None, finished_at=None))
    run.status, run.progress, run.error, run.cancel_requested = RunStatus.QUEUED, 0.0, None, False
    run.assets, run.value, run.provenance, run.lineage = [], None, None, None
    run.queued_at, run.started_at, run.finished_at, run.updated_at = now, None, None, now
    session.flush()
    return run


def cancel_run(session: Session, *, principal: Principal, run_id: str) -> WorkflowRun:
    run = get_run(session, principal=principal, run_id=run_id, for_update=True)
    require(principal, "workflow.cancel", run)
    now = utcnow()
    if run.status in (RunStatus.QUEUED, RunStatus.CREATED):
        run.status, run.finished_at = RunStatus.CANCELED, now
        session.add(RunLog(run_id=run.id, level="info", message=f"canceled by {principal.name} before it ran"))
    elif run.status == RunStatus.RUNNING:
        run.cancel_requested = True
        session.add(RunLog(run_id=run.id, level="info", message=f"cancel requested by {principal.name}"))
    run.updated_at = now
    session.flush()
    return run


def update_run(session: Session, engine: WorkflowEngine, *, principal: Principal, run_id: str,
               title: str | None = None, description: str | None = None, process: Any = None) -> WorkflowRun:
    run = get_run(session, principal=principal, run_id=run_id, for_update=True)
    require(principal, "workflow.cancel", run)
    if run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        raise RunLocked(f"run {run.id} is {run.status}; cancel it before changing it")
    if title is not None:
        run.title = title
    if description is not None:
        run.description = description
    if process is not None:
        parsed = parse_process(process)
        validate(parse_graph(parsed), user_registry(session, engine.registry, run.owner), available={"run_id"})
        run.process, run.graph_sha256 = parsed, graph_hash(parsed)
        session.execute(delete(RunNode).where(RunNode.run_id == run.id))
        graph = parse_graph(parsed)
        session.add_all(RunNode(run_id=run.id, node_id=n.id, process_id=n.process_id, namespace=n.namespace,
                                status="pending", attempts=0) for n in graph.nodes.values())
    run.updated_at = utcnow()
    session.flush()
    return run


def delete_run(session: Session, engine: WorkflowEngine, *, principal: Principal, run_id: str) -> None:
    run = get_run(session, principal=principal, run_id=run_id, for_update=True)
    require(principal, "workflow.cancel", run)
    if run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        raise RunLocked(f"run {run.id} is {run.status}; cancel it before deleting it")
    session.delete(run)
    session.flush()
    engine.results.delete(run.id)


def stop_and_delete_run(engine: WorkflowEngine, *, principal: Principal, run_id: str, wait: float = 30.0) -> None:
    """openEO's ``DELETE /jobs/{id}``: "computations are stopped and computed results are deleted". A queued run
    is canceled at once; a running one is asked to stop (its sandboxed work is killed), and deleted once its
    executor has ended it, waited for outside any unit of work. One that has not stopped within ``wait`` seconds
    stays, canceled, and the answer says to repeat the request."""
    import time

    with engine.db.session() as session:
        run = get_run(session, principal=principal, run_id=run_id, for_update=True)
        require(principal, "workflow.cancel", run)
        active = run.status in (RunStatus.QUEUED, RunStatus.RUNNING)
        if active:
            cancel_run(session, principal=principal, run_id=run_id)
    if active:
        if run_id in engine.executing:
            engine.cancel([run_id])
        deadline = time.monotonic() + wait
        while True:
            with engine.db.session(readonly=True) as session:
                status = session.scalar(select(WorkflowRun.status).where(WorkflowRun.id == run_id))
            if status not in (RunStatus.QUEUED, RunStatus.RUNNING):
                break
            if time.monotonic() > deadline:
                raise RunLocked(f"run {run_id} was asked to stop and has not stopped within {wait:g} s; its cancel "
                                "stands: repeat the request to delete it once it has")
            time.sleep(0.1)
    with engine.db.session() as session:
        delete_run(session, engine, principal=principal, run_id=run_id)


def list_logs(session: Session, *, principal: Principal, run_id: str, offset: int | None = None,
              level: str | None = None, limit: int = 1000) -> list[RunLog]:
    run = get_run(session, principal=principal, run_id=run_id)
    query = select(RunLog).where(RunLog.run_id == run.id)
    if offset is not None:
        query = query.where(RunLog.id > offset)
    if level in ("error", "warning", "info"):
        wanted = {"error": ["error"], "warning": ["error", "warning"], "info": ["error", "warning", "info"]}[level]
        query = query.where(or_(*[RunLog.level == w for w in wanted]))
    return list(session.scalars(query.order_by(RunLog.id).limit(limit)))


def check_graph(engine: WorkflowEngine, process: Any, *, session: Session | None = None,
                owner: str | None = None) -> None:
    """Validation without running (openEO ``/validation``): raises the first problem found.

    With a session and an owner, the owner's user-defined processes can be called."""
    parsed = parse_process(process)
    registry = user_registry(session, engine.registry, owner) if session is not None and owner else engine.registry
    validate(parse_graph(parsed), registry, available={"run_id"})

