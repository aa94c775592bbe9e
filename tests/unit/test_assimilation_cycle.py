"""Exact answers and reproducibility: the linear reservoir against its Kalman filter, seeded cycles, 3D-Var."""

from __future__ import annotations

import numpy as np
import pytest

from twinengine.assimilation import enkf, etkf, run_cycles, three_dvar
from twinengine.assimilation.reference_models import LinearReservoir, lorenz63_step, lorenz96_step, steps

RESERVOIR = LinearReservoir(a=0.9, inflow=1.0, q=1.0, r=1.0)


def test_reservoir_kalman_filter_reaches_the_riccati_fixed_point() -> None:
    _, ys = RESERVOIR.simulate(10.0, 50, np.random.default_rng(0))
    kf = RESERVOIR.kalman_filter(ys, m0=10.0, p0=5.0)
    assert kf.analysis_var[-1] == pytest.approx(RESERVOIR.steady_analysis_var(), rel=1e-12)
    p = RESERVOIR.steady_analysis_var()
    forecast = RESERVOIR.a**2 * p + RESERVOIR.q
    assert p == pytest.approx(forecast * RESERVOIR.r / (forecast + RESERVOIR.r))


def test_enkf_on_the_linear_reservoir_matches_the_exact_kalman_filter() -> None:
    """EnKF, N = 100, over 3000 cycles of one truth run, against the exact filter on the same observations.

    The time-mean ensemble variance estimates the analysis error variance with a sampling error near 0.3 %
    (N = 100 members, thousands of weakly correlated cycles); a finite ensemble biases it low by about 1/N,
    so 2 % is a tight bound. The EnKF mean must track the KF mean: their gap is sampling noise of order
    sqrt(P_a / N). The realised squared error, a 3000-sample estimate of P_a (standard error ~ 2.6 %), is held
    to 10 %.
    """
    cycles, N = 3000, 100
    rng = np.random.default_rng(2024)
    truth, ys = RESERVOIR.simulate(10.0, cycles, rng)
    kf = RESERVOIR.kalman_filter(ys, m0=10.0, p0=1.0)
    E = 10.0 + rng.standard_normal((N, 1))
    H, R = np.ones((1, 1)), np.array([RESERVOIR.r])
    means, variances = np.empty(cycles), np.empty(cycles)
    for k in range(cycles):
        E = RESERVOIR.step(E, rng)
        E = enkf(E, ys[k : k + 1], H, R, rng)
        means[k], variances[k] = E.mean(), E.var(ddof=1)
    exact = RESERVOIR.steady_analysis_var()
    burn = 50
    assert variances[burn:].mean() == pytest.approx(exact, rel=0.02)
    gap = np.sqrt(np.mean((means[burn:] - kf.analysis_mean[burn:]) ** 2))
    assert gap < 0.2 * np.sqrt(exact)
    assert np.mean((means[burn:] - truth[burn:]) ** 2) == pytest.approx(exact, rel=0.10)
    assert np.mean((kf.analysis_mean[burn:] - truth[burn:]) ** 2) == pytest.approx(exact, rel=0.10)


