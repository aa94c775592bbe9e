"""Ensemble statistics and perturbations: mean, spread, quantiles and exceedance against numpy computed on
its own; seeded draws; declarations refused naming the field; and a statistical check that the probability
of exceedance is calibrated on a synthetic problem whose truth is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from twinengine.ensembles.scenarios import check_scenario, horizon_hours
from twinengine.ensembles.schemas import EnsembleCreate, EnsembleDeclaration
from twinengine.errors import ValidationFailed
from twinengine.quality.ensemble_stats import derive, stack_members, summary
from twinengine.quality.perturb import Distribution, Lognormal, Normal, Uniform, draw
from twinengine.workflows.graph import parse_graph
from twinengine.workflows.members import parameter_names, shared_nodes
from twinengine.workflows.processes import build_registry

RNG = np.random.default_rng(11)
SERIES = RNG.gamma(2.0, 0.5, (9, 24))  # 9 members, 24 steps


def test_statistics_match_numpy() -> None:
    stats = derive(stack_members(list(SERIES)), quantiles=[0.1, 0.5, 0.9], threshold=1.2)
    assert stats["members"].dims == ("member", "step") and stats.sizes["member"] == 9
    np.testing.assert_allclose(stats["mean"].values, SERIES.mean(axis=0))
    np.testing.assert_allclose(stats["spread"].values, SERIES.std(axis=0, ddof=1))
    np.testing.assert_allclose(stats["quantiles"].sel(quantile=0.9).values, np.quantile(SERIES, 0.9, axis=0))
    np.testing.assert_allclose(stats["exceedance"].values, (SERIES > 1.2).sum(axis=0) / 9)
    peaks = SERIES.max(axis=1)
    np.testing.assert_allclose(stats["peak_mean"].values, peaks.mean())
    np.testing.assert_allclose(stats["peak_quantiles"].sel(quantile=0.5).values, np.median(peaks))
    assert float(stats["peak_exceedance"]) == pytest.approx((peaks > 1.2).mean())
    doc = summary(stats)
    assert doc["members"] == 9 and doc["threshold"] == 1.2
    assert doc["series"]["quantiles"]["0.1"] == pytest.approx(np.quantile(SERIES, 0.1, axis=0).round(6).tolist())
    assert doc["peak"]["spread"] == pytest.approx(peaks.std(ddof=1), abs=1e-6)


def test_scalar_members_one_member_and_no_threshold() -> None:
    one = derive(stack_members([3.0]))
    assert float(one["spread"]) == 0.0 and "exceedance" not in one
    scalars = derive(stack_members([1.0, 2.0, 4.0]), threshold=1.5)
    assert float(scalars["exceedance"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="shape"):
        stack_members([[1.0, 2.0], [1.0]])


def test_draws_are_seeded_and_kept_inside_the_parameter_range() -> None:
    spec = Normal(distribution="normal", cv=0.5)
    a = draw(spec, 0.45, 200, np.random.default_rng(3), {"minimum": 0, "maximum": 1})
    b = draw(spec, 0.45, 200, np.random.default_rng(3), {"minimum": 0, "maximum": 1})
    assert a == b and min(a) >= 0 and max(a) <= 1 and len(set(a)) > 150
    assert np.mean(a) == pytest.approx(0.45, abs=0.05)
    logs = draw(Lognormal(distribution="lognormal", sigma=0.3), 2.0, 20_000, np.random.default_rng(1))
    assert np.median(logs) == pytest.approx(2.0, rel=0.02) and min(logs) > 0
    flat = draw(Uniform(distribution="uniform", rel=0.2), 10.0, 5000, np.random.default_rng(2))
    assert min(flat) >= 8.0 and max(flat) <= 12.0
    pinned = draw(Uniform(distribution="uniform", low=0, high=5, clip=(1, 2)), 0, 100, np.random.default_rng(2),
                  {"exclusiveMinimum": 1.5})
    assert min(pinned) > 1.5 and max(pinned) <= 2


@pytest.mark.parametrize(("raw", "where"), [
    ({"distribution": "gamma", "k": 1}, "gamma"),
    ({"distribution": "normal"}, "exactly one of sd"),
    ({"distribution": "normal", "sd": 1, "cv": 0.1}, "exactly one of sd"),
    ({"distribution": "uniform", "low": 2, "high": 1}, "above high"),
    ({"distribution": "lognormal", "sigma": -1}, "sigma"),
])
def test_bad_distributions_are_refused(raw: dict[str, object], where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        TypeAdapter(Distribution).validate_python(raw)


def test_requests_and_declarations_name_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        EnsembleCreate.model_validate({"workflow": "forecast", "members": 0})
    assert info.value.errors()[0]["loc"] == ("members",)
    with pytest.raises(ValidationError) as info:
        EnsembleCreate.model_validate({"workflow": "f", "members": 2, "perturb": {"x": {"distribution": "beta"}}})
    assert info.value.errors()[0]["loc"][:2] == ("perturb", "x")
    with pytest.raises(ValidationError):
        EnsembleDeclaration.model_validate({"state": {"median": "x"}})


def test_scenarios_are_checked_against_the_shipped_schema() -> None:
    ok = check_scenario({"twin": "t", "workflow": "forecast", "horizon": "PT36H", "branches": [{"name": "a"}]})
    assert horizon_hours(ok["horizon"]) == 36 and horizon_hours("P1DT6H") == 30 and horizon_hours(12) == 12
    with pytest.raises(ValidationFailed) as info:
        check_scenario({"twin": "t", "workflow": "forecast", "branches": [
            {"name": "a", "ensemble": {"members": 0}}, {"name": "B!"}, {"name": "c", "forks": 1}]})
    locs = {p.loc for p in info.value.problems}
    assert {"branches[0].ensemble.members", "branches[1].name", "branches[2].forks"} <= locs
    with pytest.raises(ValidationFailed) as info:
        check_scenario({"workflow": "forecast", "branches": []})
    assert {p.loc for p in info.value.problems} == {"twin", "branches"}


def test_only_nodes_no_varying_parameter_reaches_are_shared() -> None:
    graph = parse_graph({"parameters": [{"name": "k", "schema": {}}], "process_graph": {
        "load": {"process_id": "load_collection", "arguments": {"id": "rain", "spatial_extent": None,
                                                                "temporal_extent": None}},
        "mean": {"process_id": "reduce_dimension", "arguments": {"data": {"from_node": "load"}, "dimension": "t",
                 "reducer": {"process_graph": {"m": {"process_id": "mean", "arguments": {
                     "data": {"from_parameter": "data"}}, "result": True}}}}},
        "scaled": {"process_id": "multiply", "arguments": {"x": {"from_node": "mean"}, "y": {"from_parameter": "k"}}},
        "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "mean"}, "format": "JSON"},
                 "result": True}}})
    registry = build_registry()
    assert shared_nodes(graph, registry, {"k", "run_id"}, None) == {"load", "mean"}
    assert shared_nodes(graph, registry, {"data"}, None) == {"load"}  # a callback's name counts too
    assert parameter_names({"a": [{"from_parameter": "x"}, {"process_graph": {"n": {"from_parameter": "y"}}}]}) == {
        "x", "y"}


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_exceedance_is_calibrated_on_a_problem_with_known_truth() -> None:
    """2,000 forecasts: the truth is normal(mu, 1) with mu varying per forecast; an ensemble of 40 members
    drawn from the same distribution gives P(truth > 0.5). Stated tolerance: in every probability bin with
    at least 100 forecasts, the observed frequency is within 0.06 of the mean forecast probability, and the
    Brier score is within 0.01 of that of the exact probabilities."""
    rng = np.random.default_rng(2024)
    threshold, cases, members = 0.5, 2000, 40
    mu = rng.uniform(-2, 3, cases)
    truth = rng.normal(mu, 1.0)
    draws = rng.normal(mu, 1.0, (members, cases))  # member by forecast: one "step" per forecast
    forecast = derive(stack_members(list(draws)), threshold=threshold)["exceedance"].values
    exact = np.array([1 - _phi(threshold - m) for m in mu])
    happened = truth > threshold
    bins = np.clip((forecast * 5).astype(int), 0, 4)
    checked = 0
    for b in range(5):
        chosen = bins == b
        if chosen.sum() >= 100:
            checked += 1
            assert abs(happened[chosen].mean() - forecast[chosen].mean()) < 0.06, b
    assert checked >= 3
    brier, ideal = np.mean((forecast - happened) ** 2), np.mean((exact - happened) ** 2)
    assert brier - ideal < 0.01
    assert np.mean(np.abs(forecast - exact)) < 0.07  # binomial noise of 40 members: sd at most 0.08


def test_perturbed_draws_give_the_exceedance_of_their_distribution() -> None:
    """A linear model y = 2·c with c ~ normal(mean=0.45, sd=0.1·0.45): P(y > 1) is known in closed form."""
    values = draw(Normal(distribution="normal", cv=0.1), 0.45, 4000, np.random.default_rng(9))
    got = float(derive(stack_members([2 * v for v in values]), threshold=1.0)["exceedance"])
    want = 1 - _phi((0.5 - 0.45) / 0.045)
    assert got == pytest.approx(want, abs=0.03)
