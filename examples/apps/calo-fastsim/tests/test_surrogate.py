"""The surrogate: its coding of layer energies and spreads is exact, and two short epochs through the engine's
PyTorch flavour train it, keep the scales in the saved state and draw showers of the right form quickly, each
layer as wide as drawn."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calo_fastsim.coding import R2_MM2, SPARSE_HITS, drawn_empty, pick_tilt  # noqa: E402
from calo_fastsim.network import (  # noqa: E402
    EMPTY_MEV,
    decode_hits,
    decode_layers,
    encode_hits,
    encode_layers,
    radial_moment,
    spread_to_width,
)
from calo_fastsim.simulator import THRESHOLD_MEV, VOXELS, simulate  # noqa: E402
from calo_fastsim.surrogate import calo_surrogate, generate, parameter_bytes  # noqa: E402


def test_layer_coding_round_trips() -> None:
    sample = simulate(50, 8)
    e_inc = torch.from_numpy(sample.incident_energies[:, 0]).double()
    e_layer = torch.from_numpy(sample.showers).double().reshape(50, 45, -1).sum(2)
    filled = e_layer > 0
    assert not filled.all()  # empty layers are coded too (dequantised far below the readout cut)
    noise = torch.rand_like(e_layer)
    x, q = encode_layers(e_inc, e_layer, noise)
    back, q_back = decode_layers(e_inc, x)
    coded = e_layer.sum(1) + (EMPTY_MEV * (1 + noise) * ~filled).sum(1)  # E_tot with the dequantised layers
    assert torch.allclose(back.sum(1), coded, rtol=1e-9)  # E_tot is kept exactly
    assert torch.equal(back > 0, filled) and torch.allclose(q, q_back, atol=1e-6)
    x, _ = encode_layers(e_inc, e_layer, torch.zeros_like(e_layer))  # 1.5e-5 MeV in each empty layer
    assert torch.allclose(decode_layers(e_inc, x)[0], e_layer, rtol=1e-4)


def test_hit_counts_round_trip() -> None:
    sample = simulate(50, 9)
    voxels = torch.from_numpy(sample.showers).double().reshape(50, 45, -1)
    e_layer, hits = voxels.sum(2), (voxels > 0).sum(2).double()
    h = encode_hits(hits, torch.rand_like(hits))
    assert torch.equal(decode_hits(h, e_layer), hits)
    # a drawn count is at least one in a layer with energy, none in an empty one, and within what the energy allows
    drawn = decode_hits(torch.full_like(h, 6.0), e_layer)
    assert torch.equal(drawn > 0, e_layer > 0) and (drawn * THRESHOLD_MEV <= e_layer + 1e-12).all()


def test_spreads_round_trip_and_are_reached() -> None:
    sample = simulate(50, 10)
    voxels = torch.from_numpy(sample.showers).double().reshape(50, 45, 16, 9)
    e_layer, hit = voxels.sum((2, 3)), voxels > 0
    rest = torch.where(hit, voxels - THRESHOLD_MEV, torch.zeros_like(voxels))  # the shares of the rest
    w = radial_moment(voxels, e_layer)
    assert torch.allclose(spread_to_width(rest + 1e-300 * hit, e_layer, w), voxels, rtol=1e-7, atol=1e-12)
    wider = spread_to_width(rest + 1e-300 * hit, e_layer, w + 0.2)  # a fifth wider in r^2, if the hits allow it
    assert torch.allclose(wider.sum((2, 3)), e_layer, rtol=1e-9) and torch.equal(wider > 0, hit)
    reached = (radial_moment(wider, e_layer) - w - 0.2).abs() < 1e-6
    many = hit.sum((2, 3)) >= 20  # a layer with many hits spans the radii it needs
    assert reached[many].all() and reached[e_layer > 0].float().mean() > 0.8


def test_sparse_layers_are_picked_given_their_spread() -> None:
    logit_p = torch.zeros(4, 9)
    w = torch.log(torch.tensor([R2_MM2[6], R2_MM2[2], R2_MM2[6], R2_MM2[6]]) + 1.0)
    hits = torch.tensor([1.0, 1.0, 3.0, SPARSE_HITS + 1.0])
    tilt = pick_tilt(logit_p, hits, w)
    assert tilt[0].argmax() == 6 and tilt[1].argmax() == 2  # one hit: the bin nearest the drawn spread alone
    assert (tilt[0].topk(2).values.diff().abs() > 100).all()
    u = torch.tensor(R2_MM2) / max(R2_MM2)
    mean = (torch.softmax(logit_p[2] + tilt[2], 0) * u).sum()
    assert abs(float(mean) - float(torch.exp(w[2]) / max(R2_MM2))) < 1e-3  # a few hits: their odds tilted
    assert torch.equal(tilt[3], torch.zeros(9))  # many hits: left to the shares' tilt
    # a drawn hit-count coordinate under ln 2 says the layer is empty; decode_layers then empties a layer near the cut
    h = torch.log(torch.tensor([[1.5, 2.5, 1.2]]))
    assert drawn_empty(h).tolist() == [[True, False, True]]
    x, _ = encode_layers(torch.tensor([1e4]), torch.tensor([[0.0] * 42 + [5.0, 0.03, 10.0]]), torch.zeros(1, 45))
    empty = torch.zeros(1, 45, dtype=torch.bool)
    empty[0, 43:] = True
    e, _ = decode_layers(torch.tensor([1e4]), x, empty)
    assert e[0, 43] == 0 and e[0, 44] > 0 and abs(float(e.sum()) - 15.03) < 1e-3  # E_tot kept; 10 MeV not emptied


def test_two_epochs_train_and_draw_showers() -> None:
    from twinengine.app import TrainingData
    from twinengine.ml.flavours import PyTorchFlavour

    task = calo_surrogate()
    config = task.config.merged({"epochs": 2, "threads": 1, "params": {"hidden": 64, "layers": 2, "voxel_hidden": 64}})
    fit = PyTorchFlavour().fit(
        task, config, TrainingData(parameters={"training_showers": 800, "held_out_showers": 300})
    )
    history = [h["train_loss"] for h in fit.history if "train_loss" in h]
    assert np.all(np.isfinite(history)) and history[-1] < history[0]
    assert np.isfinite(fit.final["val_loss"]) and 0 <= fit.final["etot_separation"] <= 1
    assert float(fit.model.flow.x_std.min()) > 0 and float(fit.model.voxels.q_std[0]) != 1.0  # scales fitted
    assert parameter_bytes(fit.model) > 0
    drawn = generate(fit.model, np.full(100, 5e4), seed=3)  # its time per shower: bench/calo_fastsim.py
    assert drawn.showers.shape == (100, VOXELS) and np.isfinite(drawn.showers).all()
    assert (drawn.showers >= 0).all() and (drawn.showers.sum(1) > 0).all()
    hit = drawn.showers[drawn.showers > 0]
    assert hit.min() >= THRESHOLD_MEV * (1 - 1e-5)  # every drawn voxel is above the readout cut
    torch.manual_seed(4)
    e_inc = torch.full((50,), 5e4)
    e_layer, q, hits, w = fit.model.draw_layers(e_inc)
    voxels = fit.model.voxels_given(e_inc, e_layer, q, hits, w)
    assert torch.allclose(voxels.sum((2, 3)), e_layer, rtol=1e-5)  # the layers' energies and hits as drawn
    assert torch.equal((voxels > 0).sum((2, 3)).to(hits.dtype), hits)
    # each layer's spread is the drawn one, or the nearest its hit voxels can reach (all the rest at the innermost
    # or the outermost hit radius)
    v, e, hit = voxels.double(), e_layer.double(), voxels > 0
    r2 = torch.tensor(R2_MM2, dtype=torch.float64)
    rest = e - hits.double() * THRESHOLD_MEV
    base = THRESHOLD_MEV * (hit * r2).sum((2, 3))
    lo = torch.where(hit, r2, torch.full_like(v, math.inf)).amin((2, 3))
    hi = torch.where(hit, r2, torch.zeros_like(v)).amax((2, 3))
    filled = e > 0
    reach = torch.log((base + rest * lo) / e), torch.log((base + rest * hi) / e)
    expected = torch.minimum(torch.maximum(w.double(), reach[0]), reach[1])
    assert torch.allclose(radial_moment(v, e)[filled], expected[filled], atol=1e-3)
    assert (w.double() - expected)[filled].abs().lt(1e-3).float().mean() > 0.5  # mostly within reach
    out = task.predict(fit.model, {"n": 2, "seed": 1})
    assert np.asarray(out["showers"]).shape == (2, VOXELS) and np.asarray(out["incident_energies"]).shape == (2, 1)
