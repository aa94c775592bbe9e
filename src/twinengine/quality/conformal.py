"""Split-conformal prediction intervals: model-agnostic, calibrated on held-out residuals.

With n calibration residuals |y - ŷ|, the half-width is their k-th smallest, k = ⌈(n + 1)·level⌉ (the
finite-sample correction; MAPIE's ``SplitConformalRegressor`` takes the same "higher" quantile). Over
exchangeable data, ŷ ± half-width covers a new y with probability at least ``level``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ConformalInterval", "ScaledInterval", "calibrate", "calibrate_scaled", "coverage", "coverage_scaled"]

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ConformalInterval:
    """ŷ ± ``half_width`` at nominal ``level``, from ``n`` calibration points (inf: too few for the level)."""

    level: float
    half_width: float
    n: int

    def bounds(self, predicted: Array) -> tuple[Array, Array]:
        centre = np.asarray(predicted, dtype="float64")
        return centre - self.half_width, centre + self.half_width

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "half_width": self.half_width, "n": self.n}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConformalInterval:
        return cls(level=float(data["level"]), half_width=float(data["half_width"]), n=int(data["n"]))


def calibrate(predicted: Array, observed: Array, level: float = 0.9) -> ConformalInterval:
    """The split-conformal half-width from calibration predictions and what was observed."""
    if not 0 < level < 1:
        raise ValueError(f"level {level} is not in (0, 1)")
    residuals = np.sort(np.abs(np.asarray(observed, dtype="float64") - np.asarray(predicted, dtype="float64")))
    n = residuals.size
    k = math.ceil((n + 1) * level)
    width = float(residuals[k - 1]) if 0 < k <= n else math.inf
    return ConformalInterval(level=level, half_width=width, n=n)


def coverage(interval: ConformalInterval, predicted: Array, observed: Array) -> float:
    """The share of ``observed`` inside the interval around ``predicted``."""
    lower, upper = interval.bounds(predicted)
    y = np.asarray(observed, dtype="float64")
    return float(np.mean((y >= lower) & (y <= upper))) if y.size else math.nan


@dataclass(frozen=True)
class ScaledInterval:
    """ŷ ± ``scale``·s at nominal ``level``, where s is a prediction's own spread (an ensemble's standard
    deviation): split conformal on residuals divided by their spread (a locally adaptive interval that keeps
    the same finite-sample guarantee over exchangeable data), from ``n`` calibration points."""

    level: float
    scale: float
    n: int
    floor: float = 0.0  # the smallest spread it counts (the smallest positive one of its calibration points)

    def bounds(self, predicted: Array, spread: Array) -> tuple[Array, Array]:
        centre = np.asarray(predicted, dtype="float64")
        half = self.scale * np.maximum(np.asarray(spread, dtype="float64"), self.floor)
        return centre - half, centre + half


def calibrate_scaled(predicted: Array, spread: Array, observed: Array, level: float = 0.9) -> ScaledInterval:
    """The scale q of ŷ ± q·s: the k-th smallest |y - ŷ| / s over the calibration points, k = ⌈(n + 1)·level⌉
    (a spread of zero counts as the smallest positive one seen, so one sharp point cannot make q infinite)."""
    if not 0 < level < 1:
        raise ValueError(f"level {level} is not in (0, 1)")
    s = np.asarray(spread, dtype="float64")
    positive = s[s > 0]
    floor = float(positive.min()) if positive.size else 1.0
    scores = np.sort(np.abs(np.asarray(observed, dtype="float64") - np.asarray(predicted, dtype="float64"))
                     / np.maximum(s, floor))
    n = scores.size
    k = math.ceil((n + 1) * level)
    return ScaledInterval(level=level, scale=float(scores[k - 1]) if 0 < k <= n else math.inf, n=n, floor=floor)


def coverage_scaled(interval: ScaledInterval, predicted: Array, spread: Array, observed: Array) -> float:
    """The share of ``observed`` inside ŷ ± q·s."""
    lower, upper = interval.bounds(predicted, spread)
    y = np.asarray(observed, dtype="float64")
    return float(np.mean((y >= lower) & (y <= upper))) if y.size else math.nan
