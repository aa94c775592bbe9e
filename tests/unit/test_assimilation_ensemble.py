"""Ensemble Kalman analysis steps against the Kalman filter formulas they approximate.

For a linear observation operator both the stochastic EnKF (with centred perturbations) and the ETKF move the
ensemble mean exactly as the Kalman filter does with the ensemble's own sample covariance, and the ETKF's
analysis covariance is exactly (I - K H) P_f: these identities hold to round-off, whatever the ensemble.
"""

from __future__ import annotations

import numpy as np
import pytest

from twinengine.assimilation import enkf, etkf, gaspari_cohn, letkf
from twinengine.assimilation.ensemble import mean_preserving_rotation

N, n, p = 30, 5, 3
RNG = np.random.default_rng(11)
E0 = 2.0 + RNG.standard_normal((N, n)) @ np.diag([1.0, 0.5, 2.0, 1.5, 0.8])
H = RNG.standard_normal((p, n))
R_DIAG = np.array([0.5, 1.0, 2.0])
Y_OBS = H @ E0.mean(axis=0) + np.array([1.0, -0.5, 0.7])


def kalman(E: np.ndarray, y: np.ndarray, H: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Kalman analysis mean and covariance from the ensemble's sample mean and covariance."""
    m, P = E.mean(axis=0), np.cov(E.T)
    K = P @ H.T @ np.linalg.inv(H @ P @ H.T + R)
    return m + K @ (y - H @ m), (np.eye(E.shape[1]) - K @ H) @ P


def test_etkf_matches_the_kalman_filter_on_a_linear_problem() -> None:
    mean, cov = kalman(E0, Y_OBS, H, np.diag(R_DIAG))
    Ea = etkf(E0, Y_OBS, H, R_DIAG)
    np.testing.assert_allclose(Ea.mean(axis=0), mean, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.cov(Ea.T), cov, rtol=1e-9, atol=1e-10)


def test_etkf_with_large_ensemble_converges_to_the_exact_kalman_mean() -> None:
    """With N > n drawn from N(m, P), the ETKF mean is close to the KF mean computed with the true P."""
    rng = np.random.default_rng(5)
    m = np.array([1.0, -2.0, 0.5, 3.0, 0.0])
    L = np.tril(rng.standard_normal((n, n))) + 2 * np.eye(n)
    P = L @ L.T
    E = m + rng.standard_normal((20000, n)) @ L.T
    R = np.diag(R_DIAG)
    K = P @ H.T @ np.linalg.inv(H @ P @ H.T + R)
    exact = m + K @ (Y_OBS - H @ m)
    # Sampling error of the mean and of P at N = 20000 is about 1 %, far below the increment itself.
    np.testing.assert_allclose(etkf(E, Y_OBS, H, R).mean(axis=0), exact, atol=0.05 * np.abs(exact - m).max())


def test_etkf_keeps_the_anomalies_centred_and_the_identity_when_obs_say_nothing() -> None:
    Ea = etkf(E0, Y_OBS, H, R_DIAG * 1e12)
    np.testing.assert_allclose(Ea, E0, atol=1e-8)
    Ea = etkf(E0, Y_OBS, H, R_DIAG, inflation=1.1)
    assert np.allclose((Ea - Ea.mean(axis=0)).sum(axis=0), 0.0, atol=1e-9)


def test_rotation_keeps_mean_and_covariance_and_changes_members() -> None:
    Q = mean_preserving_rotation(N, np.random.default_rng(0))
    np.testing.assert_allclose(Q @ Q.T, np.eye(N), atol=1e-12)
    np.testing.assert_allclose(Q @ np.ones(N), np.ones(N), atol=1e-12)
    plain = etkf(E0, Y_OBS, H, R_DIAG)
    rotated = etkf(E0, Y_OBS, H, R_DIAG, np.random.default_rng(1), rotate=True)
    np.testing.assert_allclose(rotated.mean(axis=0), plain.mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(np.cov(rotated.T), np.cov(plain.T), atol=1e-10)
    assert not np.allclose(rotated, plain)


def test_enkf_mean_matches_the_kalman_filter_with_centred_perturbations() -> None:
    mean, cov = kalman(E0, Y_OBS, H, np.diag(R_DIAG))
    Ea = enkf(E0, Y_OBS, H, R_DIAG, np.random.default_rng(0))
    np.testing.assert_allclose(Ea.mean(axis=0), mean, rtol=1e-10, atol=1e-10)
    # The spread matches only in expectation: a large ensemble gets close.
    rng = np.random.default_rng(1)
    big = 2.0 + rng.standard_normal((4000, n))
    _, cov = kalman(big, Y_OBS, H, np.diag(R_DIAG))
    np.testing.assert_allclose(np.cov(enkf(big, Y_OBS, H, R_DIAG, rng).T), cov, atol=0.06)


def test_full_r_and_callable_operator_give_the_same_answer_as_diagonal_r_and_matrix() -> None:
    expected = etkf(E0, Y_OBS, H, R_DIAG)
    np.testing.assert_allclose(etkf(E0, Y_OBS, lambda x: H @ x, np.diag(R_DIAG)), expected, atol=1e-10)
    np.testing.assert_allclose(enkf(E0, Y_OBS, lambda x: H @ x, np.diag(R_DIAG), np.random.default_rng(2)),
                               enkf(E0, Y_OBS, H, R_DIAG, np.random.default_rng(2)), atol=1e-10)


def test_full_correlated_r_matches_the_kalman_filter() -> None:
    R = np.array([[1.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]])
    mean, cov = kalman(E0, Y_OBS, H, R)
    Ea = etkf(E0, Y_OBS, H, R)
    np.testing.assert_allclose(Ea.mean(axis=0), mean, atol=1e-10)
    np.testing.assert_allclose(np.cov(Ea.T), cov, atol=1e-10)


def test_multiplicative_inflation_scales_the_prior_anomalies() -> None:
    inflated = E0.mean(axis=0) + 1.2 * (E0 - E0.mean(axis=0))
    np.testing.assert_allclose(etkf(E0, Y_OBS, H, R_DIAG, inflation=1.2), etkf(inflated, Y_OBS, H, R_DIAG),
                               atol=1e-10)
    noisy = etkf(E0, Y_OBS, H, R_DIAG, np.random.default_rng(0), additive=0.1)
    assert not np.allclose(noisy, etkf(E0, Y_OBS, H, R_DIAG))


def test_gaspari_cohn_values() -> None:
    w = gaspari_cohn(np.array([0.0, 1.0, 2.0, 3.0, -1.0]), radius=1.0)
    np.testing.assert_allclose(w, [1.0, 5 / 24, 0.0, 0.0, 5 / 24], atol=1e-12)
    assert np.all(np.diff(gaspari_cohn(np.linspace(0, 4, 50), 2.0)) <= 1e-15)


def test_letkf_without_localisation_is_the_etkf() -> None:
    coords = np.arange(n, dtype=float)
    obs_coords = np.array([0.0, 2.0, 4.0])
    Hsel = np.eye(n)[[0, 2, 4]]
    y = Hsel @ E0.mean(axis=0) + 0.5
    got = letkf(E0, y, Hsel, R_DIAG, state_coords=coords, obs_coords=obs_coords, radius=1e6, batch=2)
    np.testing.assert_allclose(got, etkf(E0, y, Hsel, R_DIAG), atol=1e-9)


def test_letkf_leaves_variables_far_from_every_observation_alone() -> None:
    coords = np.arange(40, dtype=float)
    E = np.random.default_rng(4).standard_normal((10, 40))
    Hsel = np.eye(40)[[0]]
    got = letkf(E, np.array([3.0]), Hsel, [1.0], state_coords=coords, obs_coords=[0.0], radius=2.0, period=40.0)
    changed = np.flatnonzero(np.any(np.abs(got - E) > 1e-12, axis=0))
    # Support of Gaspari-Cohn is 2·radius = 4 on each side, wrapped around the ring.
    assert set(changed) <= {0, 1, 2, 3, 37, 38, 39}
    assert {0, 1, 39} <= set(changed)


@pytest.mark.parametrize(("call", "argument"), [
    (lambda: etkf(E0[0], Y_OBS, H, R_DIAG), "E"),
    (lambda: etkf(E0[:1], Y_OBS, H, R_DIAG), "E"),
    (lambda: etkf(E0, Y_OBS[:2], H, R_DIAG[:2]), "H"),
    (lambda: etkf(E0, Y_OBS, H[:, :2], R_DIAG), "H"),
    (lambda: etkf(E0, Y_OBS[None, :], H, R_DIAG), "y"),
    (lambda: etkf(E0, [1.0, np.nan, 2.0], H, R_DIAG), "y"),
    (lambda: etkf(E0, Y_OBS, H, [1.0, 0.0, 1.0]), "R"),
    (lambda: etkf(E0, Y_OBS, H, [1.0, -1.0, 1.0]), "R"),
    (lambda: etkf(E0, Y_OBS, H, [1.0, 1.0]), "R"),
    (lambda: etkf(E0, Y_OBS, H, -np.eye(3)), "R"),
    (lambda: etkf(E0, Y_OBS, H, np.array([[1.0, 2.0, 0], [0, 1.0, 0], [0, 0, 1.0]])), "R"),
    (lambda: etkf(E0, Y_OBS, H, R_DIAG, inflation=0.9), "inflation"),
    (lambda: etkf(E0, Y_OBS, H, R_DIAG, additive=0.1), "rng"),
    (lambda: etkf(E0, Y_OBS, H, R_DIAG, rotate=True), "rng"),
    (lambda: enkf(E0, Y_OBS, H, R_DIAG, None), "rng"),  # type: ignore[arg-type]
    (lambda: etkf(E0, Y_OBS, lambda x: x[:2], R_DIAG), "H"),
    (lambda: letkf(E0, Y_OBS, H, R_DIAG, state_coords=np.arange(4), obs_coords=[0, 1, 2], radius=1.0),
     "state_coords"),
    (lambda: letkf(E0, Y_OBS, H, R_DIAG, state_coords=np.arange(n), obs_coords=[0, 1], radius=1.0), "obs_coords"),
    (lambda: letkf(E0, Y_OBS, H, R_DIAG, state_coords=np.arange(n), obs_coords=[0, 1, 2], radius=0.0), "radius"),
    (lambda: letkf(E0, Y_OBS, H, np.array([[1.0, 0.3, 0], [0.3, 1.0, 0], [0, 0, 1.0]]),
                   state_coords=np.arange(n), obs_coords=[0, 1, 2], radius=1.0), "R"),
])
def test_bad_input_names_the_argument(call: object, argument: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{argument}\b"):
        call()  # type: ignore[operator]
