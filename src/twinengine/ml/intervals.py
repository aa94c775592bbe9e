"""Prediction intervals of a model version: split-conformal on its held-out set, at registration.

The validation set is split in two by position: the first half calibrates the half-width
(``quality.conformal``), the second half measures the interval's coverage, which the gate can hold to a band
around the nominal level (``GateSpec.interval``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from twinengine.quality.conformal import calibrate, coverage

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from twinengine.ml.task import TrainingTask

__all__ = ["interval_metrics"]


def _flat(value: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype="float64").ravel()


def interval_metrics(task: TrainingTask, model: nn.Module, loader: DataLoader[Any], device: torch.device,
                     to_device: Callable[[Any, torch.device], Any]) -> dict[str, float]:
    """interval_level, interval_half_width and interval_coverage (held-out) of the split-conformal interval;
    nothing when the validation set has fewer than 4 points."""
    import torch

    assert task.predictions is not None
    predicted, observed = [], []
    model.eval()
    with torch.no_grad():
        for batch in loader:
            p, o = task.predictions(model, to_device(batch, device))
            predicted.append(_flat(p))
            observed.append(_flat(o))
    if not predicted:
        return {}
    yhat, y = np.concatenate(predicted), np.concatenate(observed)
    half = yhat.size // 2
    if half < 2:
        return {}
    interval = calibrate(yhat[:half], y[:half], level=task.interval_level)
    return {"interval_level": interval.level, "interval_half_width": interval.half_width,
            "interval_coverage": coverage(interval, yhat[half:], y[half:])}
