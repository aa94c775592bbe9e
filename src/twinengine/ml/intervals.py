"""Prediction intervals of a model version: split-conformal on its held-out set, at registration.

The validation set is split in two by position: the first half calibrates the interval (``quality.conformal``),
the second half measures its coverage, which the gate can hold to a band around the nominal level
(``GateSpec.interval``). A version with several draws per input (a deep ensemble, MC dropout; see
:mod:`twinengine.ml.uncertainty`) gets a scaled interval, mean ± q·spread, and also reports ``interval_scale``
(q) for serving; any other, ŷ ± a calibrated half-width.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from twinengine.quality.conformal import calibrate, calibrate_scaled, coverage, coverage_scaled

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from twinengine.app.training import TrainingTask

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

    from twinengine.ml.uncertainty import draws, each_draw

    assert task.predictions is not None
    several = draws(task, model) > 1
    predicted, spread, observed = [], [], []
    model.eval()
    with torch.no_grad():
        for batch in loader:
            batch = to_device(batch, device)
            if several:
                pairs = [task.predictions(m, batch) for m in each_draw(task, model)]
                stacked = np.stack([_flat(p) for p, _o in pairs])
                predicted.append(stacked.mean(axis=0))
                spread.append(stacked.std(axis=0, ddof=1))
                observed.append(_flat(pairs[0][1]))
            else:
                p, o = task.predictions(model, batch)
                predicted.append(_flat(p))
                observed.append(_flat(o))
    if not predicted:
        return {}
    yhat, y = np.concatenate(predicted), np.concatenate(observed)
    half = yhat.size // 2
    if half < 2:
        return {}
    if several:
        s = np.concatenate(spread)
        scaled = calibrate_scaled(yhat[:half], s[:half], y[:half], level=task.interval_level)
        lower, upper = scaled.bounds(yhat[half:], s[half:])
        return {"interval_level": scaled.level, "interval_scale": scaled.scale,
                "interval_half_width": float(np.mean(upper - lower) / 2),
                "interval_coverage": coverage_scaled(scaled, yhat[half:], s[half:], y[half:])}
    interval = calibrate(yhat[:half], y[:half], level=task.interval_level)
    return {"interval_level": interval.level, "interval_half_width": interval.half_width,
            "interval_coverage": coverage(interval, yhat[half:], y[half:])}
