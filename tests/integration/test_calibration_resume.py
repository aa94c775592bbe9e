"""A calibration interrupted by the engine stopping resumes where it stopped: the kept runs are replayed, not
run again (each run is stored once), and it ends where an uninterrupted calibration with the same seed ends."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from helpers import RIVER_REACH, Engine
from twinengine.calibration.models import Calibration, CalibrationRun
from twinengine.calibration.runner import CalibrationRunner, _Stopped

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _gauges() -> list[dict[str, Any]]:
    """A reach draining after a storm, its level through the default rating curve."""
    out = []
    for k in range(80):
        rain = 3.0 * math.exp(-(((k - 20) / 6.0) ** 2))
        out.append({"time": (T0 + timedelta(minutes=15 * k)).isoformat(), "station": "RR-01", "rain": rain,
                    "level": 0.2 + ((1.5 + 20.0 * math.exp(-k / 30.0) + 10 * rain) / 18.0) ** (1 / 1.6)})
    return out


def _runner(engine: Engine) -> CalibrationRunner:
    rt = engine.runtime
    return CalibrationRunner(db=rt.db, code=rt.app_code, data_dir=rt.data_dir, read_stream=rt.read_stream,
                             poll_seconds=0.1)


def _finish(runner: CalibrationRunner) -> None:
    """Claim what is queued and wait until it ended (the runner's threads are joined)."""
    assert runner.run_once() >= 1
    runner._pool.shutdown(wait=True)


@pytest.mark.sandbox
def test_an_interrupted_calibration_resumes_without_running_kept_runs_again(engine: Engine) -> None:
    engine.runtime.calibrations.stop()  # the engine's own runner takes no part: the test plays two engines
    dev, user = engine.as_role("ada", "developer"), engine.as_role("uma", "user")
    dev.publish_app(RIVER_REACH)
    user.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    user.streams.append("reach", "gauges", _gauges())
    body = {"method": "de", "runs": 90, "seed": 3, "workers": 2, "posterior_share": 0.0}
    interrupted = user.calibration.start("reach", **body)

    first = _runner(engine)
    keep = first._keep

    def stop_after_a_few(cal_id: str, new: list[Any], max_runs: int) -> None:
        keep(cal_id, new, max_runs)
        with engine.runtime.db.session(readonly=True) as session:
            if session.get(Calibration, cal_id).runs_done >= 30:  # type: ignore[union-attr]
                first.stopping.set()  # the engine stops: the calibration goes back to the queue
                raise _Stopped

    first._keep = stop_after_a_few  # type: ignore[method-assign]
    _finish(first)
    paused = user.calibration.get(interrupted.id)
    assert paused.status == "queued" and 30 <= paused.runs_done < 90

    second = _runner(engine)
    _finish(second)
    resumed = user.calibration.get(interrupted.id)
    assert resumed.status == "done", resumed.error
    with engine.runtime.db.session(readonly=True) as session:
        numbers = list(session.scalars(CalibrationRun.__table__.select()
                                       .with_only_columns(CalibrationRun.number)
                                       .where(CalibrationRun.calibration_id == interrupted.id)))
    assert sorted(numbers) == list(range(resumed.runs_done))  # each run kept once: none was run again

    whole = user.calibration.start("reach", **body)
    _finish(_runner(engine))
    uninterrupted = user.calibration.get(whole.id)
    assert uninterrupted.runs_done == resumed.runs_done
    assert uninterrupted.best == resumed.best and uninterrupted.best_score == resumed.best_score


@pytest.mark.sandbox
def test_a_canceled_calibration_stops_after_its_batch_and_keeps_its_runs(engine: Engine) -> None:
    from twinengine.errors import Conflict

    engine.runtime.calibrations.stop()
    dev, user = engine.as_role("ada", "developer"), engine.as_role("uma", "user")
    dev.publish_app(RIVER_REACH)
    user.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    user.streams.append("reach", "gauges", _gauges())
    queued = user.calibration.start("reach", method="de", runs=90, seed=3)
    assert user.calibration.cancel(queued.id).status == "canceled"  # before it ran: never claimed
    running = user.calibration.start("reach", method="de", runs=90, seed=3)

    runner = _runner(engine)
    keep = runner._keep

    def cancel_midway(cal_id: str, new: list[Any], max_runs: int) -> None:
        keep(cal_id, new, max_runs)  # raises once it is canceled: the runner stops
        user.calibration.cancel(cal_id)  # a person stops it after its first batch

    runner._keep = cancel_midway  # type: ignore[method-assign]
    _finish(runner)
    assert user.calibration.get(queued.id).runs_done == 0
    stopped = user.calibration.get(running.id)
    assert stopped.status == "canceled" and 0 < stopped.runs_done < 90 and stopped.fork is None
    assert user.calibration.runs(running.id).total == stopped.runs_done
    with pytest.raises(Conflict, match="canceled"):
        user.calibration.cancel(running.id)
    with pytest.raises(Conflict, match="canceled"):
        user.calibration.accept(running.id)
