"""The records of runs that are not process graphs: a training (or a tuning: a training that searched its
hyper-parameters first), a calibration, and a batch of assimilation cycles (the cycles one request ran). Each
names its request as its procedure, its seed, the records it read (by stream offsets), what it made and its
steps, so it can be run again and compared."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine._version import __version__
from twinengine.calibration.models import Calibration, CalibrationRun
from twinengine.catalog.models import AppVersion
from twinengine.compute.models import UsageRecord
from twinengine.crates.record import Input, ModelUse, Output, RunRecord, Step
from twinengine.crates.stream_inputs import RecordSelection, checksum_here, with_checksum
from twinengine.ml.models import GateDecision, TrainingRun
from twinengine.streams.checksum import RecordsChecksum
from twinengine.twin_assimilation.models import AssimilationCycle
from twinengine.twin_assimilation.packed import list_of
from twinengine.twins.models import Twin

__all__ = ["assimilation_record", "batch_of", "calibration_record", "json_output", "training_record"]


def json_output(name: str, value: Any, description: str) -> Output:
    """An output the crate makes from the store's rows (canonical JSON, so its checksum follows its values)."""
    content = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    return Output(name=name, size=len(content), sha256=hashlib.sha256(content).hexdigest(),
                  media_type="application/json", description=description, content=content)


def _app(session: Session, twin: Twin) -> tuple[str, str | None, dict[str, Any]]:
    row = session.get(AppVersion, twin.app_id)
    if row is None:
        return f"{twin.app_name}@{twin.app_version}", None, {}
    return f"{row.name}@{row.version}", row.archive_sha256, dict(row.manifest or {})


def _usage(session: Session, run_id: str) -> dict[str, float]:
    rows = list(session.scalars(select(UsageRecord).where(UsageRecord.run_id == run_id)))
    if not rows:
        return {}
    return {"core_seconds": sum(r.core_seconds for r in rows), "wall_seconds": sum(r.wall_seconds for r in rows)}


