"""The challenge's metrics: known answers, the null test (the simulator against itself with independent
seeds) and a deliberately wrong generator (every voxel 5 % too high), which every metric must catch."""

from __future__ import annotations

import numpy as np
import pytest
from calo_fastsim.features import Features, features, kernel_features
from calo_fastsim.geometry import SHAPE
from calo_fastsim.metrics import classifier_auc, fpd, kpd, separation_power
from calo_fastsim.simulator import Showers, simulate

N = 5000


def test_separation_power_of_known_histograms() -> None:
    x = np.linspace(0, 1, 1000)
    assert separation_power(x, x) == 0.0
    # all beyond the range, so in the last bin, which holds 1/50 of the reference
    assert separation_power(x, x + 5.0) == pytest.approx(0.5 * ((0.02 - 1) ** 2 / 1.02 + 0.98))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200_000), rng.normal(size=200_000)
    assert separation_power(a, b) < 1e-3 and separation_power(a, b + 0.5) > 0.02


def test_kpd_is_unbiased_and_sees_a_shift() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4000, 10)), rng.normal(size=(4000, 10))
    same = kpd(a, b)
    assert abs(same.value) < 3 * same.error + 1e-4
    shifted = kpd(a, b + 0.3)
    assert shifted.value > 10 * shifted.error
    assert fpd(a, b + 0.3) > 5 * fpd(a, b)


def test_features_of_a_single_voxel() -> None:
    showers = np.zeros((1, *SHAPE), dtype=np.float32)
    showers[0, 2, 0, 8] = 10.0  # layer 2, alpha bin 0 (centre 11.25 degrees), outermost radial bin
    f = features(Showers(np.array([[1000.0]], dtype=np.float32), showers.reshape(1, -1)))
    r = 0.5 * (37.2 + 41.85)
    assert f.e_ratio[0] == pytest.approx(0.01) and f.e_layer[0, 2] == 10.0 and f.e_layer[0].sum() == 10.0
    assert f.centre_x[0, 2] == pytest.approx(r * np.cos(np.pi / 16)) and f.width_x[0, 2] == pytest.approx(0.0)
    assert f.sparsity[0, 2] == pytest.approx(1 / 144) and f.sparsity[0, 3] == 0.0


@pytest.fixture(scope="module")
def samples() -> tuple[Features, Features, Features]:
    reference, other = simulate(N, 101), simulate(N, 202)
    wrong = Showers(other.incident_energies, other.showers * np.float32(1.05))
    return features(reference), features(other), features(wrong)


def test_the_null_test_cannot_tell_the_simulator_from_itself(samples: tuple[Features, ...]) -> None:
    reference, other, _ = samples
    auc = classifier_auc(reference.classifier_inputs(), other.classifier_inputs(), held_out=0.5)
    assert auc == pytest.approx(0.5, abs=0.02)
    assert separation_power(reference.e_ratio, other.e_ratio) < 0.01  # its finite-sample floor is about 0.005
    distance = kpd(kernel_features(reference), kernel_features(other))
    assert abs(distance.value) < max(3 * distance.error, 1e-3)


def test_a_generator_five_percent_too_high_is_caught(samples: tuple[Features, ...]) -> None:
    reference, _, wrong = samples
    assert separation_power(reference.e_ratio, wrong.e_ratio) > 0.1
    assert classifier_auc(reference.classifier_inputs(), wrong.classifier_inputs(), held_out=0.5) > 0.75
    distance = kpd(kernel_features(reference), kernel_features(wrong))
    assert distance.value > 5 * distance.error and distance.value > 2e-3