def _lorenz63_run(seed: int, analysis: str = "etkf") -> object:
    advance = steps(lorenz63_step, 25)
    H, R = np.eye(3), np.full(3, 2.0)
    x0 = np.array([1.509, -1.531, 25.46])

    def step(E: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if analysis == "enkf":
            return enkf(E, y, H, R, rng, inflation=1.02)
        return etkf(E, y, H, R, rng, inflation=1.02, additive=0.01)

    return run_cycles(lambda x, _rng: advance(x), step, truth0=x0,
                      ensemble0=lambda rng: x0 + rng.standard_normal((10, 3)), H=H, R=R, cycles=30, seed=seed,
                      burn_in=5)


def test_a_seeded_run_is_reproducible_and_another_seed_differs() -> None:
    for analysis in ("etkf", "enkf"):
        a, b, c = _lorenz63_run(7, analysis), _lorenz63_run(7, analysis), _lorenz63_run(8, analysis)
        np.testing.assert_array_equal(a.rmse_analysis, b.rmse_analysis)  # type: ignore[attr-defined]
        np.testing.assert_array_equal(a.innovation_mean, b.innovation_mean)  # type: ignore[attr-defined]
        assert not np.array_equal(a.rmse_analysis, c.rmse_analysis)  # type: ignore[attr-defined]


def test_cycle_statistics_on_lorenz96_are_sane() -> None:
    n = 40
    x0 = 8.0 + np.random.default_rng(0).standard_normal(n)
    for _ in range(300):
        x0 = lorenz96_step(x0)
    H, R = np.eye(n), np.ones(n)
    result = run_cycles(lambda x, _rng: lorenz96_step(x), lambda E, y, rng: etkf(E, y, H, R, inflation=1.02),
                        truth0=x0, ensemble0=lambda rng: x0 + rng.standard_normal((20, n)), H=H, R=R,
                        cycles=150, seed=1, burn_in=50)
    # A working filter beats the observations (error 1) by far, with a spread of the same size as its error,
    # and innovations whose spread is the one P_f and R predict.
    assert result.mean_rmse < 0.4
    assert 0.5 < result.mean_spread / result.mean_rmse < 2.0
    assert result.innovation_rms == pytest.approx(result.expected_innovation_spread, rel=0.2)
    assert np.abs(result.innovation_mean).max() < 0.5
    assert result.rmse_forecast.shape == (150,)


def test_three_dvar_is_the_optimal_interpolation_formula() -> None:
    rng = np.random.default_rng(3)
    n, p = 6, 4
    xb, H = rng.standard_normal(n), rng.standard_normal((p, n))
    L = rng.standard_normal((n, n))
    B, R = L @ L.T + np.eye(n), np.full(p, 0.5)
    y = H @ xb + rng.standard_normal(p)
    gain = B @ H.T @ np.linalg.inv(H @ B @ H.T + np.diag(R))
    np.testing.assert_allclose(three_dvar(xb, y, H, R, B), xb + gain @ (y - H @ xb), atol=1e-10)
    # The analysis minimises the 3D-Var cost: its gradient vanishes there.
    xa = three_dvar(xb, y, H, R, B)
    grad = np.linalg.solve(B, xa - xb) - H.T @ ((y - H @ xa) / R)
    np.testing.assert_allclose(grad, 0.0, atol=1e-9)
    np.testing.assert_allclose(three_dvar(xb, y, H, R, np.zeros((n, n))), xb)


@pytest.mark.parametrize(("call", "argument"), [
    (lambda: three_dvar(np.zeros(3), np.zeros(2), np.eye(3), np.ones(2), np.eye(3)), "H"),
    (lambda: three_dvar(np.zeros(3), np.zeros(3), np.eye(3), np.ones(3), np.eye(2)), "B"),
    (lambda: three_dvar(np.zeros(3), np.zeros(3), np.eye(3), np.ones(3), -np.eye(3)), "B"),
    (lambda: three_dvar(np.zeros(3), np.zeros(3), np.eye(3), np.zeros(3), np.eye(3)), "R"),
    (lambda: three_dvar(np.zeros((3, 1)), np.zeros(3), np.eye(3), np.ones(3), np.eye(3)), "xb"),
    (lambda: run_cycles(lambda x, g: x, lambda E, y, g: E, truth0=np.zeros(2), ensemble0=np.zeros((3, 3)),
                        H=np.eye(2), R=np.ones(2), cycles=5, seed=0), "ensemble0"),
    (lambda: run_cycles(lambda x, g: x, lambda E, y, g: E, truth0=np.zeros(2), ensemble0=np.zeros((3, 2)),
                        H=np.eye(2), R=np.ones(2), cycles=0, seed=0), "cycles"),
    (lambda: run_cycles(lambda x, g: x, lambda E, y, g: E, truth0=np.zeros(2), ensemble0=np.zeros((3, 2)),
                        H=np.eye(2), R=np.ones(2), cycles=5, seed=0, burn_in=5), "burn_in"),
    (lambda: steps(lorenz96_step, 0), "count"),
])
def test_bad_input_names_the_argument(call: object, argument: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{argument}\b"):
        call()  # type: ignore[operator]
