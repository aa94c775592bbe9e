"""Run a run again: the same procedure (graph or request), app version, parameters, inputs (checked by checksum)
and seeds, as the same kind of run, on this engine; from the store, or from a crate made on another engine. The
rerun starts as its kind starts (queued, like any run of it) and its diff is read once it ended
(``diff_of``). A rerun never changes its twin: a workflow or ensemble of a twin runs as a hindcast from the
state revision the original started from (it writes no state), assimilation cycles run on a new fork of the twin
as of the revision before the original's first cycle. A ledger file per rerun (``<data_dir>/crates/reruns``)
names its original and keeps the crate it came from."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.crates.diff import compare
from twinengine.crates.package import CrateContents, pack, unpack
from twinengine.crates.record import RunRecord
from twinengine.crates.service import UNFINISHED, record_of
from twinengine.crates.stream_inputs import StreamChange, stream_changes
from twinengine.errors import Conflict, InvalidInput, NotFound, RunNotFinished
from twinengine.twins import service as twins

__all__ = ["diff_of", "ledger_of", "rerun"]

_ID = re.compile(r"^[A-Za-z0-9-]{1,40}$")


def _ledger(runtime: Any) -> Path:
    return Path(runtime.data_dir) / "crates" / "reruns"


def _keep(runtime: Any, new_id: str, original: RunRecord, crate: bytes | None, extra: dict[str, Any]) -> None:
    folder = _ledger(runtime)
    folder.mkdir(parents=True, exist_ok=True)
    if crate is None:  # from the store: the original as it is now, kept whole so the diff never depends on it again
        crate = pack(original)
    (folder / f"{new_id}.zip").write_bytes(crate)
    (folder / f"{new_id}.json").write_text(json.dumps({"original": original.id, "rerun": new_id, **extra}))


def ledger_of(runtime: Any, run_id: str) -> dict[str, Any] | None:
    """What the ledger says of a rerun (its original), or None for a run that is no rerun."""
    if not _ID.match(run_id):
        return None
    path = _ledger(runtime) / f"{run_id}.json"
    return dict(json.loads(path.read_text())) if path.is_file() else None


def _started(record: RunRecord) -> dict[str, Any] | None:
    """The original's record of the state it started from, kept as the rerun's (its parameters carry the
    values): a rerun from a revision is a hindcast, which writes nothing to the twin's state now."""
    start = record.start
    if not isinstance(start, dict) or "parameters" not in start:
        return None
    return {**start, "asked": "revision"} if start.get("revision") is not None else dict(start)


def _declared(record: RunRecord) -> dict[str, Any]:
    names = {p.get("name") for p in record.procedure.get("parameters") or [] if isinstance(p, dict)}
    return {k: v for k, v in record.parameters.items() if k in names}


def _hindcast(record: RunRecord) -> dict[str, Any] | None:
    start = record.start
    if isinstance(start, dict) and start.get("revision") is not None:
        return {"revision": int(start["revision"])}
    return None


def _check_app(session: Session, record: RunRecord) -> None:
    """The app version the original ran must be here, with the same archive."""
    if not record.app:
        return
    from sqlalchemy import select

    from twinengine.catalog.models import AppVersion

    name, _, version = record.app.partition("@")
    sha = session.scalar(select(AppVersion.archive_sha256).where(AppVersion.name == name,
                                                                 AppVersion.version == version))
    if sha is None:
        raise Conflict(f"cannot rerun {record.id}: the app version is gone ({record.app} is not published here)")
    if record.app_sha256 and sha != record.app_sha256:
        raise Conflict(f"cannot rerun {record.id}: {record.app} here is another archive (sha256 {sha[:12]}, the "
                       f"original ran {record.app_sha256[:12]})")


def _check_inputs(runtime: Any, record: RunRecord) -> None:
    """Each collection the original read must be here with the same SHA-256 (when the crate names one)."""
    from twinengine.crates.inputs import collection_input

    for item in record.inputs:
        if item.kind != "collection" or not item.sha256:
            continue
        if item.name not in runtime.collections.ids():
            raise Conflict(f"cannot rerun {record.id}: input collection {item.name} is not here")
        here = collection_input(runtime.collections, item.name, None)
        if here.sha256 is not None and here.sha256 != item.sha256:
            raise Conflict(f"cannot rerun {record.id}: an input changed: collection {item.name} here has sha256 "
                           f"{here.sha256[:12]}, the original read {item.sha256[:12]}")


