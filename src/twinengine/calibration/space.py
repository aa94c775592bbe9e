"""The parameter space of a calibration: named parameters with bounds and optional priors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["Parameter", "Prior", "Space"]

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Prior:
    """A prior belief about a parameter, within its bounds: uniform (the default), normal or lognormal
    (``mean``/``sd`` of the value, or of its logarithm for lognormal)."""

    distribution: Literal["uniform", "normal", "lognormal"] = "uniform"
    mean: float | None = None
    sd: float | None = None

    def log_density(self, value: float) -> float:
        if self.distribution == "uniform":
            return 0.0
        assert self.mean is not None and self.sd is not None
        if self.distribution == "normal":
            return -0.5 * ((value - self.mean) / self.sd) ** 2
        if value <= 0:
            return -math.inf
        return -0.5 * ((math.log(value) - self.mean) / self.sd) ** 2 - math.log(value)


@dataclass(frozen=True)
class Parameter:
    """One calibrated parameter: its name in the app's parameters, its bounds and prior."""

    name: str
    low: float
    high: float
    prior: Prior = field(default_factory=Prior)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or not self.low < self.high:
            raise ValueError(f"{self.name}: bounds [{self.low}, {self.high}] must be finite with low < high")


@dataclass(frozen=True)
class Space:
    """The parameters calibrated together, in a fixed order (the order of every vector)."""

    parameters: tuple[Parameter, ...]

    def __post_init__(self) -> None:
        if not self.parameters:
            raise ValueError("a calibration needs at least one parameter")

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def lower(self) -> Array:
        return np.array([p.low for p in self.parameters], dtype="float64")

    @property
    def upper(self) -> Array:
        return np.array([p.high for p in self.parameters], dtype="float64")

    def __len__(self) -> int:
        return len(self.parameters)

    def inside(self, x: Array) -> bool:
        return bool(np.all(x >= self.lower) and np.all(x <= self.upper))

    def log_prior(self, x: Array) -> float:
        """Log prior density of ``x`` (-inf outside the bounds)."""
        if not self.inside(x):
            return -math.inf
        return sum(p.prior.log_density(float(v)) for p, v in zip(self.parameters, x, strict=True))

    def as_dict(self, x: Array) -> dict[str, float]:
        return {name: float(v) for name, v in zip(self.names, x, strict=True)}
