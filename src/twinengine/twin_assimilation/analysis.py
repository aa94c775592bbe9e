"""One analysis step of a twin's ensemble with the filters of ``twinengine.assimilation`` (plain numpy).

Observations through an app's operator (a rating curve) enter by state augmentation: each member carries
the values its operator gave, after the state, so every observation is a linear selection of the augmented
member and the filters need no callable; the state part of the analysed members is the analysis.

Plain numpy and the numerics package only: an app's worker imports this module to run many cycles in one
call (``twinengine.twin_assimilation.worker_side``), so the method is its name and the tuning anything with its fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from twinengine.assimilation import bootstrap_update, enkf, letkf, three_dvar
from twinengine.assimilation._checks import inflate
from twinengine.assimilation.ensemble import etkf_anomalies, etkf_observed

__all__ = ["Analysis", "Background", "FilterTuning", "Generator", "analyse", "weighted_stats"]


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


Generator = np.random.Generator | Callable[[], np.random.Generator]


def analyse(bg: Background, method: str, tuning: FilterTuning, rng: Generator) -> Analysis:
    """The analysis of ``bg`` by ``method`` (enkf, etkf, letkf, pf or 3dvar: ``Method``'s values); raises
    ValueError naming what is wrong (from the numerics). ``rng`` may be a function making the generator: it
    is called only by a method that draws (seeding a generator costs more than a small ETKF's algebra)."""
    N, n = bg.members.shape
    Z = np.hstack([bg.members, bg.observed]) if bg.observed.size else bg.members
    if method == "etkf" and not tuning.rotate and not _additive(tuning.additive):
        return _etkf_plain(Z, bg, tuning.inflation, n)
    HZ = Z[:, bg.columns]
    weighted = bg.log_weights if method == "pf" else None
    if weighted is None:  # weighted_stats's plain case, on the observed columns only
        mean = HZ.mean(axis=0)
        var = ((HZ - mean) ** 2).sum(axis=0) / (N - 1)
    else:
        mean, std = weighted_stats(HZ, weighted)
        var = std**2
    expected = np.sqrt(var + bg.variances)
    log_weights: np.ndarray | None = None
    ess: float | None = None
    inflation, additive = tuning.inflation, tuning.additive
    if method == "etkf":
        draws = tuning.rotate or bool(np.any(np.asarray(additive) > 0))
        generator = _generator(rng) if draws else None
        if not (np.isfinite(Z).all() and np.isfinite(bg.y).all()):
            raise ValueError("E or y contains NaN or infinite values")
        Zi = inflate(Z, inflation, additive, generator)  # the observed columns are a selection of Z's
        Za = etkf_observed(Zi, Zi[:, bg.columns], bg.y, bg.variances, generator, rotate=tuning.rotate)
        return Analysis(np.asarray(Za)[:, :n], None, mean, expected, None)
    H = np.zeros((bg.y.size, Z.shape[1]))
    H[np.arange(bg.y.size), bg.columns] = 1.0
    if method == "enkf":
        Za = enkf(Z, bg.y, H, bg.variances, _generator(rng), inflation=inflation, additive=additive)
    elif method == "letkf":
        if tuning.radius is None:
            raise ValueError("the letkf needs assimilation.tuning.radius")
        Za = letkf(Z, bg.y, H, bg.variances, _generator(rng), state_coords=bg.coords, obs_coords=bg.obs_coords,
                   radius=tuning.radius, period=tuning.period, inflation=inflation, additive=additive)
    elif method == "pf":
        lw = bg.log_weights if bg.log_weights is not None else np.zeros(N)
        step = bootstrap_update(Z, lw, bg.y, H, bg.variances, _generator(rng), threshold=tuning.threshold,
                                jitter=tuning.jitter)
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


def _etkf_plain(Z: np.ndarray, bg: Background, inflation: float, n: int) -> Analysis:
    """The deterministic ETKF (no rotation, no additive noise) from one mean of the augmented members: the
    observed mean and spread, the inflation and the analysis all come from it and its anomalies."""
    xbar = Z.mean(axis=0)
    if not (np.isfinite(xbar).all() and np.isfinite(bg.y).all()):  # a NaN or infinite member value shows here
        raise ValueError("E or y contains NaN or infinite values")
    if not np.isfinite(inflation) or inflation < 1.0:
        raise ValueError(f"inflation must be a finite factor >= 1, got {inflation}")
    A = Z - xbar
    HA = A[:, bg.columns]
    expected = np.sqrt(np.einsum("ij,ij->j", HA, HA) / (Z.shape[0] - 1) + bg.variances)
    if inflation != 1.0:
        A *= inflation
        HA *= inflation
    ybar = xbar[bg.columns]
    Za = etkf_anomalies(xbar, A, HA, ybar, bg.y, bg.variances)
    return Analysis(Za[:, :n], None, ybar, expected, None)


def _additive(additive: object) -> bool:
    """Whether any additive inflation is asked for (a number, or one per entry)."""
    if isinstance(additive, float | int):
        return additive > 0
    return bool(np.any(np.asarray(additive) > 0))


def _generator(rng: Generator) -> np.random.Generator:
    return rng() if callable(rng) else rng
