"""The action, the chains and the autocorrelation estimate against cases with known answers."""

from __future__ import annotations

import numpy as np
from lattice_phi4.action import action, observables
from lattice_phi4.chain import ess_per_sample, independence_metropolis
from lattice_phi4.reference import reference_summary
from lattice_phi4.stats import estimate, integrated_time


def test_action_of_a_constant_field() -> None:
    # phi = c everywhere on L x L: per site -2 * 2 c^2 + (4 + m2) c^2 + lam c^4
    phi = np.full((1, 4, 4), 0.5)
    assert np.isclose(action(phi, -4.0, 8.0)[0], 16 * (-4 * 0.25 + 0 + 8 * 0.0625))


def test_observables_of_a_checkerboard() -> None:
    phi = np.where(np.add.outer(np.arange(4), np.arange(4)) % 2 == 0, 1.0, -1.0)[None]
    obs = observables(phi)
    assert obs["phi2"][0] == 1.0 and obs["magnetisation"][0] == 0.0


def test_integrated_time_of_an_ar1_series() -> None:
    rng = np.random.default_rng(0)
    a, x = 0.8, np.zeros(200_000)
    noise = rng.normal(size=x.size)
    for i in range(1, x.size):
        x[i] = a * x[i - 1] + noise[i]
    assert abs(integrated_time(x) - (1 + a) / (1 - a)) < 0.5  # 9 for a = 0.8
    assert abs(integrated_time(rng.normal(size=50_000)) - 1.0) < 0.1


def test_exact_proposals_are_always_accepted() -> None:
    held, rate = independence_metropolis(np.zeros(100))
    assert rate == 1.0 and list(held) == list(range(100))
    assert ess_per_sample(np.zeros(10)) == 1.0
    assert ess_per_sample(np.array([0.0, -50.0, -50.0, -50.0])) < 0.26


def test_free_field_reference_matches_the_exact_propagator() -> None:
    # lam = 0, m2 = 1: Gaussian; <phi^2> = (1/V) sum_p 1 / (2 (sum_mu (2 - 2 cos p_mu)) + 2 m2 ... )
    size, m2 = 4, 1.0
    p = 2 * np.pi * np.arange(size) / size
    k2 = (2 - 2 * np.cos(p))[:, None] + (2 - 2 * np.cos(p))[None, :]
    exact_phi2 = float(np.mean(1.0 / (2 * (k2 + m2))))  # S = sum_x phi (-Lap + m2) phi, covariance (2 K)^-1
    got = reference_summary(size, m2, 0.0, sweeps=3000, chains=8, seed=1)
    assert abs(got["phi2"] - exact_phi2) < 4 * got["phi2_err"] + 1e-3
    assert abs(got["chi2"] - 1.0 / (2 * m2)) < 4 * got["chi2_err"]
    assert estimate(np.ones(10)).error == 0.0
