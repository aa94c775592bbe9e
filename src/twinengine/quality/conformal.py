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

__all__ = ["ConformalInterval", "calibrate", "coverage"]

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
