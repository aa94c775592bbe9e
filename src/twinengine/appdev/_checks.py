"""The engine-side items of ``twin app test``: functions on arrival, app processes, training, workflows.

Each goes through the engine's own parts on the local engine: the app's sandboxed workers, the state
service's validation, the training queue and the workflow runner (``run_now``, as ``mode: sync`` does).
"""

from __future__ import annotations

import json
import math
import re
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinengine.appdev._items import Failed, Run
from twinengine.appdev.local import SAMPLES
from twinengine.auth.principal import SYSTEM
from twinengine.catalog.manifest import Manifest
from twinengine.catalog.state_keys import base_of
from twinengine.errors import TwinEngineError
from twinengine.ml.schemas import FINAL
from twinengine.workers.process import app_place

if TYPE_CHECKING:
    from twinengine.appdev.local import LocalEngine

__all__ = ["place_in", "run_functions", "run_processes", "run_training", "run_workflows"]

TRAINING_TIMEOUT = 600.0


def place_in(text: str, package: str) -> str | None:
    """``package/module.py:12`` of the innermost app frame named in ``text`` (a traceback or a message)."""
    found = app_place(text)
    if found:
        return found
    frames = re.findall(rf'File "[^"]*/({re.escape(package)}/[^"]+)", line (\d+)', text)
    if frames:
        return f"{frames[-1][0]}:{frames[-1][1]}"
    at = re.findall(r"\(at ([^()\s]+\.py:\d+)\)", text)
    return at[-1] if at else None


def _failed(error: str, where: str | None = None) -> Exception:
    return Failed(error, where)


def run_functions(run: Run, local: LocalEngine, sha: str, manifest: Manifest, twin_id: str,
                  counts: dict[str, int]) -> None:
    for name, spec in manifest.functions.items():
        if not counts.get(spec.stream):
            run.skip(f"function {name}", f"no sample records for stream {spec.stream} (data/{spec.stream}.jsonl)")
            continue
        with run.item(f"function {name}"):
            calls = _apply(local, sha, manifest, twin_id, name)
            if not calls:
                raise _failed(f"the sample records of {spec.stream} make no call under its trigger "
                              f"({spec.trigger.kind})", f"functions.{name}.trigger")


