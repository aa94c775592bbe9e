"""Analysis steps of ensemble Kalman filters: stochastic EnKF, ETKF and LETKF.

Each takes the forecast ensemble ``E`` (N x n), the observations ``y`` (p,), an observation operator ``H``
(a p x n matrix, or a callable applied to each member for a nonlinear operator), the observation error ``R``
(p variances or a p x p matrix) and returns the analysis ensemble (N x n). Inflation is applied to the
forecast ensemble first (multiplicative ``inflation`` on the anomalies, optional ``additive`` noise), since
that is where small ensembles and model error lose spread.

All three work in whitened observation space (R^{-1/2} applied to innovations and observed anomalies), so a
full R costs one Cholesky factorisation and the updates stay those of R = I.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from twinengine.assimilation import _checks
from twinengine.assimilation._checks import Array, Operator

__all__ = ["enkf", "etkf", "etkf_anomalies", "etkf_observed", "gaspari_cohn", "letkf", "mean_preserving_rotation"]


def _prepare(E: object, y: object, H: Operator, R: object, inflation: float, additive: object,
             rng: np.random.Generator | None) -> tuple[Array, Array, Array, Array]:
    """Checked, inflated ensemble, observations, observed ensemble and R."""
    ens = _checks.ensemble(E)
    obs = _checks.observations(y)
    cov = _checks.obs_error(R, obs.size)
    ens = _checks.inflate(ens, inflation, additive, rng)
    Y = _checks.apply_operator(H, ens, obs.size)
    return ens, obs, Y, cov


def enkf(E: object, y: object, H: Operator, R: object, rng: np.random.Generator, *, inflation: float = 1.0,
         additive: object = 0.0) -> Array:
    """Stochastic EnKF with perturbed observations (Burgers et al. 1998).

    Every member is updated towards its own draw of the observations, y + ε_i with ε_i ~ N(0, R), so that
    the analysis spread matches the Kalman filter's in expectation. The draws are centred (their sample mean
    removed), which takes the sampling noise out of the mean update without changing the expected spread
    much.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator (the observation perturbations are drawn from it)")
    ens, obs, Y, cov = _prepare(E, y, H, R, inflation, additive, rng)
    N = ens.shape[0]
    A = ens - ens.mean(axis=0)
    Yp = Y - Y.mean(axis=0)
    eps = _checks.sample_obs_noise(cov, N, rng)
    eps -= eps.mean(axis=0)
    D = obs + eps - Y  # perturbed innovations, (N, p)
    # Gain K = A^T Yp (Yp^T Yp + (N-1) R)^{-1}; solved in observation space (p x p).
    cov_full = np.diag(cov) if cov.ndim == 1 else cov
    S = Yp.T @ Yp + (N - 1) * cov_full
    # Increments D S^{-1} Yp^T A, grouped so that no N x N matrix is formed (S is symmetric).
    return np.asarray(ens + D @ np.linalg.solve(S, Yp.T @ A), dtype=float)


def _ensemble_update(S: Array, d: Array, A: Array) -> tuple[Array, Array]:
    """Mean increment (n,) and analysis anomalies (N, n) of the ETKF in ensemble space.

    ``S`` are the whitened observed anomalies scaled by 1/sqrt(N-1), ``d`` the whitened innovation and ``A``
    the forecast anomalies. With G = S S^T (N x N) the analysis covariance in ensemble space is (I + G)^{-1};
    its symmetric square root T (Hunt et al. 2007) keeps the vector of ones as an eigenvector, so the
    anomalies stay centred and the mean moves only through the weights w = (I + G)^{-1} S d. Both come from
    the thin SVD S = U diag(s) V^T, which costs N p min(N, p) and never forms an N x N matrix for large
    ensembles: T = I + U (diag((1 + s^2)^{-1/2}) - 1) U^T, with U and s from whichever of S S^T (N x N) and
    S^T S (p x p) is smaller.
    """
    members, p = S.shape
    scale = 1.0 / np.sqrt(members - 1)
    if members <= p:
        # The eigenvectors of G span the whole ensemble space: T = U diag((1 + s^2)^{-1/2}) U^T, formed once
        # (N x N) and applied to the anomalies once (a small ensemble's cycle is mostly numpy calls).
        vals, U = np.linalg.eigh(S @ S.T)
        inv = 1.0 / (1.0 + np.maximum(vals, 0.0))
        Ut = U.T
        w = U @ (inv * (Ut @ (S @ d)))
        return scale * (w @ A), ((U * np.sqrt(inv)) @ Ut) @ A
    # More members than observations: the left singular vectors from the p x p problem S^T S = V diag(s^2) V^T.
    vals, V = np.linalg.eigh(S.T @ S)
    keep = vals > 1e-12 * max(float(vals.max()), 1e-300)
    sv = np.sqrt(vals[keep])
    U = (S @ V[:, keep]) / sv
    w = U @ (sv / (1.0 + sv * sv) * (V[:, keep].T @ d))
    factor = 1.0 / np.sqrt(1.0 + sv * sv) - 1.0
    return scale * (w @ A), A + U @ (factor[:, None] * (U.T @ A))


