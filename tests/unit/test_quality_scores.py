"""Each skill score against the same number computed by hand with numpy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from twinengine.quality.scores import Pairs, exceedance, rank_histogram, reliability, skill
from twinengine.quality.verification import ForecastPoint, Observation, interval_from_quantiles, match, verify

RNG = np.random.default_rng(3)
OBS = 2 + np.sin(np.linspace(0, 6, 40)) + 0.1 * RNG.standard_normal(40)
FCST = OBS + 0.3 * RNG.standard_normal(40) + 0.1
MEMBERS = FCST[:, None] + 0.25 * RNG.standard_normal((40, 12))


def test_deterministic_scores_match_numpy() -> None:
    got = skill(Pairs(observed=OBS, value=FCST))
    err = FCST - OBS
    assert got["n"] == 40
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean(err ** 2)))
    assert got["mae"] == pytest.approx(np.mean(np.abs(err)))
    assert got["bias"] == pytest.approx(np.mean(err))
    assert got["nse"] == pytest.approx(1 - np.sum(err ** 2) / np.sum((OBS - OBS.mean()) ** 2))
    r = np.corrcoef(FCST, OBS)[0, 1]
    alpha, beta = FCST.std() / OBS.std(), FCST.mean() / OBS.mean()
    assert got["kge"] == pytest.approx(1 - np.sqrt((r - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2), rel=1e-6)


def test_ensemble_crps_and_spread_skill_match_numpy() -> None:
    got = skill(Pairs(observed=OBS, value=MEMBERS.mean(axis=1), members=MEMBERS))
    m = MEMBERS.shape[1]
    # CRPS of the empirical CDF: E|X - y| - ½ E|X - X'|
    first = np.mean(np.abs(MEMBERS - OBS[:, None]), axis=1)
    second = np.mean(np.abs(MEMBERS[:, :, None] - MEMBERS[:, None, :]), axis=(1, 2)) / 2
    assert got["crps"] == pytest.approx(np.mean(first - second))
    spread = np.sqrt(np.mean(np.var(MEMBERS, axis=1, ddof=1)))
    rmse = np.sqrt(np.mean((MEMBERS.mean(axis=1) - OBS) ** 2))
    assert got["spread_skill"] == pytest.approx(spread / rmse)
    assert m == 12


def test_brier_coverage_and_reliability_match_numpy() -> None:
    threshold = 2.5
    probability = exceedance(MEMBERS, threshold)
    assert probability == pytest.approx(np.mean(threshold < MEMBERS, axis=1))
    outcome = (threshold < OBS).astype(float)
    got = skill(Pairs(observed=OBS, value=FCST, members=MEMBERS, threshold=threshold))
    assert got["brier"] == pytest.approx(np.mean((probability - outcome) ** 2))
    given = skill(Pairs(observed=OBS, value=FCST, probability=np.full(40, 0.3), threshold=threshold))
    assert given["brier"] == pytest.approx(np.mean((0.3 - outcome) ** 2))
    lower, upper = FCST - 0.4, FCST + 0.4
    interval = skill(Pairs(observed=OBS, value=FCST, lower=lower, upper=upper, interval_level=0.9))
    assert interval["coverage"] == pytest.approx(np.mean((lower <= OBS) & (upper >= OBS)))
    bins = reliability(probability, outcome, bins=5)
    assert sum(b.count for b in bins) == 40
    top = probability >= 0.8
    if top.any():
        assert bins[-1].observed == pytest.approx(outcome[top].mean())


def test_constant_observations_have_no_nse() -> None:
    got = skill(Pairs(observed=np.ones(5), value=np.arange(5.0)))
    assert got["nse"] is None and got["kge"] is None and got["rmse"] is not None


def test_match_takes_the_nearest_observation_within_tolerance() -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    obs = [Observation(t0 + timedelta(minutes=15 * i), float(i)) for i in range(8)]
    points = [ForecastPoint(t0 + timedelta(minutes=m), 3600, 0.0) for m in (0, 20, 29, 200)]
    assert match(points, obs, timedelta(minutes=10)) == [0, 1, 2, -1]


def test_verify_groups_by_lead_and_quantiles_give_an_interval() -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    obs = [Observation(t0 + timedelta(hours=i), float(OBS[i])) for i in range(40)]
    points = [ForecastPoint(t0 + timedelta(hours=i), lead * 3600, float(FCST[i]) + lead, workflow="forecast")
              for lead in (1, 2) for i in range(40)]
    groups = verify(points, obs, tolerance=timedelta(minutes=5))
    assert [g.lead_seconds for g in groups] == [3600, 7200]
    assert groups[1].scores["bias"] == pytest.approx(np.mean(FCST + 2 - OBS))
    assert interval_from_quantiles({"0.05": 1.0, "0.5": 2.0, "0.95": 3.0}) == (1.0, 3.0, 0.9)


def test_rank_histogram_matches_numpy() -> None:
    got = rank_histogram(MEMBERS, OBS)
    m = MEMBERS.shape[1]
    ranks = (OBS[:, None] > MEMBERS).sum(axis=1)  # continuous values: no ties; rank 0 .. m
    assert got == pytest.approx(list(np.bincount(ranks, minlength=m + 1) / len(OBS)))
    # an observation equal to members shares its weight among the ranks it ties (1, 2, 2, 3 against 2: ranks
    # 1..3 of 0..4 share it), so a calibrated ensemble stays flat
    tied = rank_histogram(np.array([[1.0, 2.0, 2.0, 3.0]]), np.array([2.0]))
    assert tied == pytest.approx([0.0, 1 / 3, 1 / 3, 1 / 3, 0.0])
    assert rank_histogram(np.zeros((0, 3)), np.zeros(0)) is None


def test_a_calibrated_ensembles_ranks_are_flat_and_a_narrow_ones_are_u_shaped() -> None:
    from scipy import stats

    rng = np.random.default_rng(11)
    n, m = 4000, 9
    centre = rng.normal(0, 3, n)  # what the forecast knows; the truth and the members scatter around it alike
    truth = centre + rng.standard_normal(n)
    calibrated = rank_histogram(centre[:, None] + rng.standard_normal((n, m)), truth)
    narrow = rank_histogram(centre[:, None] + 0.4 * rng.standard_normal((n, m)), truth)
    assert calibrated is not None and narrow is not None and len(calibrated) == m + 1
    # flat: a chi-square test of uniform ranks does not reject at the 0.1 % level
    assert stats.chisquare(np.asarray(calibrated) * n).pvalue > 1e-3
    # too little spread: the truth falls outside the members far more often than 2 in m + 1 (here ~58 %)
    assert narrow[0] + narrow[-1] > 2 * 2 / (m + 1) and narrow[0] + narrow[-1] > 2 * (calibrated[0] + calibrated[-1])
    assert stats.chisquare(np.asarray(narrow) * n).pvalue < 1e-6


def test_crps_of_a_perfect_ensemble_is_lower_than_of_a_biased_one() -> None:
    rng = np.random.default_rng(12)
    n, m = 2000, 20
    centre = rng.normal(5, 2, n)
    truth = centre + rng.standard_normal(n)
    perfect = centre[:, None] + rng.standard_normal((n, m))  # drawn from the truth's own distribution
    crps = {name: [] for name in ("perfect", "biased")}
    for block in np.array_split(np.arange(n), 20):  # 20 independent blocks: the ordering holds in each
        obs = truth[block]
        for name, members in (("perfect", perfect[block]), ("biased", perfect[block] + 0.5)):
            crps[name].append(skill(Pairs(observed=obs, value=members.mean(axis=1), members=members))["crps"])
    assert all(p < b for p, b in zip(crps["perfect"], crps["biased"], strict=True))
    # a one-sided sign test over the blocks: 20 of 20 has p = 2^-20 under "no difference"
    assert np.mean(crps["perfect"]) < np.mean(crps["biased"]) - 0.05


def test_verify_scores_an_ensemble_apart_from_single_forecasts() -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    obs = [Observation(t0 + timedelta(hours=i), float(OBS[i])) for i in range(40)]
    single = [ForecastPoint(t0 + timedelta(hours=i), 3600, float(FCST[i]), workflow="forecast") for i in range(40)]
    ensemble = [ForecastPoint(t0 + timedelta(hours=i), 3600, float(MEMBERS[i].mean()), workflow="forecast",
                              members=[float(v) for v in MEMBERS[i]]) for i in range(40)]
    plain, members = verify(single + ensemble, obs, tolerance=timedelta(minutes=5))
    assert (plain.members, members.members) == (None, 12)
    assert plain.scores.get("crps") is None and plain.rank_histogram is None
    assert members.scores["crps"] == pytest.approx(skill(Pairs(observed=OBS, value=MEMBERS.mean(axis=1),
                                                               members=MEMBERS))["crps"])
    assert members.rank_histogram == pytest.approx(rank_histogram(MEMBERS, OBS))


def test_verify_gives_the_reliability_of_exceeding_a_threshold() -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    obs = [Observation(t0 + timedelta(hours=i), float(OBS[i])) for i in range(40)]
    points = [ForecastPoint(t0 + timedelta(hours=i), 3600, float(MEMBERS[i].mean()),
                            members=[float(v) for v in MEMBERS[i]]) for i in range(40)]
    (group,) = verify(points, obs, tolerance=timedelta(minutes=5), threshold=2.5)
    expected = reliability(exceedance(MEMBERS, 2.5), (OBS > 2.5).astype(float))
    assert group.reliability == [{"forecast": pytest.approx(b.forecast), "observed": pytest.approx(b.observed),
                                  "count": b.count} for b in expected]
    assert verify(points, obs, tolerance=timedelta(minutes=5))[0].reliability is None
