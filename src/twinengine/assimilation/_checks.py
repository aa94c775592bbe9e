"""Validation shared by the analysis steps, so that bad input fails early with the argument's name.

Every check raises ``ValueError`` naming the argument and what was expected; nothing is computed from
inputs that would silently broadcast into a wrong answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

Array: TypeAlias = NDArray[np.float64]
Operator: TypeAlias = NDArray[np.float64] | Callable[[NDArray[np.float64]], NDArray[np.float64]]


def ensemble(E: object, name: str = "E", min_members: int = 2) -> Array:
    """The ensemble as a finite float array of shape (N, n) with at least ``min_members`` members."""
    arr = np.asarray(E, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (members x state variables), got shape {arr.shape}")
    if arr.shape[0] < min_members:
        raise ValueError(f"{name} needs at least {min_members} members (rows), got {arr.shape[0]}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} needs at least one state variable (column)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def observations(y: object, name: str = "y") -> Array:
    """The observation vector as a finite 1-D float array."""
    arr = np.asarray(y, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of observations, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def obs_error(R: object, p: int, name: str = "R") -> Array:
    """R as given: a 1-D array of ``p`` positive variances, or a ``p x p`` symmetric positive-definite matrix.

    A scalar is read as the same variance for every observation.
    """
    arr = np.asarray(R, dtype=float)
    if arr.ndim == 0:
        arr = np.full(p, float(arr))
    if arr.ndim == 1:
        if arr.shape != (p,):
            raise ValueError(f"{name} (diagonal) must have {p} variances, one per observation, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(f"{name} must hold positive finite variances")
        return arr
    if arr.ndim != 2 or arr.shape != (p, p):
        raise ValueError(f"{name} must be a 1-D array of {p} variances or a {p}x{p} matrix, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or not np.allclose(arr, arr.T, rtol=1e-10, atol=1e-12):
        raise ValueError(f"{name} must be a finite symmetric matrix")
    try:
        np.linalg.cholesky(arr)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be positive definite") from None
    return arr


def whitener(R: Array) -> Callable[[Array], Array]:
    """A function applying R^{-1/2} (the inverse Cholesky factor) to the last axis of its argument.

    Whitening turns every update into one with identity observation error, which keeps the algebra of the
    filters the same whether R is diagonal or full.
    """
    if R.ndim == 1:
        inv_std = 1.0 / np.sqrt(R)
        return lambda v: v * inv_std
    from scipy.linalg import solve_triangular  # only full R needs it; scipy is slow to import

    chol = np.linalg.cholesky(R)

    def apply(v: Array) -> Array:
        flat = np.atleast_2d(v)
        out = solve_triangular(chol, flat.T, lower=True).T
        return np.asarray(out.reshape(v.shape), dtype=float)

    return apply


def sample_obs_noise(R: Array, size: int, rng: np.random.Generator) -> Array:
    """``size`` draws of N(0, R), shape (size, p)."""
    z = rng.standard_normal((size, R.shape[0]))
    if R.ndim == 1:
        return z * np.sqrt(R)
    return z @ np.linalg.cholesky(R).T


def apply_operator(H: object, E: Array, p: int | None = None, name: str = "H") -> Array:
    """Observed ensemble ``H(E)`` with shape (N, p): a matrix (p x n) or a callable applied per member."""
    if callable(H):
        try:
            Y = np.asarray([np.asarray(H(member), dtype=float) for member in E], dtype=float)
        except ValueError as exc:
            raise ValueError(f"{name} returned values of different shapes for different members: {exc}") from None
        if Y.ndim != 2:
            raise ValueError(f"{name} must return a 1-D array of observed values per member, got shape {Y.shape[1:]}")
    else:
        matrix = operator_matrix(H, E.shape[1], name)
        Y = E @ matrix.T
    if p is not None and Y.shape[1] != p:
        raise ValueError(f"{name} gives {Y.shape[1]} observed values per member but y has {p}")
    if not np.all(np.isfinite(Y)):
        raise ValueError(f"{name} returned NaN or infinite values")
    return Y


def operator_matrix(H: object, n: int, name: str = "H") -> Array:
    """A linear observation operator as a finite (p x n) matrix."""
    matrix = np.asarray(H, dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] != n:
        raise ValueError(f"{name} must be a (p x {n}) matrix or a callable, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return matrix


def positive(value: float, name: str) -> float:
    """A finite number > 0."""
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return float(value)


def inflate(E: Array, inflation: float, additive: object, rng: np.random.Generator | None) -> Array:
    """Prior inflation: anomalies scaled by ``inflation``, then optional additive Gaussian noise.

    Both counter the under-dispersion of small ensembles and of unmodelled model error; the multiplicative
    factor keeps the mean, the additive noise (standard deviation per variable or one for all) adds
    directions the ensemble subspace lacks.
    """
    if not np.isfinite(inflation) or inflation < 1.0:
        raise ValueError(f"inflation must be a finite factor >= 1, got {inflation}")
    out: Array = E
    if inflation != 1.0:
        mean = E.mean(axis=0)
        out = np.asarray(mean + inflation * (E - mean), dtype=float)
    if isinstance(additive, int | float) and additive == 0:
        return out
    std = np.asarray(additive, dtype=float)
    if std.ndim > 1 or (std.ndim == 1 and std.shape != (E.shape[1],)):
        raise ValueError(f"additive must be one standard deviation or one per state variable ({E.shape[1]})")
    if not np.all(np.isfinite(std)) or np.any(std < 0):
        raise ValueError("additive must hold non-negative finite standard deviations")
    if np.any(std > 0):
        if rng is None:
            raise ValueError("rng is required for additive inflation")
        out = np.asarray(out + rng.standard_normal(E.shape) * std, dtype=float)
    return out
