"""The items of ``twin app test`` for a manifest's ``assimilation`` and ``calibration`` sections, checked like
the other sections: through the engine's own services on the local twin and its sample records.

- ``assimilation``: a few cycles of the app's filter (its model step, its observation operators) on the
  twin's sample observations, written as the twin's revisions as ``twin assimilate`` writes them;
- ``calibration``: a calibration of a small budget, run by the engine's calibration runner to its proposal.

Either is skipped, saying why, when the samples hold no record of the stream it reads.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from twinengine.appdev._checks import place_in
from twinengine.appdev._items import Failed, Run
from twinengine.auth.principal import SYSTEM
from twinengine.catalog.manifest import Manifest
from twinengine.errors import TwinEngineError

if TYPE_CHECKING:
    from twinengine.appdev.local import LocalEngine

__all__ = ["ASSIMILATION_CYCLES", "CALIBRATION_RUNS", "run_assimilation", "run_calibration"]

ASSIMILATION_CYCLES = 3  # enough for a step from one observation to the next, the filter, and its revisions
CALIBRATION_RUNS = 16  # does the model run on the history, and does the method propose parameters?
CALIBRATION_TIMEOUT = 300.0


def run_assimilation(run: Run, local: LocalEngine, manifest: Manifest, counts: dict[str, int]) -> None:
    """A few assimilation cycles on the twin's sample observations."""
    from twinengine.catalog.assimilation_checks import observation_stream

    spec = manifest.assimilation
    if spec is None:
        return
    streams = {observation_stream(manifest, o.stream) for o in spec.observations.values()}
    stream = next(iter(sorted(s for s in streams if s is not None)), None)
    if stream is None or not counts.get(stream):
        run.skip("assimilation", f"no sample records for stream {stream} (data/{stream}.jsonl)")
        return
    from twinengine.twin_assimilation import service as assimilation
    from twinengine.twin_assimilation.schemas import AssimilationRequest
    from twinengine.twins import service as twins

    rt = local.rt
    with rt.db.session(readonly=True) as session:
        reported = twins.read_state(session, principal=SYSTEM, ref=local.twin_name).reported
    unset = [entry for entry in spec.state if reported.get(entry) is None]
    if unset:  # the first ensemble starts from the twin's reported state, which only functions write here
        run.skip("assimilation", f"the twin reports no {', '.join(unset[:3])}{' ...' if len(unset) > 3 else ''} "
                                 "after its functions ran on the samples, and the first ensemble starts from it "
                                 "(report it from a function on arrival to check the section here)")
        return
    with run.item("assimilation"):
        engines = assimilation.Engines(hub=rt.streams, code=rt.app_code)
        with rt.db.session() as session:
            try:
                result = assimilation.assimilate(session, engines, principal=SYSTEM, ref=local.twin_name,
                                                 request=AssimilationRequest(cycles=ASSIMILATION_CYCLES))
            except TwinEngineError as exc:  # the app's step or operator failed, or the section cannot serve
                field = "assimilation.step.entrypoint" if exc.message.startswith("assimilation.step") \
                    else "assimilation"
                raise Failed(f"{exc.code}: {exc.message}",
                             place_in(exc.message, manifest.package_name) or field) from None
        if not result.cycles:
            raise Failed(f"no cycle ran on the sample records of {stream}: they hold no observation after the "
                         "twin's first guess (its state, as the functions reported it)", "assimilation")


def run_calibration(run: Run, local: LocalEngine, manifest: Manifest, counts: dict[str, int]) -> None:
    """A calibration of ``CALIBRATION_RUNS`` model runs on the twin's sample history, to its proposal."""
    spec = manifest.calibration
    if spec is None:
        return
    stream = spec.observed.stream
    if not counts.get(stream):
        run.skip("calibration", f"no sample records for stream {stream} (data/{stream}.jsonl)")
        return
    from twinengine.calibration import service as calibrations
    from twinengine.calibration.models import Calibration
    from twinengine.calibration.schemas import CalibrationCreate

    rt = local.rt
    with run.item("calibration"):
        with rt.db.session() as session:
            row = calibrations.start_calibration(session, principal=SYSTEM, twin_ref=local.twin_name,
                                                 body=CalibrationCreate(runs=min(CALIBRATION_RUNS, spec.runs)))
            cal_id = row.id
        rt.calibrations.notify()
        deadline = time.monotonic() + CALIBRATION_TIMEOUT
        while True:
            with rt.db.session(readonly=True) as session:
                found = session.get(Calibration, cal_id)
                assert found is not None
                status, error = found.status, dict(found.error or {})
            if status in ("done", "error", "canceled") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if status != "done":
            message = str(error.get("message") or error.get("code") or
                          f"the calibration did not end within {CALIBRATION_TIMEOUT:g} s ({status})")
            raise Failed(message, place_in(message, manifest.package_name) or "calibration.model.entrypoint")
