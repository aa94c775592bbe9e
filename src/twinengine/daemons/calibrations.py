"""The calibration runner's loop (``calibration.runner``), in every engine process: each claims its rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinengine.daemons.supervisor import Loop

if TYPE_CHECKING:
    from twinengine.calibration.runner import CalibrationRunner

__all__ = ["calibration_loop"]


def calibration_loop(runner: CalibrationRunner) -> Loop:
    """Claims the calibrations this runner has room for (queued, or left running by a dead engine); stopping it
    hands those in progress back to the queue after their current batch."""
    return Loop("calibrations", runner.run_once, wait=lambda _stop: runner.wait_for_work(), interrupt=runner.halt,
                grace=10.0)