def _procedure(value: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return value, hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _taken(session: Session, engines: Any, found: Input, twin: Twin, selection: RecordSelection,
           sha256: Any, size: Any, records: Any) -> Input:
    """The input named by the checksum the run took, else by one taken now (``engines``: the runtime whose stream
    history is read; None leaves it without)."""
    if sha256:
        return with_checksum(found, selection, RecordsChecksum(sha256=str(sha256), records=int(records or 0),
                                                               bytes=int(size or 0)))
    selection = selection.model_copy(update={"taken": "crate"})
    return with_checksum(found, selection, checksum_here(session, engines, twin.id, selection)
                         if engines is not None else None)


def _training_input(session: Session, engines: Any, twin: Twin, stream: str, read: dict[str, Any],
                    selection: dict[str, Any]) -> Input:
    """The records a training read by offsets [start, end), flags it excluded left out."""
    start, end = read.get("start", selection.get("start", 0)), read.get("end", selection.get("end"))
    found = Input(id=f"stream:{twin.id}/{stream}", kind="records", name=f"{twin.name}/{stream}",
                  version=f"{start}-{end}", description=f"{read.get('records', '?')} records of stream {stream}, "
                                                        "offsets [start, end)",
                  properties={k: read[k] for k in ("start", "end", "records", "quality") if k in read})
    if end is None:
        return found
    excluded = set(read.get("exclude_quality") or ())
    kept = sorted({"good", "suspect", "bad"} - excluded) if excluded else None
    chosen = RecordSelection(twin=twin.name, stream=stream, ranges=[(int(start or 0), int(end))], quality=kept)
    return _taken(session, engines, found, twin, chosen, read.get("sha256"), read.get("bytes"), read.get("records"))


def training_record(session: Session, row: TrainingRun, twin: Twin, *, registry: Any = None,
                    engines: Any = None) -> RunRecord:
    """``registry``: the model registry (MLflow), read for the version's checksum and the effective config; None
    leaves them out. ``engines``: the runtime, whose stream history names a run's records by checksum when the run
    took none."""
    trigger = dict(row.trigger or {})
    tuning = trigger.get("kind") == "tune"
    app, app_sha, manifest = _app(session, twin)
    selection = dict((row.inputs or {}).get("selection") or {})
    read = {k: v for k, v in (row.inputs or {}).items() if k != "selection"}
    effective: dict[str, Any] = {}
    model_sha = None
    if registry is not None and row.model_version is not None:
        try:
            from twinengine.ml.registry import registered_name

            tags = registry.version(registered_name(twin.name, row.model), row.model_version).tags
            model_sha = tags.get("model.sha256")
            app, app_sha = tags.get("app", app), tags.get("code.sha256", app_sha)
        except Exception:  # the version is gone from the registry: the crate says what the engine kept
            model_sha = None
        if row.mlflow_run_id:
            try:
                effective = dict(registry.client.get_run(row.mlflow_run_id).data.params)
            except Exception:
                effective = {}
    spec = (manifest.get("models") or {}).get(row.model) or {}
    tune = {k: trigger.get(k) for k in ("trials", "parallel", "space", "metric", "direction")} if tuning else None
    procedure, sha = _procedure({"model": row.model, "entrypoint": spec.get("entrypoint"),
                                 "framework": spec.get("framework"), "config": row.config, "data": selection,
                                 "nproc": row.nproc, "tune": tune})
    seed = int(effective.get("seed", (row.config or {}).get("seed", 0)) or 0)
    decision = session.scalar(select(GateDecision).where(GateDecision.run_id == row.id).limit(1))
    outputs = [json_output("metrics.json", {"metrics": row.metrics, "history": row.history,
                                            **({"best": trigger.get("best"), "best_value": trigger.get("best_value")}
                                               if tuning else {})},
                           "final metrics and the history of the fit" + (" and the search" if tuning else ""))]
    models = []
    if row.model_version is not None:
        models.append(ModelUse(registered=f"{twin.name}.{row.model}", version=row.model_version, model=row.model,
                               sha256=model_sha, training_run=row.id, role="made",
                               gate=None if decision is None else "accepted" if decision.accepted else "rejected"))
        if model_sha:
            outputs.append(Output(name="model", size=0, sha256=model_sha, media_type="application/x-tar",
                                  carried=False, description=f"the model folder, registered as {twin.name}."
                                                             f"{row.model} version {row.model_version} (the "
                                                             "SHA-256 of its canonical tar)"))
    stream = read.get("stream") or selection.get("stream")
    inputs = [_training_input(session, engines, twin, str(stream), read, selection)] if stream else []
    record = RunRecord(
        id=row.id, kind="tuning" if tuning else "training",
        name=f"{'tuning and ' if tuning else ''}training of {row.model} for {twin.name}",
        description=f"{'hyper-parameter search, then ' if tuning else ''}training of model {row.model} of twin "
                    f"{twin.name} ({row.epoch} of {row.epochs} epochs)", status=row.status, owner=row.created_by,
        created=row.created_at, started=row.started_at, ended=row.finished_at, procedure=procedure,
        procedure_name="training.json", procedure_language="twinengine-training", procedure_sha256=sha,
        engine_version=__version__, app=app, app_sha256=app_sha, twin=twin.name, twin_id=twin.id,
        parameters={"config": row.config, "data": selection, "nproc": row.nproc,
                    **({"effective": effective} if effective else {})},
        seeds={"training": seed}, inputs=inputs, outputs=outputs, models=models,
        steps=[Step(id="tune-and-fit" if tuning else "fit", tool=str(spec.get("entrypoint") or row.model),
                    namespace=app, status="finished" if row.status == "succeeded" else row.status,
                    started=row.started_at, ended=row.finished_at,
                    arguments={"config": {"from_parameter": "config"}, "data": {"from_parameter": "data"},
                               "nproc": {"from_parameter": "nproc"}, **({"tune": tune} if tuning else {})},
                    description="the app's training task in its sandboxed worker, then the gate")],
        site=row.site or "local", executor="worker", usage=_usage(session, row.id),
        error={"message": row.error} if row.error else None,
        nondeterministic=("a search of more than one trial at once" if tuning and int(trigger.get("parallel") or 1) > 1
                          else None),
        rerun_of=(trigger.get("requested") or trigger).get("of") if isinstance(trigger.get("requested") or trigger,
                                                                            dict) else None)
    end = read.get("end")
    record.rerun = {"type": "training", "model": row.model, "twin": twin.name,
                    "body": {"config": row.config, "nproc": row.nproc,
                             "data": {**selection, **({"end": end} if end is not None else {})},
                             **({"tune": tune} if tuning else {})}}
    return record


def _observed(session: Session, engines: Any, twin: Twin, manifest: dict[str, Any], read: dict[str, Any],
              since: str | None, until: str | None, found: Input) -> Input:
    """The observations a calibration read in the window its runner kept, named by the checksum the runner took
    of them (a calibration before it was taken: one taken now)."""
    stream = ((manifest.get("calibration") or {}).get("observed") or {}).get("stream")
    if since is None or until is None or not stream:
        return found
    chosen = RecordSelection(twin=twin.name, stream=str(stream), ranges=[(0, None)], since=since, until=until)
    return _taken(session, engines, found, twin, chosen, read.get("sha256"), read.get("bytes"), read.get("records"))


def calibration_record(session: Session, row: Calibration, twin: Twin, *, engines: Any = None) -> RunRecord:
    """``engines``: the runtime, whose stream history names the observations read by their checksum."""
    app, app_sha, manifest = _app(session, twin)
    settings = dict(row.settings or {})
    request = {"method": row.method, "objective": row.objective, "seed": row.seed, "runs": row.max_runs,
               "seconds": row.max_seconds, "workers": row.workers, "params": list(settings.get("space") or {}),
               "bounds": {k: v[:2] for k, v in (settings.get("space") or {}).items()},
               "since": settings.get("since"), "until": settings.get("until"),
               "posterior_share": settings.get("posterior_share"), "site": settings.get("site")}
    procedure, sha = _procedure(request)
    runs = list(session.scalars(select(CalibrationRun).where(CalibrationRun.calibration_id == row.id)
                                .order_by(CalibrationRun.number)))
    names = list(settings.get("space") or {})
    result = dict(row.result or {})
    outputs = [json_output("runs.json", [{"number": r.number, "params": dict(zip(names, r.params, strict=False)),
                                          "score": r.score, "log_likelihood": r.log_likelihood} for r in runs],
                           "every model run: its parameters and scores"),
               json_output("result.json", {"summary": result.get("summary"), "stopped": result.get("stopped"),
                                           "best_score": row.best_score}, "the best parameters and the summary")]
    stopped = str(result.get("stopped") or "")
    read = settings.get("read") or {}  # the observations it read (kept by the runner from this engine version on)
    since, until = settings.get("since"), settings.get("until")
    if read and until is None:
        until = (datetime.fromisoformat(str(read["last"])) + timedelta(microseconds=1)).isoformat()
    if read and since is None:
        since = str(read["first"])
    record = RunRecord(
        id=row.id, kind="calibration", name=f"calibration of {twin.name}",
        description=f"{row.method} calibration of {', '.join(names)} of twin {twin.name} ({row.objective}, "
                    f"{row.runs_done} model runs)", status=row.status, owner=row.owner, created=row.created_at,
        started=row.created_at, ended=row.finished_at, procedure=procedure, procedure_name="calibration.json",
        procedure_language="twinengine-calibration", procedure_sha256=sha, engine_version=__version__, app=app,
        app_sha256=app_sha, twin=twin.name, twin_id=twin.id, parameters=request, seeds={"calibration": row.seed},
        inputs=[_observed(session, engines, twin, manifest, read, since if read else None, until if read else None,
                          Input(id=f"observations:{twin.id}", kind="observations", name=f"{twin.name} observations",
                                version=f"{since or 'start'}/{until or 'end'}", size=read.get("records"),
                                description=f"the twin's observed stream in the calibration's window"
                                            f"{', ' + str(read['records']) + ' records' if read else ''}"))],
        outputs=outputs,
        steps=[Step(id="calibrate", tool=row.method, namespace="engine", status="finished" if row.status == "done"
                    else row.status, started=row.created_at, ended=row.finished_at,
                    arguments={k: {"from_parameter": k} for k in request},
                    description=f"{row.runs_done} runs of the app's model by {row.method}")],
        site=settings.get("site") or "local", executor="worker", usage=_usage(session, row.id), error=row.error,
        nondeterministic="it stopped at its time budget, after as many runs as fitted in it"
        if "second" in stopped or "time" in stopped else None, rerun_of=settings.get("rerun_of"))
    record.rerun = {"type": "calibration", "twin": twin.name, "body": {
        k: v for k, v in {"method": row.method, "objective": row.objective, "seed": row.seed, "runs": row.max_runs,
                          "seconds": row.max_seconds, "workers": row.workers, "params": names,
                          "bounds": request["bounds"], "since": since, "until": until,
                          "posterior_share": settings.get("posterior_share")}.items() if v is not None}}
    return record


def batch_of(session: Session, first: AssimilationCycle) -> list[AssimilationCycle]:
    """The cycles one request ran, from ``first``: its usage record (``<twin>#<number>``) bounds them in time;
    without one, ``first`` alone."""
    usage = session.scalar(select(UsageRecord).where(UsageRecord.run_id == f"{first.twin_id}#{first.number}"[:40],
                                                     UsageRecord.kind == "assimilation").limit(1))
    if usage is None:
        return [first]
    query = select(AssimilationCycle).where(AssimilationCycle.twin_id == first.twin_id,
                                            AssimilationCycle.number >= first.number,
                                            AssimilationCycle.created_at <= usage.finished_at)
    return list(session.scalars(query.order_by(AssimilationCycle.number))) or [first]


def analyses(cycles: list[AssimilationCycle]) -> list[dict[str, Any]]:
    """What each cycle made, without its ids or revision numbers (a rerun's are others): the analysis ensemble,
    the observations it used and the innovations."""
    return [{"cycle": i, "valid_time": c.valid_time.isoformat(),
             "members": None if c.ensemble.get("members") is None else list_of(c.ensemble["members"]),
             "log_weights": c.ensemble.get("log_weights"), "names": c.ensemble.get("names"),
             "observations": c.observations, "innovations": c.innovations, "spread": c.spread}
            for i, c in enumerate(cycles)]


def merged(ranges: list[tuple[int, ...]]) -> list[tuple[int, int | None]]:
    """Offset ranges [first, end) as the fewest that hold the same offsets, in order."""
    out: list[tuple[int, int | None]] = []
    for first, end in sorted((r[0], r[1]) for r in ranges if r[1] > r[0]):
        last = out[-1] if out else None
        if last is not None and last[1] is not None and first <= last[1]:
            out[-1] = (last[0], max(last[1], end))
        else:
            out.append((first, end))
    return out


def _cycles_read(session: Session, engines: Any, twin: Twin, stream: str, ranges: list[tuple[int, ...]]) -> Input:
    """The observation records cycles read by stream offsets [first, end), named by their checksum taken now (the
    cycles keep the offsets, not the records)."""
    found = Input(id=f"stream:{twin.id}/{stream}", kind="observations", name=f"{twin.name}/{stream}",
                  version=f"{min(r[0] for r in ranges)}-{max(r[1] for r in ranges)}",
                  description="the observation records the cycles read, by stream offsets [first, end)")
    chosen = RecordSelection(twin=twin.name, stream=stream, ranges=merged(ranges), taken="crate")
    return _taken(session, engines, found, twin, chosen, None, None, None)


def assimilation_record(session: Session, first: AssimilationCycle, twin: Twin, *, engines: Any = None) -> RunRecord:
    """``engines``: the runtime, whose stream history names the observations read by their checksum."""
    cycles = batch_of(session, first)
    last = cycles[-1]
    app, app_sha, _ = _app(session, twin)
    request = {"method": first.method, "members": first.members, "seed": first.seed, "tuning": first.tuning,
               "cycles": len(cycles), "twin": twin.name}
    procedure, sha = _procedure(request)
    prior = first.ensemble.get("prior")
    started = _previous_time(session, first)
    steps, before = [], started
    for cycle in cycles:
        steps.append(Step(id=f"cycle-{cycle.number}", tool=cycle.method, namespace="engine", status="finished",
                          started=before, ended=cycle.created_at,
                          arguments={"valid_time": cycle.valid_time.isoformat(), "observations": cycle.obs_count,
                                     **{k: {"from_parameter": k} for k in ("method", "members", "seed", "tuning")}},
                          description=f"model steps of the ensemble to {cycle.valid_time.isoformat()}, then "
                                      f"the {cycle.method} analysis of {cycle.obs_count} observations"))
        before = cycle.created_at
    inputs = [_cycles_read(session, engines, twin, stream, [tuple(map(int, c.offsets[stream])) for c in cycles
                                                            if stream in c.offsets])
              for stream in sorted({s for c in cycles for s in c.offsets})]
    if prior:
        inputs.append(Input(id=f"cycle:{prior}", kind="state", name=f"prior ensemble of cycle {prior}",
                            description="the analysis ensemble of the cycle before (the batch's start)"))
    outputs = [json_output("analyses.json", analyses(cycles), "each cycle's analysis ensemble, observations and "
                                                              "innovations")]
    record = RunRecord(
        id=first.id, kind="assimilation", name=f"assimilation cycles {first.number}-{last.number} of {twin.name}",
        description=f"{len(cycles)} {first.method} assimilation cycles of twin {twin.name} with {first.members} "
                    "members", status="finished", owner=first.owner, created=started or first.created_at,
        started=started or first.created_at, ended=last.created_at, procedure=procedure,
        procedure_name="assimilation.json", procedure_language="twinengine-assimilation", procedure_sha256=sha,
        engine_version=__version__, app=app, app_sha256=app_sha, twin=twin.name, twin_id=twin.id,
        parameters=request, seeds={"assimilation": int(first.seed)}, inputs=inputs, outputs=outputs, steps=steps,
        site="local", executor="worker", usage=_usage(session, f"{twin.id}#{first.number}"[:40]))
    record.rerun = {"type": "assimilation", "twin": twin.name, "twin_id": twin.id, "cycles": len(cycles),
                    "revision_before": first.revision - 1, "method": first.method, "members": first.members,
                    "seed": int(first.seed)}
    return record


def _previous_time(session: Session, first: AssimilationCycle) -> datetime | None:
    """When the batch's request began: its usage record's start, else the cycle's own time."""
    usage = session.scalar(select(UsageRecord).where(UsageRecord.run_id == f"{first.twin_id}#{first.number}"[:40])
                           .limit(1))
    return usage.started_at if usage is not None else first.created_at
