"""Scoring many groups of forecasts at once (side by side, padded with NaN) gives what scoring each group
alone through the scores library gives: the padding is left out of every score."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from scores import continuous, probability

from twinengine.quality.scores import Pairs, rank_histograms, skill_of_groups


def _alone(p: Pairs) -> dict[str, float]:
    """Each score of one group from its own call of the library."""
    obs, fcst = (xr.DataArray(v, dims=["pair"]) for v in (p.observed, p.value))
    out = {"rmse": float(continuous.rmse(fcst, obs)), "mae": float(continuous.mae(fcst, obs)),
           "bias": float(continuous.additive_bias(fcst, obs))}
    if len(p.observed) > 1:
        out.update(nse=float(continuous.nse(fcst, obs)), kge=float(continuous.kge(fcst, obs)))
    if p.members is not None:
        members = xr.DataArray(p.members, dims=["pair", "member"])
        out["crps"] = float(probability.crps_for_ensemble(members, obs, "member", method="ecdf"))
        outcome = xr.DataArray((p.observed > 1.0).astype(float), dims=["pair"])
        share = xr.DataArray((p.members > 1.0).mean(axis=1), dims=["pair"])
        out["brier"] = float(probability.brier_score(share, outcome))
    return out


def _groups(seed: int) -> list[Pairs]:
    rng = np.random.default_rng(seed)
    groups = []
    for n, m in ((40, 0), (7, 16), (25, 16), (2, 8), (33, 8), (1, 0)):
        observed = rng.normal(1.0, 0.5, n)
        members = observed[:, None] + rng.normal(0.1, 0.4, (n, m)) if m else None
        value = members.mean(axis=1) if members is not None else observed + rng.normal(0, 0.3, n)
        groups.append(Pairs(observed=observed, value=value, members=members,
                            threshold=1.0 if members is not None else None))
    return groups


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_groups_scored_together_equal_each_scored_alone(seed: int) -> None:
    groups = _groups(seed)
    together = skill_of_groups(groups)
    for p, got in zip(groups, together, strict=True):
        assert got["n"] == len(p.observed)
        want = _alone(p)
        if len(p.observed) < 2:
            assert got["nse"] is None and got["kge"] is None  # a single pair has no variance to compare with
        for name, value in want.items():
            assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
        assert ("crps" in got) == (p.members is not None)


def test_groups_of_one_pair_each_are_scored_without_nse() -> None:
    """Side by side, one pair per group leaves nothing to reduce over for nse: it is not asked for."""
    got = skill_of_groups([Pairs(observed=np.array([1.0]), value=np.array([1.5])),
                           Pairs(observed=np.array([2.0]), value=np.array([1.0]))])
    assert [g["rmse"] for g in got] == [0.5, 1.0] and all(g["nse"] is None and g["kge"] is None for g in got)


def test_rank_histograms_together_equal_each_alone() -> None:
    groups = [(g.members, g.observed) for g in _groups(4) if g.members is not None]
    together = rank_histograms(groups)
    for (members, observed), got in zip(groups, together, strict=True):
        want = probability.rank_histogram(xr.DataArray(members, dims=["pair", "member"]),
                                          xr.DataArray(observed, dims=["pair"]), "member")
        assert got == pytest.approx([float(v) for v in want.values], rel=1e-12)
        assert math.isclose(sum(got), 1.0)
