"""3D-Var / optimal interpolation with a static background error covariance B.

For a linear observation operator the 3D-Var cost function
J(x) = ½ (x - x_b)^T B^{-1} (x - x_b) + ½ (y - H x)^T R^{-1} (y - H x)
has its minimum at the optimal-interpolation analysis x_a = x_b + B H^T (H B H^T + R)^{-1} (y - H x_b),
which is solved here directly in observation space. It is the baseline the ensemble filters must beat:
the same gain every cycle, no flow-dependent covariance.
"""

from __future__ import annotations

import numpy as np

from twinengine.assimilation import _checks
from twinengine.assimilation._checks import Array

__all__ = ["three_dvar"]


def three_dvar(xb: object, y: object, H: object, R: object, B: object) -> Array:
    """The analysis state (n,) from the background ``xb`` (n,) with static covariance ``B`` (n x n).

    ``H`` is a (p x n) matrix; ``R`` p variances or a p x p matrix. B must be symmetric positive
    semi-definite, so that H B H^T + R is positive definite.
    """
    x = np.asarray(xb, dtype=float)
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"xb must be a finite 1-D background state, got shape {x.shape}")
    obs = _checks.observations(y)
    matrix = _checks.operator_matrix(H, x.size)
    if matrix.shape[0] != obs.size:
        raise ValueError(f"H has {matrix.shape[0]} rows but y has {obs.size} observations")
    cov = _checks.obs_error(R, obs.size)
    background = np.asarray(B, dtype=float)
    if background.shape != (x.size, x.size):
        raise ValueError(f"B must be a {x.size}x{x.size} matrix, got shape {background.shape}")
    if not np.all(np.isfinite(background)) or not np.allclose(background, background.T, rtol=1e-10, atol=1e-12):
        raise ValueError("B must be a finite symmetric matrix")
    if np.linalg.eigvalsh(background).min() < -1e-10 * max(1.0, float(np.abs(background).max())):
        raise ValueError("B must be positive semi-definite")
    BHt = background @ matrix.T
    S = matrix @ BHt + (np.diag(cov) if cov.ndim == 1 else cov)
    return np.asarray(x + BHt @ np.linalg.solve(S, obs - matrix @ x), dtype=float)
