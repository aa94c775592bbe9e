"""A synthetic pumping test of the well field, for the docs and the tests: four observation wells at 25 to
400 m from a production well that pumps 1,200 m3/d for two days and a quarter, rests half a day, then pumps
800 m3/d; hourly heads from the Theis model with given T and S, plus measurement noise."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from well_field.aquifer import heads

__all__ = ["DISTANCES", "START", "TRUE", "pumping_test"]

START = datetime(2026, 5, 4, tzinfo=UTC)
DISTANCES = {"ow1": 25.0, "ow2": 60.0, "ow3": 150.0, "ow4": 400.0}  # m from the production well
TRUE = {"T": 300.0, "S": 2e-4}  # m2/d and no unit: a sandy aquifer, confined


def _rate(hour: int) -> float:
    if hour < 6:
        return 0.0
    if hour < 60:
        return 1200.0
    return 0.0 if hour < 72 else 800.0


def pumping_test(hours: int = 96, *, noise: float = 0.005, seed: int = 1,
                 parameters: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Readings (one per well and hour) of the stream ``readings``, heads rounded to the mm."""
    rng = random.Random(seed)
    times, wells = [], []
    for hour in range(1, hours + 1):
        for well in DISTANCES:
            times.append((START + timedelta(hours=hour), hour))
            wells.append(well)
    forcing = {"time": [t.isoformat() for t, _h in times], "distance": [DISTANCES[w] for w in wells],
               "rate": [_rate(h) for _t, h in times]}
    simulated = heads({"static_head": 50.0, **(parameters or TRUE)}, forcing)
    return [{"time": t.isoformat(), "well": w, "head": round(h + rng.gauss(0.0, noise), 3), "pumping": w == "ow1"
             and rate > 0, "distance": d, "rate": rate}
            for (t, _hour), w, h, d, rate in zip(times, wells, simulated, forcing["distance"], forcing["rate"],
                                                 strict=True)]
