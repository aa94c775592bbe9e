"""Forecast/analysis cycles over a synthetic truth ("twin experiments"), deterministic given a seed.

A truth run is observed with noise drawn from R; the ensemble is forecast with the same model and analysed
with the observations at each cycle. The errors against the truth and the innovation statistics are what
tell whether a filter and its tuning work: the analysis RMSE should sit below the observation error and near
the ensemble spread, and the innovations (observation minus background) should have mean zero and a spread
equal to the expected sqrt(H P_f H^T + R).

One seed gives one ``numpy.random.SeedSequence``, split into independent streams for the truth's model
noise, the observation noise, the ensemble's model noise and the analysis, so that changing the filter never
changes the truth or the observations a run sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from twinengine.assimilation import _checks
from twinengine.assimilation._checks import Array, Operator

__all__ = ["AnalysisStep", "CycleResult", "Model", "run_cycles"]

Model = Callable[[Array, np.random.Generator], Array]
"""Advance states (rows of an (N, n) array) from one observation time to the next; the generator is for
stochastic models and may be ignored."""

AnalysisStep = Callable[[Array, Array, np.random.Generator], "Array | tuple[Array, Array]"]
"""(forecast ensemble, observations, generator) -> analysis ensemble, or (particles, normalised weights)."""


@dataclass(frozen=True)
class CycleResult:
    """Time series of a cycled run; statistics over cycles skip the first ``burn_in`` ones."""

    rmse_forecast: Array
    """(cycles,) RMSE of the forecast (background) mean against the truth."""
    rmse_analysis: Array
    """(cycles,) RMSE of the analysis mean against the truth."""
    spread_analysis: Array
    """(cycles,) root of the mean ensemble variance after analysis (0 for a single state)."""
    innovation_mean: Array
    """(p,) mean over cycles of y - H(x_f) (bias of the background against the observations)."""
    innovation_rms: float
    """Root mean square of all innovations."""
    expected_innovation_spread: float
    """sqrt of the mean of diag(H P_f H^T + R): what ``innovation_rms`` should be if P_f and R are right."""
    burn_in: int

    @property
    def mean_rmse(self) -> float:
        """Time-mean analysis RMSE after the burn-in: the figure filters are compared by."""
        return float(self.rmse_analysis[self.burn_in:].mean())

    @property
    def mean_spread(self) -> float:
        """Time-mean analysis spread after the burn-in."""
        return float(self.spread_analysis[self.burn_in:].mean())


def _mean_var(E: Array, weights: Array | None) -> tuple[Array, Array]:
    """Mean and variance of every variable, weighted for particles."""
    if weights is None:
        var = E.var(axis=0, ddof=1) if E.shape[0] > 1 else np.zeros(E.shape[1])
        return E.mean(axis=0), var
    mean = weights @ E
    return mean, weights @ (E - mean) ** 2


def run_cycles(model: Model, analysis: AnalysisStep, *, truth0: object,
               ensemble0: object | Callable[[np.random.Generator], Array], H: Operator, R: object,
               cycles: int, seed: int, burn_in: int = 0, background: object | None = None) -> CycleResult:
    """Run ``cycles`` forecast/analysis cycles from ``truth0`` (n,) and ``ensemble0`` (N, n).

    ``ensemble0`` may be a function drawing the initial ensemble from a generator, so that it too follows the
    seed. ``background`` (an n x n B) gives the expected innovation spread for a single-state analysis
    (3D-Var), where there is no ensemble to estimate P_f from.
    """
    if cycles < 1:
        raise ValueError(f"cycles must be >= 1, got {cycles}")
    if not 0 <= burn_in < cycles:
        raise ValueError(f"burn_in must be between 0 and cycles - 1 ({cycles - 1}), got {burn_in}")
    root = np.random.SeedSequence(seed)
    truth_rng, obs_rng, model_rng, analysis_rng, init_rng = (np.random.default_rng(s) for s in root.spawn(5))
    truth = np.asarray(truth0, dtype=float)
    if truth.ndim != 1:
        raise ValueError(f"truth0 must be a 1-D state, got shape {truth.shape}")
    E = ensemble0(init_rng) if callable(ensemble0) else ensemble0
    E = _checks.ensemble(E, "ensemble0", min_members=1)
    if E.shape[1] != truth.size:
        raise ValueError(f"ensemble0 has {E.shape[1]} state variables but truth0 has {truth.size}")
    p = _checks.apply_operator(H, truth[None, :]).shape[1]
    cov = _checks.obs_error(R, p)
    r_diag = cov if cov.ndim == 1 else np.diag(cov)
    B = None
    if background is not None:
        B = np.asarray(background, dtype=float)
        if B.shape != (truth.size, truth.size):
            raise ValueError(f"background must be a {truth.size}x{truth.size} matrix, got shape {B.shape}")

    rmse_f, rmse_a, spread = np.empty(cycles), np.empty(cycles), np.empty(cycles)
    innov_sum, innov_sq, expected_sq, counted = np.zeros(p), 0.0, 0.0, 0
    weights: Array | None = None
    for k in range(cycles):
        truth = model(truth[None, :], truth_rng)[0]
        E = model(E, model_rng)
        y = _checks.apply_operator(H, truth[None, :])[0] + _checks.sample_obs_noise(cov, 1, obs_rng)[0]
        mean_f, _ = _mean_var(E, weights)
        Y = _checks.apply_operator(H, E, p)
        ybar, yvar = _mean_var(Y, weights)
        if E.shape[0] == 1 and B is not None:
            yvar = np.diag(_checks.operator_matrix(H, truth.size) @ B @ _checks.operator_matrix(H, truth.size).T)
        rmse_f[k] = np.sqrt(np.mean((mean_f - truth) ** 2))
        out = analysis(E, y, analysis_rng)
        E, weights = (out[0], out[1]) if isinstance(out, tuple) else (out, None)
        mean_a, var_a = _mean_var(E, weights)
        rmse_a[k] = np.sqrt(np.mean((mean_a - truth) ** 2))
        spread[k] = np.sqrt(np.mean(var_a))
        if k >= burn_in:
            d = y - ybar
            innov_sum += d
            innov_sq += float(d @ d)
            expected_sq += float(np.sum(yvar + r_diag))
            counted += 1
    return CycleResult(rmse_forecast=rmse_f, rmse_analysis=rmse_a, spread_analysis=spread,
                       innovation_mean=innov_sum / counted, innovation_rms=float(np.sqrt(innov_sq / (counted * p))),
                       expected_innovation_spread=float(np.sqrt(expected_sq / (counted * p))), burn_in=burn_in)
