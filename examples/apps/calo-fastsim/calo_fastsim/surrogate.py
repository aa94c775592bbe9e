"""The surrogate's training task (the manifest's model entrypoint): the engine trains ``network.Surrogate`` on
showers simulated with the twin's training seed and judges it on showers of another seed.

The held-out set is one item holding all its showers, so the gate's metrics (separation power of
E_tot/E_inc, KPD) compare whole distributions, not batches of 256. torch is imported inside the functions,
so publishing the app and its processes do not need it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calo_fastsim.features import features, kernel_features
from calo_fastsim.metrics import kpd, separation_power
from calo_fastsim.simulator import Showers, simulate

__all__ = ["calo_surrogate", "generate", "parameter_bytes", "training_samples"]

DEFAULTS = {"training_seed": 2022, "training_showers": 20000, "held_out_showers": 2000}


def training_samples(parameters: dict[str, Any]) -> tuple[Showers, Showers]:
    """(training, held out): simulated with ``training_seed`` and the seed after it."""
    p = {**DEFAULTS, **parameters}
    seed = int(p["training_seed"])
    return simulate(int(p["training_showers"]), seed), simulate(int(p["held_out_showers"]), seed + 1)


def parameter_bytes(model: Any) -> int:
    return int(sum(t.numel() * t.element_size() for t in model.parameters()))


def generate(model: Any, e_inc_mev: np.ndarray, *, seed: int = 0, batch: int = 1000) -> Showers:
    """Showers from the surrogate for the given incident energies (MeV), reproducible from ``seed``."""
    import torch

    torch.manual_seed(seed)
    e = torch.as_tensor(np.asarray(e_inc_mev, dtype=np.float32).reshape(-1))
    device = next(model.parameters()).device
    parts = [model.generate(e[i : i + batch].to(device)).cpu().numpy() for i in range(0, len(e), batch)]
    return Showers(incident_energies=e.numpy()[:, None], showers=np.concatenate(parts).astype(np.float32))


def _held_out(batch: Any) -> Showers:
    e_inc, showers = batch
    return Showers(
        incident_energies=e_inc.reshape(-1, 1).cpu().numpy(),
        showers=showers.reshape(-1, showers.shape[-1]).cpu().numpy(),
    )


def calo_surrogate() -> Any:
    """The model entrypoint of twinapp.yaml: the engine's TrainingTask for ``surrogate``."""
    import torch
    from torch.utils.data import TensorDataset

    from calo_fastsim.network import Surrogate, fit_scales
    from twinengine.app import OptimizerConfig, ScheduleConfig, TrainingConfig, TrainingData, TrainingTask

    fitted: dict[str, torch.Tensor] = {}  # the training set's scales, for the model built after ``datasets``

    def build(params: dict[str, Any]) -> Surrogate:
        model = Surrogate(
            int(params.get("hidden", 256)),
            int(params.get("layers", 2)),
            int(params.get("voxel_hidden", 128)),
            int(params.get("components", 4)),
            int(params.get("voxel_components", 2)),
            int(params.get("width_hidden", 128)),
        )
        if fitted:
            model.set_scales(fitted)
        return model

    def datasets(data: TrainingData) -> tuple[TensorDataset, TensorDataset]:
        train, held = training_samples(data.parameters)
        e, s = torch.from_numpy(train.incident_energies[:, 0]), torch.from_numpy(train.showers)
        fitted.update(fit_scales(e, s))
        held_e, held_s = torch.from_numpy(held.incident_energies[:, 0]), torch.from_numpy(held.showers)
        return TensorDataset(e, s), TensorDataset(held_e[None], held_s[None])

    def loss(model: Surrogate, batch: Any) -> torch.Tensor:
        e_inc, showers = batch
        return model.loss(e_inc, showers)

    def etot_separation(model: Surrogate, batch: Any) -> float:
        """Separation power of E_tot/E_inc, held out against drawn at the same incident energies."""
        held = _held_out(batch)
        e = torch.from_numpy(held.incident_energies[:, 0])
        torch.manual_seed(1)
        drawn = model.layer_energies(e.to(next(model.parameters()).device))[0].sum(1).cpu().numpy()
        return separation_power(held.showers.sum(1) / held.incident_energies[:, 0], drawn / e.numpy())

    def kpd_metric(model: Surrogate, batch: Any) -> float:
        """KPD of the high-level features, held out against drawn (x 10^3 is the paper's unit)."""
        held = _held_out(batch)
        drawn = generate(model, held.incident_energies[:, 0], seed=1)
        return kpd(
            kernel_features(features(held)),
            kernel_features(features(drawn)),
            batches=5,
            batch_size=min(1000, len(held)),
        ).value

    def predict(model: Surrogate, inputs: Any) -> Any:
        """{n, seed, energies_mev?} -> {incident_energies (n, 1), showers (n, 6480)} in MeV; energies
        log-uniform over 1 GeV-1 TeV unless given."""
        rng = np.random.default_rng(int(inputs.get("seed", 0)))
        n = int(inputs.get("n", 100))
        given = inputs.get("energies_mev")
        energies = np.asarray(given, dtype=float) if given is not None else 10 ** rng.uniform(3, 6, n)
        drawn = generate(model, energies, seed=int(inputs.get("seed", 0)))
        return {"incident_energies": drawn.incident_energies.tolist(), "showers": drawn.showers.tolist()}

    return TrainingTask(
        build_model=build,
        datasets=datasets,
        loss=loss,
        predict=predict,
        metrics={"etot_separation": etot_separation, "kpd": kpd_metric},
        config=TrainingConfig(
            epochs=30,
            batch_size=64,
            seed=7,
            threads=2,
            log_every=25,
            optimizer=OptimizerConfig(name="adam", lr=0.002),
            schedule=ScheduleConfig(name="cosine"),
            params={
                "hidden": 256,
                "layers": 2,
                "voxel_hidden": 128,
                "components": 4,
                "voxel_components": 2,
                "width_hidden": 128,
            },
        ),
        gate={"thresholds": {"etot_separation": {"max": 0.1}}, "compare": "val_loss", "mode": "min", "margin": 0.0},
        search_space={
            "optimizer.lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
            "params.hidden": {"type": "int", "low": 64, "high": 256},
        },
    )
