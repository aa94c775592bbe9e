"""A small catchment for calibration tests: daily rain and evaporation, and the discharge the example app
Hymod gives for them with known parameters (so a calibration has something to find)."""

from __future__ import annotations

import importlib.util
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from helpers import REPO

HYMOD = REPO / "examples" / "apps" / "hymod"
T0 = datetime(2012, 1, 1, tzinfo=UTC)


def catchment(days: int) -> list[dict[str, Any]]:
    """``days`` records of rain, pet and discharge from T0, for the twin's stream."""
    spec = importlib.util.spec_from_file_location("hymod_model", HYMOD / "hymod" / "model.py")
    assert spec is not None and spec.loader is not None
    model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model)
    rain = [max(0.0, 12 * math.sin(k / 5.0) ** 7) + (3.0 if k % 11 == 0 else 0.0) for k in range(days)]
    pet = [2.5 + 1.5 * math.sin(2 * math.pi * k / 365) for k in range(days)]
    flow = model.simulate({"cmax": 180.0, "bexp": 0.8, "alpha": 0.6, "Ks": 0.03, "Kq": 0.4},
                          {"rain": rain, "pet": pet})
    return [{"time": (T0 + timedelta(days=k)).isoformat(), "rain": rain[k], "pet": pet[k], "discharge": flow[k]}
            for k in range(days)]