def _workflow(session: Session, runtime: Any, principal: Principal, record: RunRecord) -> str:
    from twinengine.workflows import service as runs
    from twinengine.workflows.schemas import RunOptions

    engine = runtime.workflows
    # recomputed, never from the cache; placed afresh (the original's site may be gone: the crate names it)
    options = RunOptions.model_validate({"no_cache": True})
    twin = None
    if record.twin_id or record.twin:
        try:
            twin = twins.get_twin(session, principal=principal, ref=record.twin_id or record.twin or "",
                                  action="twin.operate")
        except NotFound:
            twin = None if record.twin_id is None else twins.get_twin(session, principal=principal,
                                                                       ref=record.twin or "", action="twin.operate")
    start = _started(record) if twin is not None else None
    run = runs.submit(session, engine, principal=principal, process=record.procedure, parameters=_declared(record),
                      twin_ref=twin.id if twin is not None else None, workflow=record.workflow,
                      title=f"rerun of {record.id}", options=options, start=start)
    run.options = {**run.options, "rerun_of": record.id}
    session.flush()
    engine.notify(session)
    return run.id


def _ensemble(session: Session, runtime: Any, principal: Principal, record: RunRecord) -> str:
    from twinengine.ensembles.schemas import EnsembleCreate
    from twinengine.ensembles.service import submit_ensemble
    from twinengine.workflows.models import WorkflowRun

    spec = record.rerun.get("ensemble") or {}
    members = spec.get("members") or []
    varied = {k for m in members for k in (m.get("parameters") or {})}
    body: dict[str, Any] = {"workflow": record.workflow, "threshold": spec.get("threshold"),
                            "quantiles": spec.get("quantiles"), "options": {"no_cache": True},
                            "parameters": {k: v for k, v in _declared(record).items() if k not in varied}}
    if spec.get("mode") == "forks":
        body["forks"] = [m["twin"] for m in members]
    else:
        body["parameter_sets"] = [m.get("parameters") or {} for m in members]
    if (start := _hindcast(record)) is not None:
        body["start"] = start
    settings = runtime.settings
    run = submit_ensemble(session, runtime.workflows, principal=principal, twin_ref=record.twin_id or record.twin or "",
                          body=EnsembleCreate.model_validate(body), max_members=settings.ensemble_max_members,
                          parallel=settings.ensemble_parallel)
    # a member's rerun runs as the one member of an ensemble of its own: the member is the rerun (its diff)
    run.options, run.title = {**run.options, "rerun_of": record.id}, (
        f"ensemble of the rerun of {record.id}" if record.kind == "member" else f"rerun of {record.id}")
    session.flush()
    runtime.workflows.notify(session)
    if record.kind == "member":  # the member of the ensemble of one is the rerun
        member = session.get(WorkflowRun, str(run.options["ensemble"]["members"][0]["run"]))
        assert member is not None
        member.title = f"rerun of {record.id}"
        session.flush()
        return member.id
    return run.id


def _training(session: Session, runtime: Any, principal: Principal, record: RunRecord) -> str:
    from twinengine.ml import service as ml
    from twinengine.ml.schemas import TrainingRequest

    body = TrainingRequest.model_validate({**record.rerun["body"], "trigger": {"kind": "rerun", "of": record.id}})
    read = ml.request_training(session, principal=principal, twin_ref=record.twin_id or record.twin or "",
                               model=record.rerun["model"], body=body)
    runtime.ml.wake()
    return read.id


def _calibration(session: Session, runtime: Any, principal: Principal, record: RunRecord) -> str:
    from twinengine.calibration.schemas import CalibrationCreate
    from twinengine.calibration.service import start_calibration

    row = start_calibration(session, principal=principal, twin_ref=record.twin_id or record.twin or "",
                            body=CalibrationCreate.model_validate(record.rerun["body"]))
    row.settings = {**row.settings, "rerun_of": record.id}
    session.flush()
    runtime.calibrations.notify_after_commit(session)
    return row.id


