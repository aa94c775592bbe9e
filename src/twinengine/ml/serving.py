"""Serving: predictions from a twin's champion, kept warm by the engine; the ``predict`` process uses it too."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from twinengine.ml.engine import MLEngine
from twinengine.ml.flavours import flavour_of
from twinengine.twins.models import Twin

__all__ = ["PredictInputInvalid", "jsonable", "predict_with"]


class PredictInputInvalid(ValueError):
    """Raised when the app's predict cannot take the inputs it was given."""


def jsonable(value: Any) -> Any:
    """Predictions as JSON values: tensors and arrays become lists, numpy scalars numbers."""
    torch = sys.modules.get("torch")  # a tensor can only come from a torch that is loaded already
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def predict_with(ml: MLEngine, twin: Twin, model: str, inputs: Any, *, version: str | None = None) -> tuple[str, Any]:
    """Resolve the champion once per call (the switch boundary), then predict with the app's ``predict``."""
    used, net, task = ml.champion_model(twin, model, version)
    flavour = flavour_of(task)
    if task.predict is None and flavour.name == "pytorch":
        raise LookupError(f"model {model!r} of {twin.name} defines no predict function")
    try:
        return used, jsonable(flavour.predict(task, net, inputs))
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise PredictInputInvalid(f"the model's predict cannot take these inputs: {type(exc).__name__}: "
                                  f"{exc}") from None
