"""Skill scores of forecasts against observations, through the ``scores`` library (Bureau of Meteorology).

One ``Pairs`` holds the matched forecasts of one lead time: a deterministic value per pair and, when the
forecast had them, ensemble members, a prediction interval and an exceedance probability. ``skill`` returns
every score those parts allow; a score the pairs cannot give (no members, constant observations) is None.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["Pairs", "Reliability", "exceedance", "rank_histogram", "rank_histograms", "reliability", "skill",
           "skill_of_groups"]

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


_GROUP = "group"


def _da(values: Array, *dims: str) -> xr.DataArray:
    import xarray as xr
    return xr.DataArray(np.asarray(values, dtype="float64"), dims=(_PAIR, *dims))


def _stacked(parts: Sequence[Array], *dims: str) -> xr.DataArray:
    """Groups of pairs side by side along ``group``, the shorter ones padded with NaN (the scores library
    leaves a pair with a NaN out, as if it were not there)."""
    import xarray as xr
    longest = max(len(part) for part in parts)
    tail = np.asarray(parts[0]).shape[1:]
    out = np.full((len(parts), longest, *tail), np.nan)
    for i, part in enumerate(parts):
        out[i, : len(part)] = part
    return xr.DataArray(out, dims=(_GROUP, _PAIR, *dims))


def _nums(value: xr.DataArray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(value.values, dtype="float64")]


def _exceeds(values: Array, threshold: float) -> Array:
    return (np.asarray(values) > threshold).astype("float64")


def _members(pairs: Pairs) -> Array | None:
    members = pairs.members
    return members if members is not None and members.ndim == 2 and members.shape[1] > 0 else None


def skill(pairs: Pairs) -> dict[str, float | None]:
    """Every score the pairs allow. Deterministic: rmse, mae, bias (forecast - observed), nse, kge.
    Ensemble: crps (empirical CDF of the members), spread_skill (mean member spread over the rmse of the
    member mean; 1 is a well-dispersed ensemble). Interval: coverage. Probability (or members and a
    threshold): brier."""
    return skill_of_groups([pairs])[0]


def skill_of_groups(groups: Sequence[Pairs]) -> list[dict[str, float | None]]:
    """``skill`` of each group of pairs (a lead time, a forecasting system), each score computed once for
    all groups, side by side along a dimension the scores library keeps: a call of the library costs about
    10 ms of bookkeeping whatever its size, so scoring a month of forecasts at 12 lead times one group at a
    time took most of a second."""
    from scores import continuous, probability

    out: list[dict[str, float | None]] = [{"n": float(len(g.observed))} for g in groups]
    scored = [i for i, g in enumerate(groups) if len(g.observed)]
    if not scored:
        return out
    keep = [_GROUP]

    def each(score: Any, chosen: list[int]) -> list[float | None]:
        if not chosen:
            return []
        fcst, obs = _stacked([groups[i].value for i in chosen]), _stacked([groups[i].observed for i in chosen])
        with np.errstate(divide="ignore", invalid="ignore"):
            return _nums(score(fcst, obs, preserve_dims=keep))

    # nse and kge compare with the observations' variance (kge also the forecast's): none for a group without
    varied = [i for i in scored if len(groups[i].observed) > 1 and float(np.var(groups[i].observed)) > 0.0]
    dispersed = [i for i in varied if float(np.std(groups[i].value)) > 0.0]
    for name, score, chosen in (("rmse", continuous.rmse, scored), ("mae", continuous.mae, scored),
                                ("bias", continuous.additive_bias, scored), ("nse", continuous.nse, varied),
                                ("kge", continuous.kge, dispersed)):
        found = dict(zip(chosen, each(score, chosen), strict=True))
        for i in scored:
            out[i][name] = found.get(i)
    ensembles = {i: m for i in scored if (m := _members(groups[i])) is not None}
    by_size: dict[int, list[int]] = {}  # ensembles of one size are scored together
    for i, members in ensembles.items():
        by_size.setdefault(members.shape[1], []).append(i)
    for chosen in by_size.values():
        crps = _nums(probability.crps_for_ensemble(
            _stacked([ensembles[i] for i in chosen], _MEMBER), _stacked([groups[i].observed for i in chosen]),
            _MEMBER, method="ecdf", preserve_dims=keep))
        for j, i in enumerate(chosen):
            out[i]["crps"] = crps[j]
    for i in scored:
        g = groups[i]
        if i in ensembles and ensembles[i].shape[1] > 1:
            members = ensembles[i]
            error = float(np.sqrt(np.mean((members.mean(axis=1) - g.observed) ** 2)))
            spread = float(np.sqrt(np.mean(members.var(axis=1, ddof=1))))
            out[i]["spread_skill"] = spread / error if error > 0 else None
        if g.lower is not None and g.upper is not None:
            out[i]["coverage"] = float(np.mean((g.observed >= g.lower) & (g.observed <= g.upper)))
            out[i]["interval_level"] = g.interval_level
    forecast: dict[int, Array] = {}  # the probability of exceeding the threshold: given, or the members' share
    outcome: dict[int, Array] = {}
    for i in scored:
        g = groups[i]
        if g.threshold is not None and (g.probability is not None or i in ensembles):
            forecast[i] = g.probability if g.probability is not None else exceedance(ensembles[i], g.threshold)
            outcome[i] = _exceeds(g.observed, g.threshold)
    if forecast:
        brier = _nums(probability.brier_score(_stacked(list(forecast.values())), _stacked(list(outcome.values())),
                                              preserve_dims=keep))
        for j, i in enumerate(forecast):
            out[i]["brier"] = brier[j]
    return out


def rank_histogram(members: Array, observed: Array) -> list[float] | None:
    """Relative frequency of each rank of the observation among the m members (m + 1 ranks; an observation
    equal to members shares its weight among the ranks it ties), through ``scores``. A calibrated ensemble
    gives a flat histogram; a U shape is too little spread, a dome too much, a slope a bias. None without
    at least one pair with members."""
    return rank_histograms([(members, observed)])[0]


def rank_histograms(groups: Sequence[tuple[Array, Array]]) -> list[list[float] | None]:
    """``rank_histogram`` of each (members, observed) group; groups of one ensemble size in one call of the
    library (see ``skill_of_groups``)."""
    from scores.probability import rank_histogram as histogram

    out: list[list[float] | None] = [None] * len(groups)
    by_size: dict[int, list[int]] = {}
    for i, (members, observed) in enumerate(groups):
        if members.ndim == 2 and members.shape[1] > 0 and len(observed) > 0:
            by_size.setdefault(members.shape[1], []).append(i)
    for chosen in by_size.values():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the padding's NaN members, which it leaves out
            found = histogram(_stacked([groups[i][0] for i in chosen], _MEMBER),
                              _stacked([groups[i][1] for i in chosen]), _MEMBER, preserve_dims=[_GROUP])
        values = np.asarray(found.transpose(_GROUP, ...).values, dtype="float64")
        for j, i in enumerate(chosen):
            out[i] = [float(v) for v in values[j]]
    return out


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
