"""Skill scores of forecasts against observations, through the ``scores`` library (Bureau of Meteorology).

One ``Pairs`` holds the matched forecasts of one lead time: a deterministic value per pair and, when the
forecast had them, ensemble members, a prediction interval and an exceedance probability. ``skill`` returns
every score those parts allow; a score the pairs cannot give (no members, constant observations) is None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import xarray as xr

__all__ = ["Pairs", "Reliability", "exceedance", "rank_histogram", "reliability", "skill"]

Array = npt.NDArray[np.float64]
_PAIR, _MEMBER = "pair", "member"


@dataclass(frozen=True)
class Pairs:
    """Forecasts matched with what was observed (``n`` pairs); optional parts are aligned with ``observed``."""

    observed: Array
    value: Array
    members: Array | None = None  # (n, m) ensemble members
    lower: Array | None = None  # prediction interval bounds at ``interval_level``
    upper: Array | None = None
    interval_level: float | None = None
    probability: Array | None = None  # forecast probability that the value exceeds ``threshold``
    threshold: float | None = None

    def __post_init__(self) -> None:
        n = len(self.observed)
        for name in ("value", "members", "lower", "upper", "probability"):
            part = getattr(self, name)
            if part is not None and len(part) != n:
                raise ValueError(f"{name} has {len(part)} rows, observed {n}")


def _da(values: Array, *dims: str) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype="float64"), dims=(_PAIR, *dims))


def _num(value: Any) -> float | None:
    number = float(value.values if isinstance(value, xr.DataArray) else value)
    return number if math.isfinite(number) else None


def _exceeds(values: Array, threshold: float) -> Array:
    return (np.asarray(values) > threshold).astype("float64")


def skill(pairs: Pairs) -> dict[str, float | None]:
    """Every score the pairs allow. Deterministic: rmse, mae, bias (forecast - observed), nse, kge.
    Ensemble: crps (empirical CDF of the members), spread_skill (mean member spread over the rmse of the
    member mean; 1 is a well-dispersed ensemble). Interval: coverage. Probability (or members and a
    threshold): brier."""
    from scores import continuous, probability

    n = len(pairs.observed)
    out: dict[str, float | None] = {"n": float(n)}
    if n == 0:
        return out
    obs, fcst = _da(pairs.observed), _da(pairs.value)
    out["rmse"] = _num(continuous.rmse(fcst, obs))
    out["mae"] = _num(continuous.mae(fcst, obs))
    out["bias"] = _num(continuous.additive_bias(fcst, obs))
    constant = n < 2 or float(np.var(pairs.observed)) == 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        out["nse"] = None if constant else _num(continuous.nse(fcst, obs))
        out["kge"] = None if constant or float(np.std(pairs.value)) == 0.0 else _num(continuous.kge(fcst, obs))
    if pairs.members is not None and pairs.members.ndim == 2 and pairs.members.shape[1] > 0:
        members = _da(pairs.members, _MEMBER)
        out["crps"] = _num(probability.crps_for_ensemble(members, obs, _MEMBER, method="ecdf"))
        if pairs.members.shape[1] > 1:
            mean = pairs.members.mean(axis=1)
            error = float(np.sqrt(np.mean((mean - pairs.observed) ** 2)))
            spread = float(np.sqrt(np.mean(pairs.members.var(axis=1, ddof=1))))
            out["spread_skill"] = spread / error if error > 0 else None
    if pairs.lower is not None and pairs.upper is not None:
        inside = (pairs.observed >= pairs.lower) & (pairs.observed <= pairs.upper)
        out["coverage"] = float(np.mean(inside))
        out["interval_level"] = pairs.interval_level
    if pairs.threshold is not None:
        outcome = _da(_exceeds(pairs.observed, pairs.threshold))
        if pairs.probability is not None:
            out["brier"] = _num(probability.brier_score(_da(pairs.probability), outcome))
        elif pairs.members is not None and pairs.members.ndim == 2 and pairs.members.shape[1] > 0:
            out["brier"] = _num(probability.brier_score(_da(exceedance(pairs.members, pairs.threshold)), outcome))
    return out


def rank_histogram(members: Array, observed: Array) -> list[float] | None:
    """Relative frequency of each rank of the observation among the m members (m + 1 ranks; an observation
    equal to members shares its weight among the ranks it ties), through ``scores``. A calibrated ensemble
    gives a flat histogram; a U shape is too little spread, a dome too much, a slope a bias. None without
    at least one pair with members."""
    from scores.probability import rank_histogram as histogram

    if members.ndim != 2 or members.shape[1] == 0 or len(observed) == 0:
        return None
    found = histogram(_da(members, _MEMBER), _da(observed), _MEMBER)
    return [float(v) for v in np.asarray(found.values, dtype="float64")]


def exceedance(members: Array, threshold: float) -> Array:
    """The share of members above ``threshold``, per pair: an ensemble's exceedance probability."""
    return np.asarray(_exceeds(members, threshold).mean(axis=1), dtype="float64")


@dataclass(frozen=True)
class Reliability:
    """One bin of a reliability diagram: the mean forecast probability, the observed frequency, the count."""

    forecast: float
    observed: float
    count: int


def reliability(probability: Array, outcome: Array, bins: int = 10) -> list[Reliability]:
    """Reliability diagram of exceedance probabilities: pairs grouped into ``bins`` equal-width bins of
    forecast probability; a reliable forecast has observed ≈ forecast in every bin."""
    p, o = np.asarray(probability, dtype="float64"), np.asarray(outcome, dtype="float64")
    index = np.clip((p * bins).astype(int), 0, bins - 1)
    found = []
    for b in range(bins):
        chosen = index == b
        if chosen.any():
            found.append(Reliability(float(p[chosen].mean()), float(o[chosen].mean()), int(chosen.sum())))
    return found