def _assimilation(session: Session, runtime: Any, principal: Principal, record: RunRecord) -> str:
    from twinengine.twin_assimilation.schemas import AssimilationRequest
    from twinengine.twin_assimilation.service import Engines, assimilate

    spec = record.rerun
    origin = twins.get_twin(session, principal=principal, ref=spec.get("twin_id") or spec["twin"],
                            action="twin.operate")
    fork = twins.fork_twin(session, principal=principal, ref=origin.id,
                           name=twins.free_name(session, f"{origin.name}-rerun"),
                           at_revision=max(1, int(spec["revision_before"])), parameters=None,
                           description=f"rerun of assimilation cycles {record.id}")
    request = AssimilationRequest(cycles=int(spec["cycles"]), method=spec["method"], members=int(spec["members"]),
                                  seed=int(spec["seed"]))
    result = assimilate(session, Engines(hub=runtime.streams, code=runtime.app_code), principal=principal,
                        ref=fork.id, request=request, checkpoint=session.commit)
    if not result.cycles:
        raise Conflict(f"cannot rerun {record.id}: no observation arrived after the revision it started from")
    return str(result.cycles[0].id)


STARTS = {"workflow": _workflow, "ensemble": _ensemble, "training": _training, "calibration": _calibration,
          "assimilation": _assimilation}


def rerun(session: Session, runtime: Any, *, principal: Principal, run_id: str | None = None,
          crate: bytes | None = None) -> dict[str, Any]:
    """Start a rerun of ``run_id`` (here) or of the run a ``crate`` describes; returns ``{"original", "rerun",
    "kind"}``. Refused (409) when the app version is gone or another archive, or an input collection changed."""
    if (run_id is None) == (crate is None):
        raise InvalidInput("give a run or a crate to rerun")
    contents: CrateContents | None = None
    # What the rerun reads (the original's record, its app version, its inputs' checksums: stream segments may
    # come from the lake, on S3) is read in a unit of work that takes no write lock, before ``session`` writes.
    with runtime.db.session(readonly=True) as reading:
        if crate is not None:
            contents = unpack(crate)
            record = contents.record
        else:
            record = record_of(reading, runtime, principal=principal, run_id=str(run_id),
                               registry=runtime.ml.registry if str(run_id).startswith("tr-") else None)
        kind = record.rerun.get("type")
        start = STARTS.get(str(kind))
        if start is None:
            raise InvalidInput(f"crate: run {record.id} is of a kind this engine cannot rerun ({kind!r})")
        _check_app(reading, record)
        _check_inputs(runtime, record)
        changed = stream_changes(reading, runtime, record, made_now=crate is None)  # the diff says when they differ
    new_id = start(session, runtime, principal, record)
    _keep(runtime, new_id, record, crate if crate is not None else None,
          {"kind": record.kind, "from_crate": crate is not None,
           "inputs_changed": [c.model_dump(mode="json") for c in changed]})
    return {"original": record.id, "rerun": new_id, "kind": record.kind, "from_crate": crate is not None}


def diff_of(session: Session, runtime: Any, *, principal: Principal, run_id: str) -> dict[str, Any]:
    """The diff of a rerun against its original; ``RunNotFinished`` while the rerun has not ended."""
    new = record_of(session, runtime, principal=principal, run_id=run_id,  # only what the caller may read
                    registry=runtime.ml.registry if run_id.startswith("tr-") else None)
    if ledger_of(runtime, run_id) is None:
        raise Conflict(f"run {run_id} is no rerun: a rerun's diff is read from the rerun's id (`twin runs rerun` "
                       "names it)")
    if new.status in UNFINISHED:
        raise RunNotFinished(f"rerun {run_id} is {new.status}; its diff is known when it ends")
    original = unpack((_ledger(runtime) / f"{run_id}.zip").read_bytes())
    changed = [StreamChange.model_validate(c) for c in (ledger_of(runtime, run_id) or {}).get("inputs_changed") or []]

    def new_bytes(name: str) -> bytes | None:
        found = next((o for o in new.outputs if o.name == name), None)
        return found.read() if found is not None else None

    return compare(original.record, original.output, new, new_bytes, changed=changed)
