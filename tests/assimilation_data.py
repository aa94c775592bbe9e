"""Observations shared by the assimilation tests: river-reach's gauge as it drains."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def reach_gauges(count: int) -> list[dict[str, object]]:
    """Readings every 15 minutes of a reach draining from 40 mm (level through the app's rating curve)."""
    out = []
    for k in range(1, count + 1):
        storage = 40.0 * math.exp(-0.25 * k / 6.0)
        discharge = storage / 6.0 * 120.0 / 3.6 + 1.5
        out.append({"time": (T0 + timedelta(minutes=15 * k)).isoformat(), "station": "RR-01", "rain": 0.0,
                    "level": round(0.2 + (discharge / 18.0) ** (1 / 1.6), 4)})
    return out
