"""Perturbations of parameters for ensemble members: the distributions an app declares per parameter
(``workflows.<name>.ensemble.perturb`` in the manifest) and seeded draws of member values from them.

A distribution is centred on the parameter's own value unless it says otherwise, so one declaration
serves every twin: ``normal`` with ``cv: 0.1`` is normal(mean=value, sd=0.1·value).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DISTRIBUTIONS", "Distribution", "Lognormal", "Normal", "Uniform", "bounds_of", "draw"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clip: tuple[float, float] | None = Field(default=None, description="Draws are clipped into [low, high].")


class Normal(_Spec):
    """normal(mean, sd); ``mean`` defaults to the parameter's value, ``cv`` gives sd = cv · |mean|."""

    distribution: Literal["normal"]
    mean: float | None = None
    sd: float | None = Field(default=None, ge=0)
    cv: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_width(self) -> Normal:
        if (self.sd is None) == (self.cv is None):
            raise ValueError("give exactly one of sd (absolute) or cv (a fraction of the mean)")
        return self

    def sample(self, value: float, n: int, rng: np.random.Generator) -> np.ndarray:
        mean = value if self.mean is None else self.mean
        sd = self.sd if self.sd is not None else float(self.cv or 0.0) * abs(mean)
        return rng.normal(mean, sd, n)


class Lognormal(_Spec):
    """median · exp(sigma · Z): positive, multiplicative noise; ``median`` defaults to the parameter's value."""

    distribution: Literal["lognormal"]
    median: float | None = None
    sigma: float = Field(ge=0)

    def sample(self, value: float, n: int, rng: np.random.Generator) -> np.ndarray:
        median = value if self.median is None else self.median
        return median * np.exp(self.sigma * rng.standard_normal(n))


class Uniform(_Spec):
    """uniform(low, high), or value · uniform(1 - rel, 1 + rel)."""

    distribution: Literal["uniform"]
    low: float | None = None
    high: float | None = None
    rel: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> Uniform:
        absolute = self.low is not None and self.high is not None
        if absolute == (self.rel is not None) or (self.low is None) != (self.high is None):
            raise ValueError("give low and high, or rel (a fraction of the value)")
        if absolute and float(self.low or 0) > float(self.high or 0):
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self

    def sample(self, value: float, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.rel is not None:
            low, high = value * (1 - self.rel), value * (1 + self.rel)
            low, high = min(low, high), max(low, high)
        else:
            low, high = float(self.low or 0.0), float(self.high or 0.0)
        return rng.uniform(low, high, n)


Distribution = Annotated[Normal | Lognormal | Uniform, Field(discriminator="distribution")]
DISTRIBUTIONS = ("normal", "lognormal", "uniform")


def bounds_of(schema: dict[str, Any] | None) -> tuple[float, float]:
    """The inclusive range a parameter's JSON Schema allows (exclusive bounds one step inside)."""
    schema = schema or {}
    low, high = -np.inf, np.inf
    if isinstance(schema.get("minimum"), int | float):
        low = float(schema["minimum"])
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        low = max(low, float(np.nextafter(float(schema["exclusiveMinimum"]), np.inf)))
    if isinstance(schema.get("maximum"), int | float):
        high = float(schema["maximum"])
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        high = min(high, float(np.nextafter(float(schema["exclusiveMaximum"]), -np.inf)))
    return low, high


def draw(spec: Normal | Lognormal | Uniform, value: float, n: int, rng: np.random.Generator,
         schema: dict[str, Any] | None = None) -> list[float]:
    """``n`` member values of one parameter, kept inside ``clip`` and the range its schema allows."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow gives inf, which the caller refuses
        values = spec.sample(float(value), n, rng)
    low, high = bounds_of(schema)
    if spec.clip is not None:
        low, high = max(low, spec.clip[0]), min(high, spec.clip[1])
    return [float(v) for v in np.clip(values, low, high)]
