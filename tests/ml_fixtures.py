"""Helpers of the ml tests: torch or skip with the reason, and gauge records of the river-reach simulator."""

from __future__ import annotations

import importlib
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from helpers import RIVER_REACH

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def need_torch() -> None:
    """Torch tests skip (with this reason printed) only where the ml extra is not installed; CI installs it."""
    for module in ("torch", "mlflow"):
        try:
            importlib.import_module(module)
        except ImportError:
            pytest.skip(f"{module} is not installed (pip install -e '.[ml]')")


def river_reach() -> Any:
    if str(RIVER_REACH) not in sys.path:
        sys.path.insert(0, str(RIVER_REACH))
    return importlib.import_module("river_reach")


def gauge_records(hours: float, *, runoff_coefficient: float = 0.45, seed: int = 7,
                  start: datetime = T0, storms_per_day: float = 2.0) -> list[dict[str, Any]]:
    """Readings every 15 minutes of a catchment whose true runoff coefficient may differ from the twin's."""
    rr = river_reach()
    catchment = rr.Catchment(runoff_coefficient=runoff_coefficient)
    sim = rr.ReachSimulator("RR-01", catchment, rr.RatingCurve(), start=start, seed=seed,
                            storms_per_day=storms_per_day)
    return [{"time": r.time.isoformat(), "station": r.station, "rain": r.rain, "level": r.level}
            for r in sim.readings(hours)]
