"""Forecast verification without a store: match forecast points with the nearest observation within a
tolerance, group the matches by (workflow, model version, lead time) and score each group.

The store (``twins.forecasts``) hands in what it read; this module decides what is a pair and what it scored.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from twinengine.quality.scores import Pairs, exceedance, rank_histograms, reliability, skill, skill_of_groups
from twinengine.quality.spec import Duration

__all__ = ["METRICS", "ForecastPoint", "GroupScores", "Observation", "SkillRule", "interval_from_quantiles", "match",
           "pooled", "verify"]

METRICS = ("rmse", "mae", "bias", "nse", "kge", "crps", "spread_skill", "brier", "coverage")
Metric = Literal["rmse", "mae", "bias", "nse", "kge", "crps", "spread_skill", "brier", "coverage"]


class SkillRule(BaseModel):
    """A bound on a verified score: e.g. the 24 h NSE of ``level`` over the latest 24 pairs below 0.8 breaks it.
    Retraining policies and ``drift`` triggers carry one."""

    model_config = ConfigDict(extra="forbid")

    property: str = Field(max_length=64, description="The verified state property.")
    metric: Metric
    lead: Duration | None = Field(default=None, description="Only this lead time (e.g. 24h); default: all leads.")
    below: float | None = Field(default=None, description="Broken when the score falls below this.")
    above: float | None = Field(default=None, description="Broken when the score rises above this.")
    pairs: int = Field(default=24, ge=2, le=100_000, description="The latest matched pairs scored.")
    min_pairs: int = Field(default=10, ge=1, description="Fewer matched pairs: no verdict.")
    tolerance: Duration = Field(default=timedelta(minutes=30), description="Nearest observation within this.")
    threshold: float | None = Field(default=None, description="Event threshold for the brier score.")
    workflow: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _one_bound(self) -> SkillRule:
        if (self.below is None) == (self.above is None):
            raise ValueError("give exactly one of below and above")
        return self

    def broken_by(self, value: float | None) -> bool | None:
        """True when ``value`` breaks the rule; None when there is no value to judge."""
        if value is None:
            return None
        return value < self.below if self.below is not None else value > (self.above or 0.0)


@dataclass(frozen=True)
class ForecastPoint:
    """One value of an issued forecast: valid at ``valid_time``, ``lead_seconds`` after it was issued."""

    valid_time: datetime
    lead_seconds: int
    value: float
    workflow: str | None = None
    model_version: str | None = None
    members: list[float] | None = None
    lower: float | None = None
    upper: float | None = None
    interval_level: float | None = None
    probability: float | None = None  # of exceeding the request's threshold, when the forecast gave it


@dataclass(frozen=True)
class Observation:
    time: datetime
    value: float


@dataclass
class GroupScores:
    """The scores of one (workflow, model version, ensemble size, lead) over the matched pairs."""

    workflow: str | None
    model_version: str | None
    lead_seconds: int
    scores: dict[str, float | None]
    pairs: list[tuple[datetime, float, float]] = field(default_factory=list)  # (valid time, forecast, observed)
    members: int | None = None  # the ensemble's size (None: forecasts without members)
    rank_histogram: list[float] | None = None  # relative frequency of the observation's rank, m + 1 ranks
    reliability: list[dict[str, float]] | None = None  # with a threshold: bins of forecast probability


def interval_from_quantiles(quantiles: dict[str, float]) -> tuple[float, float, float] | None:
    """(lower, upper, nominal level) from the outermost quantiles, e.g. 0.05 and 0.95 → a 90 % interval."""
    if len(quantiles) < 2:
        return None
    levels = sorted((float(q), float(v)) for q, v in quantiles.items())
    (q_low, low), (q_high, high) = levels[0], levels[-1]
    return low, high, round(q_high - q_low, 6)


def _seconds(times: list[datetime]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.array([t.timestamp() for t in times], dtype="float64")


def match(points: list[ForecastPoint], observations: list[Observation], tolerance: timedelta) -> list[int]:
    """For each point, the index of the nearest observation in time (the earlier on a tie), or -1 when none
    is within ``tolerance``. ``observations`` must be sorted by time."""
    if not observations or not points:
        return [-1] * len(points)
    obs = _seconds([o.time for o in observations])
    want = _seconds([p.valid_time for p in points])
    right = np.clip(np.searchsorted(obs, want), 0, len(obs) - 1)
    left = np.clip(right - 1, 0, len(obs) - 1)
    nearest = np.where(np.abs(obs[left] - want) <= np.abs(obs[right] - want), left, right)
    within = np.abs(obs[nearest] - want) <= tolerance.total_seconds()
    return [int(i) if ok else -1 for i, ok in zip(nearest, within, strict=True)]


def _pairs(chosen: list[tuple[ForecastPoint, float]], threshold: float | None) -> Pairs:
    observed = np.array([o for _, o in chosen], dtype="float64")
    value = np.array([p.value for p, _ in chosen], dtype="float64")
    sizes = {len(p.members) for p, _ in chosen if p.members}
    members = None
    if len(sizes) == 1 and all(p.members for p, _ in chosen):
        members = np.array([p.members for p, _ in chosen], dtype="float64")
    lower = upper = None
    level = None
    if all(p.lower is not None and p.upper is not None for p, _ in chosen):
        lower = np.array([p.lower for p, _ in chosen], dtype="float64")
        upper = np.array([p.upper for p, _ in chosen], dtype="float64")
        level = chosen[0][0].interval_level
    probability = None
    if threshold is not None and all(p.probability is not None for p, _ in chosen):
        probability = np.array([p.probability for p, _ in chosen], dtype="float64")
    return Pairs(observed=observed, value=value, members=members, lower=lower, upper=upper, interval_level=level,
                 probability=probability, threshold=threshold)


def verify(points: list[ForecastPoint], observations: list[Observation], *, tolerance: timedelta,
           threshold: float | None = None, keep_pairs: bool = False) -> list[GroupScores]:
    """Scores per (workflow, model version, ensemble size, lead), ordered by those; groups without a pair are
    left out. An ensemble and a single forecast of the same workflow are scored apart (they are different
    forecasting systems, and only the ensemble has members to score)."""
    index = match(points, observations, tolerance)
    groups: dict[tuple[str, str, int, int], list[tuple[ForecastPoint, float]]] = defaultdict(list)
    for point, i in zip(points, index, strict=True):
        if i >= 0:
            size = len(point.members) if point.members else 0
            groups[(point.workflow or "", point.model_version or "", size, point.lead_seconds)].append(
                (point, observations[i].value))
    ordered = sorted(groups.items())
    every = [_pairs(chosen, threshold) for _, chosen in ordered]
    scores = skill_of_groups(every)  # each score once for every group (a call of the library is not cheap)
    with_members = [i for i, pairs in enumerate(every) if pairs.members is not None]
    histograms = dict(zip(with_members, rank_histograms([(every[i].members, every[i].observed)  # type: ignore[misc]
                                                         for i in with_members]), strict=True))
    out = []
    for i, ((workflow, version, size, lead), chosen) in enumerate(ordered):
        kept = [(p.valid_time, p.value, o) for p, o in chosen] if keep_pairs else []
        out.append(GroupScores(workflow or None, version or None, lead, scores[i], kept, size or None,
                               histograms.get(i), _reliability(every[i])))
    return out


def _reliability(pairs: Pairs, bins: int = 10) -> list[dict[str, float]] | None:
    """Bins of a reliability diagram of exceeding the threshold: the forecast's probability, or the share of
    its members above the threshold."""
    if pairs.threshold is None:
        return None
    probability = pairs.probability
    if probability is None and pairs.members is not None and pairs.members.ndim == 2 and pairs.members.shape[1]:
        probability = exceedance(pairs.members, pairs.threshold)
    if probability is None:
        return None
    outcome = (pairs.observed > pairs.threshold).astype("float64")
    return [{"forecast": b.forecast, "observed": b.observed, "count": float(b.count)}
            for b in reliability(probability, outcome, bins)]


def pooled(points: list[ForecastPoint], observations: list[Observation], *, tolerance: timedelta,
           threshold: float | None = None, newest: int | None = None) -> dict[str, float | None]:
    """One set of scores over every matched point (whatever its lead), or over the ``newest`` by valid time."""
    index = match(points, observations, tolerance)
    chosen = sorted(((p, observations[i].value) for p, i in zip(points, index, strict=True) if i >= 0),
                    key=lambda item: item[0].valid_time)
    if newest is not None:
        chosen = chosen[-newest:]
    if not chosen:
        return {"n": 0.0}
    return skill(_pairs(chosen, threshold))
