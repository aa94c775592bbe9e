"""Inside an app's worker: run the app's calibration model once per parameter set of a batch.

The engine sends a batch to each warm worker it uses in parallel; a set whose run raised comes back as None,
and the first error is returned once so a model that always fails says why. The chunk's CPU time is returned
too: the worker is another process, so its CPU is not in the engine's rusage (the calibration's usage record
and quota checks add it up).
"""

from __future__ import annotations

import importlib
import math
import time
from typing import Any

__all__ = ["simulate_many"]


def simulate_many(entrypoint: str, base: dict[str, Any], sets: list[dict[str, float]],
                  forcing: dict[str, list[Any]]) -> dict[str, Any]:
    """{"values": [series or None per set], "error": the first failure's 'Type: message' or None,
    "cpu_seconds": this worker process's CPU time for the chunk}."""
    started = time.process_time()
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
    return {"values": values, "error": error, "cpu_seconds": time.process_time() - started}
