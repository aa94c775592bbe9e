"""Calibration numerics: a linear model's true parameters recovered by every method, seeded reproducibility,
the budget, and resuming from kept runs without running them again."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twinengine.calibration import BudgetSpent, Evaluator, Objective, Parameter, Space, calibrate
from twinengine.calibration.methods import Method
from twinengine.calibration.objectives import loss, score

X = np.linspace(0.0, 10.0, 60)
TRUE = {"slope": 2.0, "offset": 1.0}
OBSERVED = TRUE["slope"] * X + TRUE["offset"] + np.random.default_rng(7).normal(0.0, 0.2, X.size)
SPACE = Space((Parameter("slope", 0.0, 5.0), Parameter("offset", -3.0, 3.0)))


def linear(batch: list[dict[str, float]]) -> list[np.ndarray]:
    return [p["slope"] * X + p["offset"] for p in batch]


@pytest.mark.parametrize("method", list(Method))
def test_each_method_recovers_the_true_parameters(method: Method) -> None:
    found = calibrate(SPACE, linear, OBSERVED, objective=Objective.NSE, method=method, runs=700, seed=2)
    assert found.best is not None and len(found.runs) <= 700
    best = found.summary.best
    assert best["slope"] == pytest.approx(2.0, abs=0.08)
    assert best["offset"] == pytest.approx(1.0, abs=0.35)
    assert found.summary.best_score is not None and found.summary.best_score > 0.99
    # the posterior's interval holds the truth, and slope and offset trade off (negative correlation)
    low, high = found.summary.interval["slope"]
    assert low <= 2.0 <= high or abs(best["slope"] - 2.0) < 0.02
    assert found.summary.correlation is not None and found.summary.correlation[0][1] < 0


@pytest.mark.parametrize("method", [Method.DE, Method.SCEUA, Method.EMCEE])
def test_the_same_seed_gives_the_same_runs(method: Method) -> None:
    first = calibrate(SPACE, linear, OBSERVED, objective=Objective.RMSE, method=method, runs=300, seed=5)
    again = calibrate(SPACE, linear, OBSERVED, objective=Objective.RMSE, method=method, runs=300, seed=5)
    other = calibrate(SPACE, linear, OBSERVED, objective=Objective.RMSE, method=method, runs=300, seed=6)
    assert [r.params for r in first.runs] == [r.params for r in again.runs]
    assert [r.params for r in first.runs] != [r.params for r in other.runs]


class Crash(Exception):
    """Stands for the engine stopping in the middle of a calibration."""


def test_a_resumed_calibration_replays_kept_runs_and_ends_where_an_uninterrupted_one_does() -> None:
    kept: list = []

    def keep(new: list) -> None:
        kept.extend(new)
        if len(kept) >= 200:
            raise Crash

    with pytest.raises(Crash):
        calibrate(SPACE, linear, OBSERVED, objective=Objective.KGE, method=Method.DE, runs=400, seed=3,
                  on_runs=keep)
    simulated: list[int] = []

    def counting(batch: list[dict[str, float]]) -> list[np.ndarray]:
        simulated.append(len(batch))
        return linear(batch)

    resumed = calibrate(SPACE, counting, OBSERVED, objective=Objective.KGE, method=Method.DE, runs=400, seed=3,
                        known=kept)
    whole = calibrate(SPACE, linear, OBSERVED, objective=Objective.KGE, method=Method.DE, runs=400, seed=3)
    assert len(kept) >= 200
    assert sum(simulated) <= len(resumed.runs) - len(kept)  # the kept runs were not run again
    assert [r.params for r in resumed.runs] == [r.params for r in whole.runs]
    assert resumed.best == whole.best


def test_the_budget_is_never_exceeded_and_ends_the_method() -> None:
    ev = Evaluator(SPACE, OBSERVED, Objective.RMSE, linear, max_runs=5)
    assert len(ev.losses([np.array([1.0, 0.0])] * 3)) == 3
    with pytest.raises(BudgetSpent):
        ev.losses([np.array([2.0, 1.0])] * 3)
    assert ev.count == 5  # the two runs within the budget were kept
    for method in Method:
        found = calibrate(SPACE, linear, OBSERVED, objective=Objective.NSE, method=method, runs=37, seed=1)
        assert 0 < len(found.runs) <= 37


def test_a_failed_run_has_no_score_and_the_calibration_goes_on() -> None:
    def flaky(batch: list[dict[str, float]]) -> list[np.ndarray | None]:
        return [None if p["slope"] > 4.0 else p["slope"] * X + p["offset"] for p in batch]

    found = calibrate(SPACE, flaky, OBSERVED, objective=Objective.NSE, method=Method.DE, runs=300, seed=4)
    failed = [r for r in found.runs if math.isnan(r.score)]
    assert failed and found.best is not None and not math.isnan(found.best.score)


def test_objectives_and_their_losses() -> None:
    exact = TRUE["slope"] * X + TRUE["offset"]
    assert score(Objective.NSE, exact, exact) == pytest.approx(1.0)
    assert score(Objective.KGE, exact, exact) == pytest.approx(1.0)
    assert score(Objective.RMSE, exact + 0.5, exact) == pytest.approx(0.5)
    assert score(Objective.LIKELIHOOD, exact + 0.5, exact) > score(Objective.LIKELIHOOD, exact + 1.0, exact)
    assert loss(Objective.NSE, 0.8) == pytest.approx(0.2)
    assert loss(Objective.LIKELIHOOD, -3.0) == 3.0
    assert loss(Objective.RMSE, math.nan) == math.inf
    with pytest.raises(ValueError, match="simulated 3 values for 60 observations"):
        score(Objective.RMSE, np.ones(3), exact)
    with pytest.raises(ValueError, match="low < high"):
        Parameter("k", 2.0, 1.0)


def _exact_interval() -> dict[str, tuple[float, float]]:
    """The exact 90 % intervals of the linear model's posterior under the likelihood the calibration uses,
    -n/2 ln(SSE/n) with uniform priors: a Student-t with n - 2 degrees of freedom around the least-squares
    fit, of scale SSE_min / (n - 2) (X^T X)^-1 (the error variance profiled out)."""
    from scipy import stats

    design = np.column_stack([X, np.ones_like(X)])
    fit, sse = np.linalg.lstsq(design, OBSERVED, rcond=None)[:2]
    dof = X.size - 2
    scale = np.sqrt(np.diag(sse[0] / dof * np.linalg.inv(design.T @ design)))
    t = stats.t.ppf(0.95, dof)
    return {name: (fit[i] - t * scale[i], fit[i] + t * scale[i]) for i, name in enumerate(("slope", "offset"))}


@pytest.mark.parametrize("method", [Method.DREAM, Method.EMCEE])
def test_both_samplers_match_the_exact_posterior_of_a_linear_gaussian_model(method: Method) -> None:
    """DREAM's sample is its chains' states from the iteration its R-hat fell below the limit (the runs it
    proposed spread wider: its intervals were 2.4-4 times the exact ones), accepted by the Metropolis ratio of
    the log posterior; emcee's its walkers' second half. Both 90 % intervals match the exact posterior's."""
    exact = _exact_interval()
    found = calibrate(SPACE, linear, OBSERVED, objective=Objective.LIKELIHOOD, method=method, runs=3000, seed=1)
    for name, (low, high) in exact.items():
        got_low, got_high = found.summary.interval[name]
        width = high - low
        assert 0.75 < (got_high - got_low) / width < 1.33, (name, found.summary.interval[name], (low, high))
        assert abs((got_low + got_high) / 2 - (low + high) / 2) < 0.25 * width, (name, found.summary.interval[name])
        assert 0.99 < found.summary.r_hat[name] < 1.2  # the chains mixed
    if method is Method.DREAM:  # stopped on convergence, before the budget
        assert found.stopped == "converged" and len(found.runs) < 3000
