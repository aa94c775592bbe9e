"""The interference flagger: a small network (PyTorch, CPU, seconds) that gives each cell of a chunk its
probability of holding interference from the cell's features (``pipeline.cell_features``).

It learns from simulated observations whose truth is known (``simulator``; the training seeds are the
twin's ``training_seeds`` parameter, apart from the seeds the science checks use), as a site would train on
observations with injected interference. Its gate metric is the cells' F1 on a held-out observation.
torch is imported inside the functions, so publishing the app does not need it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pulsar_rfi.pipeline import CHUNK, FEATURES, OVERLAP, cell_features, normalise
from pulsar_rfi.simulator import simulate

TRAINING_SAMPLES = 8192  # per simulated training observation
CELLS = 60_000  # cells drawn from each for training


def training_cells(seed: int, *, cells: int = CELLS) -> tuple[np.ndarray, np.ndarray]:
    """(features, truth) of ``cells`` cells drawn from one simulated observation, chunk by chunk as the twin
    sees it."""
    obs = simulate(seed, nsamp=TRAINING_SAMPLES)
    rng = np.random.default_rng(seed)
    features, truth = [], []
    for start in range(0, TRAINING_SAMPLES - CHUNK - OVERLAP + 1, CHUNK):
        block = obs.data[:, start:start + CHUNK + OVERLAP].astype("float64")
        features.append(cell_features(normalise(block)))
        truth.append(obs.rfi[:, start:start + CHUNK + OVERLAP].ravel())
    x, y = np.concatenate(features), np.concatenate(truth)
    pick = rng.choice(len(x), size=min(cells, len(x)), replace=False)
    return x[pick], y[pick].astype("float32")


def f1(flags: np.ndarray, truth: np.ndarray) -> float:
    """F1 of flagged cells against the truth mask."""
    hit = float(np.sum(flags & truth))
    return 2 * hit / max(float(np.sum(flags)) + float(np.sum(truth)), 1.0)


def rfi_flagger() -> Any:
    """The model entrypoint declared in the manifest."""
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from twinengine.app import OptimizerConfig, TrainingConfig, TrainingData, TrainingTask

    def build(params: dict[str, Any]) -> nn.Module:
        hidden = int(params.get("hidden", 64))
        return nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                             nn.Linear(hidden, 1))

    def datasets(data: TrainingData) -> tuple[TensorDataset, TensorDataset]:
        seeds = [int(s) for s in data.parameters.get("training_seeds", [101, 102, 103])]
        if len(seeds) < 2:
            raise ValueError("training needs at least two seeds: one observation is held out")
        parts = [training_cells(seed) for seed in seeds]
        train_x = np.concatenate([p[0] for p in parts[:-1]])
        train_y = np.concatenate([p[1] for p in parts[:-1]])
        held_x, held_y = parts[-1]
        return (TensorDataset(torch.from_numpy(train_x), torch.from_numpy(train_y)),
                TensorDataset(torch.from_numpy(held_x), torch.from_numpy(held_y)))

    def loss(model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        return nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(1), y)

    def cell_f1(model: nn.Module, batch: Any) -> float:
        x, y = batch
        with torch.no_grad():
            flags = (model(x).squeeze(1) > 0).numpy()
        return f1(flags, y.numpy() > 0.5)

    def predict(model: nn.Module, inputs: Any) -> Any:
        """inputs: (cell, FEATURES) features -> each cell's probability of interference. One thread: a
        chunk is small, and threads fighting over a busy machine cost ten times the work."""
        torch.set_num_threads(1)
        with torch.no_grad():
            logits = model(torch.as_tensor(np.asarray(inputs, dtype="float32"))).squeeze(1)
        return torch.sigmoid(logits).numpy()

    return TrainingTask(
        build_model=build, datasets=datasets, loss=loss, metrics={"cell_f1": cell_f1}, predict=predict,
        config=TrainingConfig(epochs=6, batch_size=1024, seed=5, threads=1, params={"hidden": 64},
                              optimizer=OptimizerConfig(name="adam", lr=0.003)),
        gate={"thresholds": {"cell_f1": {"min": 0.85}}},
    )
