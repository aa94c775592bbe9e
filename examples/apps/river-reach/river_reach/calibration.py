"""The reach's model as calibration runs it: the level at each gauge reading, simulated from the rain.

The linear reservoir (``catchment.Catchment``) steps from one reading to the next under the rain of the
reading, starting from its equilibrium with the first rain; the rating curve turns its discharge into a level.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from river_reach.catchment import Catchment, RatingCurve


def simulate(parameters: dict[str, Any], forcing: dict[str, list[Any]]) -> list[float]:
    """Levels (m) at the times of ``forcing['time']`` for rain ``forcing['rain']`` (mm/h)."""
    times = [datetime.fromisoformat(str(t)) for t in forcing["time"]]
    rain = [float(r) if r is not None else 0.0 for r in forcing["rain"]]
    catchment = Catchment.from_parameters(parameters)
    curve = RatingCurve(a=parameters.get("rating_a", 18.0), b=parameters.get("rating_b", 1.6),
                        datum_m=parameters.get("datum_m", 0.2))
    catchment.storage_mm = catchment.runoff_coefficient * (rain[0] if rain else 0.0) * catchment.reservoir_hours
    levels: list[float] = []
    for i, t in enumerate(times):
        hours = (t - times[i - 1]).total_seconds() / 3600.0 if i else 0.0
        discharge = catchment.step(rain[i - 1] if i else rain[0], hours) if hours > 0 else catchment.discharge()
        levels.append(curve.level(discharge))
    return levels
