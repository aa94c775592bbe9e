"""Bootstrap particle filter: resampling counts, effective sample size and the analysis step."""

from __future__ import annotations

import numpy as np
import pytest

from twinengine.assimilation import bootstrap_update, effective_sample_size, systematic_resample
from twinengine.assimilation.particle import ParticleFilter, bandwidth, normalise_log_weights


def test_systematic_resampling_copies_each_particle_floor_or_ceil_of_n_w_times() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        w = rng.dirichlet(np.full(17, 0.3))
        counts = np.bincount(systematic_resample(w, rng), minlength=17)
        assert counts.sum() == 17
        assert np.all(counts >= np.floor(17 * w) - 1e-9)
        assert np.all(counts <= np.ceil(17 * w) + 1e-9)


def test_systematic_resampling_is_exact_for_weights_that_are_multiples_of_one_over_n() -> None:
    rng = np.random.default_rng(1)
    idx = systematic_resample([0.5, 0.25, 0.25, 0.0], rng)
    np.testing.assert_array_equal(np.bincount(idx, minlength=4), [2, 1, 1, 0])
    np.testing.assert_array_equal(idx, np.sort(idx))
    # Unnormalised weights are normalised first.
    np.testing.assert_array_equal(np.bincount(systematic_resample([2, 1, 1, 0], rng), minlength=4), [2, 1, 1, 0])


def test_effective_sample_size() -> None:
    assert effective_sample_size(np.full(10, 0.1)) == pytest.approx(10.0)
    assert effective_sample_size([0, 0, 1.0, 0]) == pytest.approx(1.0)
    assert effective_sample_size([0.5, 0.5, 0, 0]) == pytest.approx(2.0)
    w = np.array([0.1, 0.2, 0.3, 0.4])
    assert effective_sample_size(w) == pytest.approx(1 / np.sum(w**2))
    assert effective_sample_size(3 * w) == pytest.approx(1 / np.sum(w**2))


def test_log_weights_normalise_without_underflow() -> None:
    lw = normalise_log_weights([-1000.0, -1001.0, -np.inf])
    np.testing.assert_allclose(np.exp(lw), [1 / (1 + np.e**-1), np.e**-1 / (1 + np.e**-1), 0.0])


def test_update_weights_by_the_gaussian_likelihood_without_resampling_when_ess_is_high() -> None:
    X = np.array([[0.0], [1.0], [2.0]])
    step = bootstrap_update(X, np.zeros(3), [1.0], np.eye(1), [4.0], np.random.default_rng(0), threshold=0.1)
    expected = np.exp(-0.5 * (np.array([1.0, 0.0, 1.0]) / 4.0))
    np.testing.assert_allclose(np.exp(step.log_weights), expected / expected.sum())
    assert not step.resampled
    np.testing.assert_array_equal(step.particles, X)
    assert step.ess == pytest.approx(1 / np.sum((expected / expected.sum()) ** 2))


def test_update_resamples_and_jitters_when_ess_drops_below_threshold() -> None:
    rng = np.random.default_rng(2)
    X = rng.standard_normal((500, 2))
    step = bootstrap_update(X, np.zeros(500), [2.0, 2.0], np.eye(2), [0.1, 0.1], rng, threshold=0.5, jitter=0.0)
    assert step.resampled
    assert step.ess < 250
    np.testing.assert_allclose(np.exp(step.log_weights), 1 / 500)
    assert {tuple(p) for p in step.particles} <= {tuple(p) for p in X}  # copies only, no jitter
    jittered = bootstrap_update(X, np.zeros(500), [2.0, 2.0], np.eye(2), [0.1, 0.1], np.random.default_rng(3),
                                jitter=1.0)
    assert len({tuple(p) for p in jittered.particles}) == 500  # duplicates spread apart
    assert 0 < bandwidth(500, 2) < 1


def test_particle_filter_keeps_weights_between_steps() -> None:
    pf = ParticleFilter(np.eye(1), [1.0], threshold=0.0)
    X = np.linspace(-2, 2, 5)[:, None]
    _, w1 = pf(X, np.array([1.0]), np.random.default_rng(0))
    _, w2 = pf(X, np.array([1.0]), np.random.default_rng(0))
    expected = np.exp(-(X[:, 0] - 1.0) ** 2)  # two identical likelihoods multiplied
    np.testing.assert_allclose(w2, expected / expected.sum())
    assert not np.allclose(w1, w2)
    assert pf.resamplings == 0


@pytest.mark.parametrize(("call", "argument"), [
    (lambda: systematic_resample([0.5, -0.1, 0.6], np.random.default_rng(0)), "weights"),
    (lambda: systematic_resample([[0.5, 0.5]], np.random.default_rng(0)), "weights"),
    (lambda: effective_sample_size([0.0, 0.0]), "weights"),
    (lambda: bootstrap_update(np.zeros((3, 1)), np.zeros(2), [1.0], np.eye(1), [1.0], np.random.default_rng(0)),
     "log_weights"),
    (lambda: bootstrap_update(np.zeros((3, 1)), np.zeros(3), [1.0], np.eye(1), [0.0], np.random.default_rng(0)),
     "R"),
    (lambda: bootstrap_update(np.zeros(3), np.zeros(3), [1.0], np.eye(1), [1.0], np.random.default_rng(0)),
     "particles"),
    (lambda: bootstrap_update(np.zeros((3, 1)), np.zeros(3), [1.0], np.eye(1), [1.0], np.random.default_rng(0),
                              threshold=1.5), "threshold"),
    (lambda: bootstrap_update(np.zeros((3, 1)), np.zeros(3), [1.0], np.eye(1), [1.0], np.random.default_rng(0),
                              jitter=-1.0), "jitter"),
])
def test_bad_input_names_the_argument(call: object, argument: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{argument}\b"):
        call()  # type: ignore[operator]