def mean_preserving_rotation(N: int, rng: np.random.Generator) -> Array:
    """A random (Haar) orthogonal N x N matrix Q with Q 1 = 1, so that Q A keeps the anomalies centred.

    Built as V diag(1, Q') V^T with V an orthonormal basis whose first vector is 1/sqrt(N) and Q' a random
    orthogonal (N-1) x (N-1) matrix (QR of a Gaussian matrix with the signs of R's diagonal fixed).
    """
    if N < 2:
        raise ValueError(f"N must be >= 2 for a rotation, got {N}")
    basis, _ = np.linalg.qr(np.column_stack([np.ones(N), rng.standard_normal((N, N - 1))]))
    q, r = np.linalg.qr(rng.standard_normal((N - 1, N - 1)))
    q = q * np.sign(np.diag(r))
    inner = np.eye(N)
    inner[1:, 1:] = q
    return np.asarray(basis @ inner @ basis.T, dtype=float)


def etkf(E: object, y: object, H: Operator, R: object, rng: np.random.Generator | None = None, *,
         inflation: float = 1.0, additive: object = 0.0, rotate: bool = False) -> Array:
    """Ensemble transform Kalman filter: the deterministic square-root update (Hunt et al. 2007).

    The analysis is computed in the N-dimensional ensemble space, so its cost grows with N p min(N, p) rather
    than n² p; the symmetric square root is the transform closest to the identity that also preserves the mean,
    which keeps members close to their forecasts. ``rotate`` then mixes the analysis anomalies by a random
    mean-preserving rotation: the covariance is unchanged, but members that the deterministic transform would
    keep in outlying clusters of a strongly nonlinear model (Lorenz-63 observed sparsely) are spread out again.
    ``rng`` is needed for additive inflation and for ``rotate``.
    """
    if rotate and not isinstance(rng, np.random.Generator):
        raise ValueError("rng is required for rotate (the random rotation is drawn from it)")
    ens, obs, Y, cov = _prepare(E, y, H, R, inflation, additive, rng)
    return _etkf(ens, obs, Y, _checks.whitener(cov), rng, rotate)


def etkf_observed(E: Array, Y: Array, y: Array, variances: Array, rng: np.random.Generator | None = None, *,
                  rotate: bool = False) -> Array:
    """The ETKF's analysis of an (already inflated) ensemble ``E`` whose observed values ``Y`` = H(E) (N x p)
    the caller computed, with diagonal observation error ``variances`` (p,): ``etkf`` without its checks and
    its operator, for a caller that built and checked every input (the engine's cycles, where the check of
    each cycle's inputs cost more than the analysis of a small ensemble)."""
    inv_std = 1.0 / np.sqrt(variances)
    return _etkf(E, y, Y, lambda v: v * inv_std, rng, rotate)


def etkf_anomalies(xbar: Array, A: Array, Y: Array, ybar: Array, y: Array, variances: Array) -> Array:
    """The ETKF's analysis from the forecast mean ``xbar`` (n,), its (already inflated) anomalies ``A``
    (N, n), their observed part ``Y`` (N, p) around the observed mean ``ybar`` (p,), and diagonal
    ``variances`` (p,): ``etkf_observed`` for a caller that has the mean and anomalies already (the engine's
    cycles: one mean of the ensemble per cycle instead of four). No checks, no rotation."""
    inv_std = 1.0 / np.sqrt(variances)
    S = Y * (inv_std / np.sqrt(A.shape[0] - 1))
    increment, anomalies = _ensemble_update(S, (y - ybar) * inv_std, A)
    return np.asarray(xbar + increment + anomalies, dtype=float)


def _etkf(ens: Array, obs: Array, Y: Array, white: Callable[[Array], Array], rng: np.random.Generator | None,
          rotate: bool) -> Array:
    N = ens.shape[0]
    ybar = Y.mean(axis=0)
    scale = 1.0 / np.sqrt(N - 1)
    S = white(Y - ybar) * scale
    d = white(obs - ybar)
    xbar = ens.mean(axis=0)
    increment, anomalies = _ensemble_update(S, d, ens - xbar)
    if rotate:
        if rng is None:
            raise ValueError("rng is required for rotate (the random rotation is drawn from it)")
        anomalies = mean_preserving_rotation(N, rng) @ anomalies
    return np.asarray(xbar + increment + anomalies, dtype=float)


