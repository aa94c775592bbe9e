"""The check of a worker's answer to a batch of cycles: it comes from a process that runs the app's code, so
its shape is checked before anything of it is written (``twinengine.twin_assimilation.worker_side.cycles`` says what it
holds)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["malformed"]


def _array(value: Any, shape: tuple[int, ...]) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.shape == shape


def malformed(got: Any, used: list[int], members: tuple[int, ...]) -> str | None:
    """What is wrong with ``got`` for cycles weighing ``used[k]`` observations each, from an ensemble of
    shape ``members`` (N, n); None when it is well formed."""
    if not isinstance(got, dict) or not {"members", "log_weights", "obs", "ess", "error"} <= set(got):
        return "not a mapping with members, log_weights, obs, ess and error"
    analysed = got["members"]
    if not isinstance(analysed, np.ndarray) or analysed.ndim != 3 or analysed.shape[1:] != members \
            or analysed.shape[0] > len(used) or analysed.dtype.kind != "f":
        return f"members is not an array of at most {len(used)} ensembles of shape {members}"
    done = analysed.shape[0]
    weights, ess = got["log_weights"], got["ess"]
    if not isinstance(weights, list) or len(weights) != done \
            or not all(w is None or _array(w, (members[0],)) for w in weights):
        return f"log_weights is not a list of {done} weight vectors (or nulls)"
    if not isinstance(ess, list) or len(ess) != done \
            or not all(e is None or (isinstance(e, int | float) and not isinstance(e, bool)) for e in ess):
        return f"ess is not a list of {done} numbers (or nulls)"
    if not _array(got["obs"], (sum(used[:done]), 3)):
        return f"obs is not an array of {sum(used[:done])} rows of 3"
    error = got["error"]
    if error is not None and not (isinstance(error, dict) and all(isinstance(v, str) for v in error.values())):
        return "error is neither null nor a mapping of texts"
    if error is None and done != len(used):
        return f"{done} of {len(used)} cycles came back, with no error"
    return None
