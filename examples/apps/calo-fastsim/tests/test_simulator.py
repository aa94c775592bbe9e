"""The simulator against what GFlash and the detector's make-up say: the geometry, the depth of the shower
maximum growing with ln E, the sampling fraction, containment and the sampling resolution."""

from __future__ import annotations

import time

import numpy as np
import pytest
from calo_fastsim.geometry import LAYER_MM, LAYERS, R_EDGES_MM, VOXELS
from calo_fastsim.gflash import MEDIUM
from calo_fastsim.simulator import THRESHOLD_MEV, reshape, simulate


def test_the_dataset_2_geometry() -> None:
    assert VOXELS == 6480 and len(R_EDGES_MM) == 10
    assert 4.1 < MEDIUM.x0_mm < 4.3 and 9.2 < MEDIUM.rm_mm < 9.7  # W-dominated: X0(W) 3.5 mm, R_M(W) 9.3 mm
    assert 35 < LAYERS * LAYER_MM / MEDIUM.x0_mm < 37  # about 36 X0 deep
    assert R_EDGES_MM[-1] == pytest.approx(41.85) and 4.3 < R_EDGES_MM[-1] / MEDIUM.rm_mm < 4.6  # 4.5 R_M(W)
    # (mip share of the silicon) x e/mip, e/mip = 1 / (1 + 0.007 (Z_W - Z_Si))
    assert MEDIUM.sampling_fraction == pytest.approx(0.0363 * 0.704, rel=0.02)


def _profile(e_mev: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    s = simulate(300, seed, energies_mev=e_mev)
    return reshape(s.showers).sum(axis=(2, 3)).mean(axis=0), s.showers.sum(axis=1) / e_mev


def _depth_of_maximum(profile: np.ndarray) -> float:
    """Depth (X0) of the mean profile's maximum, a parabola through the three highest layers."""
    k = int(np.argmax(profile))
    a, b, c = profile[k - 1:k + 2]
    return (k + 0.5 + 0.5 * (a - c) / (a - 2 * b + c)) * LAYER_MM / MEDIUM.x0_mm


def test_the_shower_maximum_moves_with_log_energy_as_gflash_says() -> None:
    energies = [1e3, 1e4, 1e5, 1e6]
    depth = np.array([_depth_of_maximum(_profile(e, 10 + i)[0]) for i, e in enumerate(energies)])
    # T_sam = ln(E/E_c) - 0.812 - 0.59/F_S - 0.53 (1 - e/mip): one X0 more per e-fold of energy
    expect = np.log(np.array(energies) / MEDIUM.ec_mev) - 0.812 - 0.59 / MEDIUM.fs - 0.53 * (1 - MEDIUM.ehat)
    assert np.all(np.abs(depth - expect) < 0.4), (depth, expect)
    slope = np.polyfit(np.log(energies), depth, 1)[0]
    assert slope == pytest.approx(1.0, abs=0.1)


def test_sampling_fraction_containment_and_resolution() -> None:
    ratios = {e: _profile(e, 20 + i)[1] for i, e in enumerate([1e4, 1e5, 1e6])}
    for e, r in ratios.items():  # 36 X0 and 4.5 R_M hold all but a per cent
        assert 0.98 < r.mean() / MEDIUM.sampling_fraction <= 1.005, (e, r.mean())
        resolution = r.std() / r.mean()
        assert resolution == pytest.approx(MEDIUM.resolution / np.sqrt(e / 1e3), rel=0.15), e
    leak = [1 - _profile(e, 30)[0][-5:].sum() / _profile(e, 30)[0].sum() for e in (1e4, 1e6)]
    assert leak[1] < leak[0]  # the last layers see more of a harder shower


def test_showers_are_reproducible_cut_and_fast() -> None:
    began = time.perf_counter()
    a = simulate(2000, 3)
    assert time.perf_counter() - began < 15  # a few thousand showers in seconds
    b = simulate(2000, 3)
    assert np.array_equal(a.showers, b.showers) and a.showers.dtype == np.float32
    assert a.showers.shape == (2000, VOXELS) and a.incident_energies.shape == (2000, 1)
    e = a.incident_energies[:, 0]
    assert e.min() >= 1e3 and e.max() <= 1e6 and abs(np.log10(e).mean() - 4.5) < 0.05  # log-uniform
    nonzero = a.showers[a.showers > 0]
    assert nonzero.min() >= THRESHOLD_MEV
