"""Objective functions of a calibration: the engine's verification scores (through the ``scores`` library, as
``quality/scores.py`` uses it) and a Gaussian log-likelihood, each turned into a loss that optimisers minimise."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from twinengine.catalog.calibration_spec import Objective

__all__ = ["Objective", "log_likelihood", "loss", "score"]

Array = npt.NDArray[np.float64]


def _pair(simulated: Array, observed: Array) -> tuple[Array, Array]:
    sim, obs = np.asarray(simulated, dtype="float64"), np.asarray(observed, dtype="float64")
    if sim.shape != obs.shape:
        raise ValueError(f"the model simulated {sim.shape[0] if sim.ndim else 0} values for "
                         f"{obs.shape[0] if obs.ndim else 0} observations")
    keep = np.isfinite(obs)
    return sim[keep], obs[keep]


def log_likelihood(simulated: Array, observed: Array) -> float:
    """Gaussian log-likelihood of independent errors whose variance is its own maximum-likelihood estimate:
    -n/2 · ln(SSE/n) (constants dropped). A non-finite simulation is impossible (-inf)."""
    sim, obs = _pair(simulated, observed)
    if len(obs) == 0 or not np.all(np.isfinite(sim)):
        return -math.inf
    sse = float(np.sum((sim - obs) ** 2))
    n = len(obs)
    return -0.5 * n * math.log(max(sse / n, 1e-300))


def score(objective: Objective, simulated: Array, observed: Array) -> float:
    """The objective's own value for one run (NaN where the run gives none: a non-finite simulation)."""
    if objective is Objective.LIKELIHOOD:
        value = log_likelihood(simulated, observed)
        return value if math.isfinite(value) else math.nan
    sim, obs = _pair(simulated, observed)
    if len(obs) == 0 or not np.all(np.isfinite(sim)):
        return math.nan
    import xarray as xr
    from scores import continuous

    fcst, ref = xr.DataArray(sim, dims=("t",)), xr.DataArray(obs, dims=("t",))
    with np.errstate(divide="ignore", invalid="ignore"):
        if objective is Objective.RMSE:
            found = continuous.rmse(fcst, ref)
        elif objective is Objective.NSE:
            found = continuous.nse(fcst, ref)
        else:
            found = continuous.kge(fcst, ref)
    return float(found.values)


def loss(objective: Objective, value: float) -> float:
    """What optimisers minimise: 1 - NSE, 1 - KGE, RMSE, -log-likelihood; a run without a score is +inf."""
    if not math.isfinite(value):
        return math.inf
    if objective in (Objective.NSE, Objective.KGE):
        return 1.0 - value
    if objective is Objective.LIKELIHOOD:
        return -value
    return value