def gaspari_cohn(distance: object, radius: float) -> Array:
    """Gaspari & Cohn (1999) fifth-order compactly supported correlation at ``distance``.

    ``radius`` is the half-width c: the weight is 1 at distance 0, about 0.21 at c and exactly 0 from 2c on.
    It is the standard taper because it looks like a Gaussian yet cuts off, so far observations cost nothing.
    """
    c = _checks.positive(radius, "radius")
    r = np.abs(np.asarray(distance, dtype=float)) / c
    out = np.zeros_like(r)
    near = r <= 1.0
    far = (r > 1.0) & (r < 2.0)
    x = r[near]
    out[near] = -0.25 * x**5 + 0.5 * x**4 + 0.625 * x**3 - 5.0 / 3.0 * x**2 + 1.0
    x = r[far]
    out[far] = x**5 / 12.0 - 0.5 * x**4 + 0.625 * x**3 + 5.0 / 3.0 * x**2 - 5.0 * x + 4.0 - 2.0 / (3.0 * x)
    return np.asarray(np.clip(out, 0.0, 1.0), dtype=float)


def _distances(a: Array, b: Array, period: float | None) -> Array:
    """|a_i - b_j| for every pair, wrapped on a periodic domain of length ``period`` when given."""
    d = np.abs(a[:, None] - b[None, :])
    if period is not None:
        d = np.minimum(d, period - d)
    return d


def letkf(E: object, y: object, H: Operator, R: object, rng: np.random.Generator | None = None, *,
          state_coords: object, obs_coords: object, radius: float, period: float | None = None,
          inflation: float = 1.0, additive: object = 0.0, batch: int = 64) -> Array:
    """Local ETKF (Hunt et al. 2007): one ETKF per state variable over the observations near it.

    Each state variable is analysed with R localised by distance: the inverse observation variances are
    multiplied by the Gaspari-Cohn weight of the observation's distance to the variable (``radius`` is the
    half-width; weights vanish from 2·radius on). Localisation lets a small ensemble fit a large state,
    because each local analysis only needs to span the few degrees of freedom nearby.

    ``state_coords`` (n,) and ``obs_coords`` (p,) place variables and observations on one axis; ``period``
    makes that axis periodic (a ring of that length). R must be diagonal here: localising a correlated R
    would need the correlations to be localised too. ``batch`` state variables are analysed together to
    vectorise the small N x N eigenproblems.
    """
    ens, obs, Y, cov = _prepare(E, y, H, R, inflation, additive, rng)
    if cov.ndim == 2:
        if not np.allclose(cov, np.diag(np.diag(cov))):
            raise ValueError("R must be diagonal for the LETKF (observation errors localised one by one)")
        cov = np.diag(cov).copy()
    N, n = ens.shape
    xs = np.asarray(state_coords, dtype=float)
    if xs.shape != (n,) or not np.all(np.isfinite(xs)):
        raise ValueError(f"state_coords must be {n} finite coordinates, one per state variable, got shape {xs.shape}")
    ys = np.asarray(obs_coords, dtype=float)
    if ys.shape != obs.shape or not np.all(np.isfinite(ys)):
        raise ValueError(f"obs_coords must be {obs.size} finite coordinates, one per observation, got shape {ys.shape}")
    _checks.positive(radius, "radius")
    if period is not None:
        _checks.positive(period, "period")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")

    ybar = Y.mean(axis=0)
    scale = 1.0 / np.sqrt(N - 1)
    inv_std = 1.0 / np.sqrt(cov)
    S_all = (Y - ybar) * inv_std * scale  # (N, p)
    d_all = (obs - ybar) * inv_std  # (p,)
    xbar = ens.mean(axis=0)
    A = ens - xbar
    out = np.empty_like(ens)
    for start in range(0, n, batch):
        idx = np.arange(start, min(start + batch, n))
        rho = gaspari_cohn(_distances(xs[idx], ys, period), radius)  # (b, p)
        used = np.flatnonzero(rho.any(axis=0))
        if used.size == 0:
            out[:, idx] = ens[:, idx]
            continue
        root = np.sqrt(rho[:, used])  # localised R^{-1/2} factors
        S = S_all[None, :, used] * root[:, None, :]  # (b, N, q)
        d = d_all[used][None, :] * root  # (b, q)
        G = S @ S.transpose(0, 2, 1)
        vals, vecs = np.linalg.eigh(G)
        inv = 1.0 / (1.0 + np.clip(vals, 0.0, None))
        Sd = np.einsum("bnq,bq->bn", S, d)
        w = np.einsum("bnk,bk->bn", vecs, inv * np.einsum("bnk,bn->bk", vecs, Sd))
        T = np.einsum("bnk,bk,bmk->bnm", vecs, np.sqrt(inv), vecs)
        Ai = A[:, idx]  # (N, b)
        mean_inc = scale * np.einsum("bn,nb->b", w, Ai)
        out[:, idx] = xbar[idx] + mean_inc + np.einsum("bnm,mb->nb", T, Ai)
    return out
