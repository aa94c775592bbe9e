"""Inside an app's worker: run the app's calibration model once per parameter set of a batch.

The engine sends a batch to each warm worker it uses in parallel; a set whose run raised comes back as None,
and the first error is returned once so a model that always fails says why. The chunk's CPU is not reported
from here: the engine reads it from /proc for this worker's processes (``workers/cpu.py``), which code in the
sandbox cannot change.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

__all__ = ["simulate_many"]


def simulate_many(entrypoint: str, base: dict[str, Any], sets: list[dict[str, float]],
                  forcing: dict[str, list[Any]]) -> dict[str, Any]:
    """{"values": [series or None per set], "error": the first failure's 'Type: message' or None}."""
    module, _, attr = entrypoint.partition(":")
    model = getattr(importlib.import_module(module), attr)
    values: list[list[float] | None] = []
    error: str | None = None
    for params in sets:
        try:
            series = [float(v) if v is not None else math.nan for v in model({**base, **params}, forcing)]
        except Exception as exc:  # the app's model failed for these parameters: a failed run, not a crash
            error = error or f"{type(exc).__name__}: {exc}"
            values.append(None)
        else:
            values.append(series)
    return {"values": values, "error": error}