def _apply(local: LocalEngine, sha: str, manifest: Manifest, twin_id: str, name: str) -> int:
    """Call function ``name`` on the records of its stream, as the function worker would (same header, same
    answers to the worker's questions), then check and write its effects as state revisions."""
    from twinengine.daemons.streams_functions import app_line, take_effects
    from twinengine.ml.functions import ChampionModels
    from twinengine.streams.arrays import to_python
    from twinengine.streams.functions import FunctionContext, record_place, select_kept_calls
    from twinengine.streams.hub import stream_key
    from twinengine.streams.join import Joiner
    from twinengine.streams.publish import append_published, check_published
    from twinengine.twins import state
    from twinengine.twins.models import Twin
    from twinengine.twins.schemas import StateKind
    from twinengine.twins.validation import write_of

    rt, spec = local.rt, manifest.functions[name]
    table = rt.streams.read(stream_key(twin_id, spec.stream), start=0, limit=100_000,
                            time_field=manifest.streams[spec.stream].time_field)
    records = to_python(table) if table is not None else []
    skipped: list[int] = []
    if spec.join is not None:  # every sample record has arrived: nothing waits
        joined = Joiner(manifest, spec.stream, spec.join)(rt.streams, twin_id, table, records, now=math.inf)
        records, skipped = joined.records, joined.skipped
    calls, _used = select_kept_calls(spec.trigger, records, (), skipped)
    champions = ChampionModels(rt)
    model = None
    if spec.model is not None:
        model = {"slot": "|".join((twin_id, sha, spec.model)), "version": champions.version(twin_id, sha, spec.model)}
    code = rt.app_code.get(sha, manifest)
    with rt.db.session() as session:
        twin = session.get(Twin, twin_id)
        assert twin is not None
        ctx = FunctionContext(twin_id=twin.id, twin_name=twin.name, function=name, parameters=dict(twin.parameters),
                              read_state=partial(state.read_state, session, twin))

        def answer(question: dict[str, Any]) -> Any:
            if question.get("ask") == "state":
                return ctx.read_state()
            if question.get("ask") == "model" and spec.model is not None:
                recipe = champions.recipe(twin_id, sha, spec.model, str(question.get("version")))
                return {"entrypoint": manifest.models[spec.model].entrypoint, **recipe}
            raise ValueError(f"the worker asked for {question.get('ask')!r}")

        header = {"entrypoint": spec.entrypoint, "model": model, "seconds": 60.0,
                  "twin": {"id": twin.id, "name": twin.name, "function": name, "parameters": dict(twin.parameters),
                           "properties": sorted(manifest.state)}}
        pending = [records for records, _ in calls]
        while pending:
            results, failed = code.functions(header, pending, ask=answer)
            for call_records, result in zip(pending, results, strict=False):
                take_effects(ctx, result)
                append_published(rt.streams, twin.id, check_published(manifest, spec, ctx.published))
                ctx.published = []
                for update in ctx.updates:
                    try:
                        writes = {k: write_of(f"reported.{k}", v, manifest.state.get(base_of(k)), update.timestamp)
                                  for k, v in update.values.items()}
                        values = state.validate_write(manifest, {StateKind.REPORTED: writes,
                                                                 StateKind.DESIRED: {}})
                    except TwinEngineError as exc:  # say where, as the function worker's dead letters do
                        raise _failed(f"update_state: {exc.message}; "
                                      f"{record_place(call_records, manifest.streams[spec.stream].key)}",
                                      app_line(update.place) or f"functions.{name}") from None
                    state.append_revision(session, twin, values, author=f"function:{name}",
                                          message=update.message or name, manifest=manifest)
                ctx.applied += ctx.updates
                ctx.updates = []
            if failed is not None:
                trace = str(failed.get("trace", ""))
                raise _failed(f"call {len(calls) - len(pending) + len(results) + 1} of {len(calls)}: "
                              f"{failed.get('error')}; "
                              f"{record_place(pending[len(results)], manifest.streams[spec.stream].key)}",
                              place_in(trace, manifest.package_name))
            if not results:
                raise _failed("the worker ran no call")
            pending = pending[len(results):]
        for request in ctx.workflow_requests:
            if request["workflow"] not in manifest.workflows:
                raise _failed(f"start_workflow: {request['workflow']!r} is not a workflow of the app",
                              f"functions.{name}")
    return len(calls)


def run_processes(run: Run, local: LocalEngine, sha: str, manifest: Manifest) -> None:
    """Each indexed app process: called with ``data/processes.json``'s arguments, else left to the workflows
    that use it."""
    from sqlalchemy import select

    from twinengine.workflows.models import AppProcess

    rt = local.rt
    with rt.db.session(readonly=True) as session:
        ids = list(session.scalars(select(AppProcess.process_id).where(AppProcess.app_name == manifest.name,
                                                                       AppProcess.app_version == manifest.version)
                                   .order_by(AppProcess.process_id)))
    arguments = sample_arguments(local.folder)
    for process_id in ids:
        if process_id not in arguments:
            run.skip(f"process {process_id}", "no sample arguments in data/processes.json; called by the "
                                              "workflows that use it")
            continue
        with run.item(f"process {process_id}"):
            entry = rt.workflows.apps.find(manifest.name, process_id, manifest.version)
            if entry is None:
                raise _failed(f"process {process_id} is not indexed")
            try:
                entry.implementation(**arguments[process_id])
            except Exception as exc:
                raise _failed(f"{type(exc).__name__}: {exc}", place_in(str(exc), manifest.package_name)) from None


