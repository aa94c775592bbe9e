"""Bootstrap particle filter: weights from the likelihood, systematic resampling, Gaussian jitter.

Particles are an ensemble (N x n) with log-weights (N,). Weights are kept as logarithms because likelihoods
of many observations underflow in linear space. Resampling is done only when the effective sample size
drops below ``threshold · N``: resampling always adds noise, and skipping it while the weights are still
even keeps more information. After resampling, duplicated particles are spread by Gaussian jitter
(regularisation) so that the cloud does not collapse onto a few points in a deterministic model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twinengine.assimilation import _checks
from twinengine.assimilation._checks import Array, Operator

__all__ = ["ParticleFilter", "ParticleUpdate", "bandwidth", "bootstrap_update", "effective_sample_size",
           "normalise_log_weights", "systematic_resample"]


@dataclass(frozen=True)
class ParticleUpdate:
    """The result of one analysis step of the particle filter."""

    particles: Array
    """(N, n) particles after the step (resampled and jittered when ``resampled``)."""
    log_weights: Array
    """(N,) normalised log-weights (all equal to -log N after resampling)."""
    ess: float
    """Effective sample size of the weights before any resampling, between 1 and N."""
    resampled: bool


def normalise_log_weights(log_weights: object) -> Array:
    """Log-weights shifted so that the weights sum to one (log-sum-exp, safe against underflow)."""
    lw = np.asarray(log_weights, dtype=float)
    if lw.ndim != 1 or lw.size == 0:
        raise ValueError(f"log_weights must be a non-empty 1-D array, got shape {lw.shape}")
    if np.any(np.isnan(lw)) or np.any(lw == np.inf) or np.all(lw == -np.inf):
        raise ValueError("log_weights must be finite (or -inf for impossible particles), with at least one finite")
    top = lw.max()
    return np.asarray(lw - (top + np.log(np.exp(lw - top).sum())), dtype=float)


def _weights(weights: object) -> Array:
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights must be a non-empty 1-D array, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative finite numbers with a positive sum")
    return np.asarray(w / w.sum(), dtype=float)


def effective_sample_size(weights: object) -> float:
    """N_eff = 1 / Σ w_i² of the normalised weights: N for even weights, 1 when one particle holds all."""
    w = _weights(weights)
    return float(1.0 / np.sum(w * w))


def systematic_resample(weights: object, rng: np.random.Generator) -> np.ndarray:
    """Indices of the particles to keep, by systematic resampling (one uniform draw, N evenly spaced points).

    Particle i is copied either floor(N w_i) or ceil(N w_i) times, which gives the lowest resampling
    variance of the usual schemes at O(N) cost.
    """
    w = _weights(weights)
    N = w.size
    positions = (rng.random() + np.arange(N)) / N
    cumulative = np.cumsum(w)
    cumulative[-1] = 1.0  # guard against round-off leaving the last position uncovered
    return np.searchsorted(cumulative, positions, side="right").astype(np.intp)


def bandwidth(N: int, n: int) -> float:
    """Silverman's optimal kernel bandwidth for a Gaussian kernel: (4 / (N (n + 2)))^(1 / (n + 4)).

    Scaling the jitter by it makes the regularised filter approximate a kernel density estimate of the
    posterior; ``jitter`` in :func:`bootstrap_update` multiplies it.
    """
    return float((4.0 / (N * (n + 2))) ** (1.0 / (n + 4)))


def bootstrap_update(particles: object, log_weights: object, y: object, H: Operator, R: object,
                     rng: np.random.Generator, *, threshold: float = 0.5, jitter: float = 1.0) -> ParticleUpdate:
    """One analysis step of the bootstrap particle filter.

    The weights are multiplied by the Gaussian likelihood N(y; H(x_i), R). When the effective sample size
    falls below ``threshold · N`` the particles are resampled systematically and each gets Gaussian noise
    with covariance ``(jitter · bandwidth(N, n))²`` times the weighted covariance of the particles before
    resampling. ``jitter=0`` turns the regularisation off.
    """
    X = _checks.ensemble(particles, "particles")
    obs = _checks.observations(y)
    cov = _checks.obs_error(R, obs.size)
    lw = np.asarray(log_weights, dtype=float)
    if lw.shape != (X.shape[0],):
        raise ValueError(f"log_weights must have one entry per particle ({X.shape[0]}), got shape {lw.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    if not np.isfinite(jitter) or jitter < 0:
        raise ValueError(f"jitter must be a non-negative finite number, got {jitter}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    Y = _checks.apply_operator(H, X, obs.size)
    innovations = _checks.whitener(cov)(obs - Y)
    lw = normalise_log_weights(normalise_log_weights(lw) - 0.5 * np.sum(innovations**2, axis=1))
    w = np.exp(lw)
    ess = float(1.0 / np.sum(w * w))
    N, n = X.shape
    if ess >= threshold * N:
        return ParticleUpdate(X, lw, ess, resampled=False)
    idx = systematic_resample(w, rng)
    out = X[idx]
    if jitter > 0:
        mean = w @ X
        C = ((X - mean).T * w) @ (X - mean) / max(1.0 - np.sum(w * w), 1e-12)
        # eigh instead of Cholesky: a collapsed cloud gives a singular covariance.
        vals, vecs = np.linalg.eigh(C)
        root = vecs * np.sqrt(np.clip(vals, 0.0, None))
        out = out + (jitter * bandwidth(N, n)) * rng.standard_normal((N, n)) @ root.T
    return ParticleUpdate(out, np.full(N, -np.log(N)), ess, resampled=True)


class ParticleFilter:
    """A bootstrap particle filter that keeps its weights between analysis steps.

    Called as ``pf(particles, y, rng)`` it returns ``(particles, weights)``, the form
    :func:`twinengine.assimilation.cycle.run_cycles` takes for weighted ensembles. The forecast leaves the
    weights unchanged, so they are carried here from one step to the next.
    """

    def __init__(self, H: Operator, R: object, *, threshold: float = 0.5, jitter: float = 1.0) -> None:
        self.H, self.R, self.threshold, self.jitter = H, R, threshold, jitter
        self.log_weights: Array | None = None
        self.ess: list[float] = []
        self.resamplings = 0

    def __call__(self, particles: Array, y: Array, rng: np.random.Generator) -> tuple[Array, Array]:
        N = np.asarray(particles).shape[0]
        lw = self.log_weights if self.log_weights is not None and self.log_weights.size == N else np.zeros(N)
        step = bootstrap_update(particles, lw, y, self.H, self.R, rng, threshold=self.threshold, jitter=self.jitter)
        self.log_weights = step.log_weights
        self.ess.append(step.ess)
        self.resamplings += int(step.resampled)
        return step.particles, np.exp(step.log_weights)
