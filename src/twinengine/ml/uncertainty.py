"""A PyTorch model version's own uncertainty: a deep ensemble (``TrainingTask.members`` networks trained from
different seeds) or MC dropout (``TrainingTask.mc_dropout`` draws with dropout active), where the app asks.

Both give several predictions per input. Served, they become the mean, the spread (standard deviation) and
the members; a version whose task gives ``predictions`` is also calibrated at registration by scaled split
conformal (``quality.conformal.calibrate_scaled``): the interval mean ± q·spread, with q chosen on half of
the held-out set and its coverage measured on the other half, so the spread's shape is kept and the width is
calibrated. Imported only where torch is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from twinengine.app.training import TrainingTask

__all__ = ["Ensemble", "draws", "dropout_active", "summary"]


class Ensemble(nn.Module):
    """Networks of the same architecture trained from different seeds; called, the mean of theirs."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        outputs = [member(*args, **kwargs) for member in self.members]
        return torch.stack(outputs).mean(dim=0)


@contextlib.contextmanager
def dropout_active(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode but for its dropout layers (MC dropout), back in eval mode afterwards."""
    model.eval()
    layers = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    for layer in layers:
        layer.train()
    try:
        yield model
    finally:
        for layer in layers:
            layer.eval()


def draws(task: TrainingTask, model: nn.Module) -> int:
    """How many predictions a version gives per input: its members, its MC dropout draws, or 1."""
    if isinstance(model, Ensemble):
        return len(model.members)
    return task.mc_dropout if task.mc_dropout > 1 else 1


def each_draw(task: TrainingTask, model: nn.Module) -> Iterator[nn.Module]:
    """The models to predict with, one per draw (an ensemble's members; the same net with dropout active)."""
    if isinstance(model, Ensemble):
        yield from model.members
        return
    with dropout_active(model):
        for _ in range(max(task.mc_dropout, 1)):
            yield model


def _numeric(value: Any) -> np.ndarray[Any, Any] | None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype="float64")
    except (TypeError, ValueError):
        return None
    return array


def summary(outputs: list[Any], interval: dict[str, float] | None) -> Any:
    """What a version with several draws serves: mean, std and members (and the calibrated interval's lower
    and upper bounds at its level, when it was calibrated); the members alone when they are not numbers."""
    arrays = [_numeric(o) for o in outputs]
    if any(a is None for a in arrays) or len({a.shape for a in arrays if a is not None}) != 1:
        return {"members": outputs}
    stacked = np.stack([a for a in arrays if a is not None])
    mean, std = stacked.mean(axis=0), stacked.std(axis=0, ddof=1) if len(arrays) > 1 else np.zeros_like(stacked[0])
    out: dict[str, Any] = {"mean": mean, "std": std, "members": stacked}
    if interval is not None and np.isfinite(interval.get("interval_scale", np.inf)):
        scale = float(interval["interval_scale"])
        out |= {"level": float(interval["interval_level"]), "lower": mean - scale * std, "upper": mean + scale * std}
    return out
