"""A run's crate, whatever kind of run it is: found by its id (a workflow run or ensemble ``run-``/``ens-``, a
training ``tr-``, a calibration ``cal-``, or the first cycle ``as-`` of an assimilation batch), read as its owner
or a reader of its twin may, and packed (``crates.package``). The one function other packages call is
``crate_for_run``: OGC API - Processes' jobs and CWL runs are the engine's runs, so their crates are these."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.crates.package import pack
from twinengine.crates.record import RunRecord
from twinengine.errors import NotFound, RunNotFinished, RunNotFound
from twinengine.twins import service as twins

__all__ = ["CARRY_BYTES", "crate_for_run", "license_of", "record_of"]

CARRY_BYTES = 64 << 20  # an output up to this size travels in the crate; a larger one is named by its checksum
UNFINISHED = ("created", "queued", "running", "stopping")


def record_of(session: Session, engines: Any, *, principal: Principal, run_id: str,
              carry_bytes: int = CARRY_BYTES, registry: Any = None) -> RunRecord:
    """The record of any kind of run the caller may read; ``RunNotFinished`` while it has not ended.
    ``engines``: the runtime (its ``workflows`` result store and ``collections``)."""
    if run_id.startswith("tr-"):
        from twinengine.crates.other_runs import training_record
        from twinengine.ml.models import TrainingRun

        row = session.get(TrainingRun, run_id)
        if row is None:
            raise RunNotFound(f"no run {run_id!r}")
        twin = twins.get_twin(session, principal=principal, ref=row.twin_id)
        _ended(run_id, row.status)
        return training_record(session, row, twin, registry=registry, engines=engines)
    if run_id.startswith("cal-"):
        from twinengine.calibration.models import Calibration
        from twinengine.crates.other_runs import calibration_record

        cal = session.get(Calibration, run_id)
        if cal is None:
            raise RunNotFound(f"no run {run_id!r}")
        twin = twins.get_twin(session, principal=principal, ref=cal.twin_id)
        _ended(run_id, cal.status)
        return calibration_record(session, cal, twin, engines=engines)
    if run_id.startswith("as-"):
        from twinengine.crates.other_runs import assimilation_record
        from twinengine.twin_assimilation.models import AssimilationCycle

        cycle = session.get(AssimilationCycle, run_id)
        if cycle is None:
            raise RunNotFound(f"no run {run_id!r}")
        twin = twins.get_twin(session, principal=principal, ref=cycle.twin_id)
        return assimilation_record(session, cycle, twin, engines=engines)
    from twinengine.crates.workflow_runs import workflow_record
    from twinengine.workflows import service as runs

    run = runs.get_run(session, principal=principal, run_id=run_id)
    _ended(run_id, str(run.status))
    return workflow_record(session, run, results=engines.workflows.results, collections=engines.collections,
                           carry_bytes=carry_bytes)


def _ended(run_id: str, status: str) -> None:
    if status in UNFINISHED:
        raise RunNotFinished(f"run {run_id} is {status}; its crate is made when it ends")


def license_of(session: Session, record: RunRecord) -> str | None:
    """The SPDX licence the run's app declares (its manifest's ``license``)."""
    if not record.app:
        return None
    from sqlalchemy import select

    from twinengine.catalog.models import AppVersion

    name, _, version = record.app.partition("@")
    manifest = session.scalar(select(AppVersion.manifest).where(AppVersion.name == name, AppVersion.version == version))
    found = (manifest or {}).get("license")
    return str(found) if found else None


def crate_for_run(session: Session, engines: Any, *, principal: Principal, run_id: str,
                  carry_bytes: int = CARRY_BYTES, registry: Any = None) -> bytes:
    """The run's Provenance Run Crate as zip bytes (``engines``: the runtime; ``registry``: the model registry,
    for a training's model checksum). Raises ``RunNotFound`` (404) and ``RunNotFinished`` (409)."""
    try:
        record = record_of(session, engines, principal=principal, run_id=run_id, carry_bytes=carry_bytes,
                           registry=registry)
    except NotFound as exc:
        raise RunNotFound(exc.message) from None
    return pack(record, license_id=license_of(session, record))
