"""One analysis step of a twin's ensemble with the filters of ``twinengine.assimilation`` (plain numpy).

Observations through an app's operator (a rating curve) enter by state augmentation: each member carries
the values its operator gave, after the state, so every observation is a linear selection of the augmented
member and the filters need no callable; the state part of the analysed members is the analysis.

Plain numpy and the numerics package only: an app's worker imports this module to run many cycles in one
call (``twinengine.twin_assimilation.worker_side``), so the method is its name and the tuning anything with its fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from twinengine.assimilation import bootstrap_update, enkf, etkf, letkf, three_dvar

__all__ = ["Analysis", "Background", "FilterTuning", "analyse", "weighted_stats"]


class FilterTuning(Protocol):
    """The knobs ``analyse`` reads: ``catalog.assimilation_spec.Tuning`` in the engine, a plain copy in a worker."""

    @property
    def inflation(self) -> float: ...
    @property
    def additive(self) -> float: ...
    @property
    def rotate(self) -> bool: ...
    @property
    def radius(self) -> float | None: ...
    @property
    def period(self) -> float | None: ...
    @property
    def threshold(self) -> float: ...
    @property
    def jitter(self) -> float: ...
    @property
    def background_std(self) -> float | None: ...


@dataclass(frozen=True)
class Background:
    """The forecast members (N x n), the operators' values per member (N x q), the observations ``y`` (p,),
    their error variances (p,), which augmented column each observes (p,), and coordinates for the LETKF
    (an operator's column sits where its observation does)."""

    members: np.ndarray
    observed: np.ndarray
    y: np.ndarray
    variances: np.ndarray
    columns: np.ndarray
    coords: np.ndarray  # (n + q,) of every augmented column
    obs_coords: np.ndarray  # (p,)
    log_weights: np.ndarray | None = None


@dataclass(frozen=True)
class Analysis:
    members: np.ndarray  # (N, n)
    log_weights: np.ndarray | None  # the particle filter's, else None
    background_mean: np.ndarray  # (p,) H applied to the forecast mean (weighted for the particle filter)
    expected: np.ndarray  # (p,) sqrt(var(H x_f) + R)
    ess: float | None  # the particle filter's effective sample size


def weighted_stats(members: np.ndarray, log_weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per column: plain (ddof 1) for an ensemble, weighted for particles."""
    if log_weights is None:
        return members.mean(axis=0), members.std(axis=0, ddof=1)
    w = np.exp(log_weights - log_weights.max())
    w /= w.sum()
    mean = w @ members
    var = w @ (members - mean) ** 2 / max(1.0 - float(np.sum(w * w)), 1e-12)
    return mean, np.sqrt(var)


def analyse(bg: Background, method: str, tuning: FilterTuning, rng: np.random.Generator) -> Analysis:
    """The analysis of ``bg`` by ``method`` (enkf, etkf, letkf, pf or 3dvar: ``Method``'s values); raises
    ValueError naming what is wrong (from the numerics)."""
    N, n = bg.members.shape
    Z = np.hstack([bg.members, bg.observed]) if bg.observed.size else bg.members
    H = np.zeros((bg.y.size, Z.shape[1]))
    H[np.arange(bg.y.size), bg.columns] = 1.0
    HZ = Z[:, bg.columns]
    mean, std = weighted_stats(HZ, bg.log_weights if method == "pf" else None)
    expected = np.sqrt(std**2 + bg.variances)
    log_weights: np.ndarray | None = None
    ess: float | None = None
    inflation, additive = tuning.inflation, tuning.additive
    if method == "enkf":
        Za = enkf(Z, bg.y, H, bg.variances, rng, inflation=inflation, additive=additive)
    elif method == "etkf":
        Za = etkf(Z, bg.y, H, bg.variances, rng, rotate=tuning.rotate, inflation=inflation, additive=additive)
    elif method == "letkf":
        if tuning.radius is None:
            raise ValueError("the letkf needs assimilation.tuning.radius")
        Za = letkf(Z, bg.y, H, bg.variances, rng, state_coords=bg.coords, obs_coords=bg.obs_coords,
                   radius=tuning.radius, period=tuning.period, inflation=inflation, additive=additive)
    elif method == "pf":
        lw = bg.log_weights if bg.log_weights is not None else np.zeros(N)
        step = bootstrap_update(Z, lw, bg.y, H, bg.variances, rng, threshold=tuning.threshold, jitter=tuning.jitter)
        Za, log_weights, ess = step.particles, step.log_weights, step.ess
    else:  # 3D-Var: one static gain; the members move with the mean, keeping their spread
        xb = bg.members.mean(axis=0)
        if bg.observed.size:
            raise ValueError("3dvar takes observations of state entries only (observes:), not operators")
        b_std = tuning.background_std if tuning.background_std is not None else float(
            np.mean(bg.members.std(axis=0, ddof=1))) or 1.0
        xa = three_dvar(xb, bg.y, H[:, :n], bg.variances, np.eye(n) * b_std**2)
        Za = bg.members + (xa - xb)
    return Analysis(np.asarray(Za)[:, :n], log_weights, mean, expected, ess)