def run_training(run: Run, local: LocalEngine, manifest: Manifest, *, epochs: int) -> dict[str, str]:
    """One short training run of the app's first model on the twin's sample records. Returns why each model
    has no champion (a rejected gate, a failed or skipped run), for the workflows that ``predict`` with it."""
    from importlib.util import find_spec

    if not manifest.models:
        return {}
    name = next(iter(manifest.models))
    others = {n: f"twin app test trains only the first model ({name})" for n in list(manifest.models)[1:]}
    framework = {"sklearn": "sklearn", "scikit-learn": "sklearn", "keras": "keras",
                 "keras3": "keras"}.get(manifest.models[name].framework, "torch")
    if find_spec(framework) is None or find_spec("mlflow") is None:
        why = f"the ml extra ({framework}, mlflow) is not installed"
        run.skip(f"training {name}", why)
        return others | {name: f"training was skipped: {why}"}
    from twinengine.ml import service as ml_service
    from twinengine.ml.models import TrainingRun
    from twinengine.ml.schemas import TrainingRequest
    from twinengine.twins import service as twins

    rt = local.rt
    no_champion = others | {name: f"training {name} failed"}
    with run.item(f"training {name}"):
        with rt.db.session() as session:
            twin = twins.get_twin(session, principal=SYSTEM, ref=local.twin_name)
            row = ml_service.enqueue(session, twin, name, body=TrainingRequest(config={"epochs": epochs}),
                                     created_by=SYSTEM.name)
            run_id = row.id
        rt.ml.wake()
        deadline = time.monotonic() + TRAINING_TIMEOUT
        while True:
            with rt.db.session(readonly=True) as session:
                found = session.get(TrainingRun, run_id)
                assert found is not None
                status, error = found.status, found.error
            if status in FINAL or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if status != "succeeded":
            text = error or f"the run did not end within {TRAINING_TIMEOUT:g} s"
            raise _failed(text.strip().splitlines()[-1] if text.strip() else status,
                          place_in(text, manifest.package_name) or f"models.{name}.entrypoint")
        with rt.db.session(readonly=True) as session:
            decision = ml_service.run_decision(session, run_id)
        if decision is not None and not decision.accepted:  # trained, but the app's own gate said no
            no_champion[name] = f"the gate rejected version {decision.version} of {name} ({decision.reason})"
            raise _failed(f"the gate rejected version {decision.version}: {decision.reason}",
                          _gate_place(local, manifest, name))
        del no_champion[name]
    return no_champion


def _gate_place(local: LocalEngine, manifest: Manifest, model: str) -> str:
    """The line of the model's task module that declares its gate, else the model's manifest field."""
    module = manifest.models[model].entrypoint.partition(":")[0]
    relative = module.replace(".", "/") + ".py"
    try:
        lines = (local.folder / relative).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    line = next((n for n, text in enumerate(lines, 1) if re.search(r"\bgate\b\s*[=:]", text)), None)
    return f"{relative}:{line}" if line else f"models.{model}.entrypoint"


_NO_CHAMPION = re.compile(r"[^\s:]+\.([A-Za-z0-9_-]+) has no champion yet")


def run_workflows(run: Run, local: LocalEngine, manifest: Manifest, no_champion: dict[str, str] | None = None) -> None:
    """Each workflow of the app, run at once; one that ``predict``s with a model that has no champion says why
    (``no_champion``: model -> reason, from ``run_training``)."""
    from twinengine.workflows import service as workflows
    from twinengine.workflows.sync import run_now

    rt = local.rt
    for name in manifest.workflows:
        with run.item(f"workflow {name}"):
            with rt.db.session() as session:
                submitted = workflows.submit_twin_workflow(session, rt.workflows, principal=SYSTEM,
                                                           twin_ref=local.twin_name, workflow=name)
                run_id = submitted.id
            with rt.db.session() as session:
                done = run_now(rt.workflows, session, run_id)
                status, error = done.status, dict(done.error or {})
            if status != "finished":
                message = str(error.get("message") or error or status)
                lacking = _NO_CHAMPION.search(message)
                if lacking and (no_champion or {}).get(lacking.group(1)):
                    message += f": {(no_champion or {})[lacking.group(1)]}"
                raise _failed(message, place_in(message, manifest.package_name) or f"workflows.{name}")


def sample_arguments(folder: Path) -> dict[str, dict[str, Any]]:
    """``data/processes.json``: process id -> the arguments to call it with (optional)."""
    path = folder / SAMPLES / "processes.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}
