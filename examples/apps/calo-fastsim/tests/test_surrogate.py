"""The surrogate: its coding of layer energies is exact, and two short epochs through the engine's PyTorch
flavour train it, keep the scales in the saved state and draw showers of the right form quickly."""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calo_fastsim.network import EMPTY_MEV, decode_hits, decode_layers, encode_hits, encode_layers  # noqa: E402
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
    began = time.perf_counter()
    drawn = generate(fit.model, np.full(100, 5e4), seed=3)
    assert (time.perf_counter() - began) / 100 < 0.06  # 60 ms a shower at batch 100
    assert drawn.showers.shape == (100, VOXELS) and np.isfinite(drawn.showers).all()
    assert (drawn.showers >= 0).all() and (drawn.showers.sum(1) > 0).all()
    hit = drawn.showers[drawn.showers > 0]
    assert hit.min() >= THRESHOLD_MEV * (1 - 1e-5)  # every drawn voxel is above the readout cut
    out = task.predict(fit.model, {"n": 2, "seed": 1})
    assert np.asarray(out["showers"]).shape == (2, VOXELS) and np.asarray(out["incident_energies"]).shape == (2, 1)
