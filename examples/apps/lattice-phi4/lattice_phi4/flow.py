"""The normalising flow: affine coupling layers with checkerboard masks (Albergo, Kanwar, Shanahan 2019).

z ~ N(0, 1) on every site; each layer keeps one colour of the checkerboard frozen and moves the other,
x_active -> x_active * exp(s) + t, with (s, t) from a small periodic CNN of the frozen sites; the colours
alternate between layers. log q(x) = log N(z) - sum of the layers' log |det|. The convolutions are circular,
so one trained flow takes any L. Training minimises the reverse KL divergence up to log Z:
loss = mean over z of [log q(x) + S(x)], with no data: the training task's datasets are prior draws.
torch is imported inside the functions, so publishing the app and its processes do not need it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lattice_phi4.chain import ess_per_sample, independence_metropolis

__all__ = ["build_flow", "phi4_flow"]

STEPS_PER_EPOCH = 50
BATCH = 256
HELD_OUT = 1024


def build_flow(params: dict[str, Any]) -> Any:
    import torch
    from torch import nn

    class Coupling(nn.Module):
        def __init__(self, parity: int, hidden: int) -> None:
            super().__init__()
            self.parity = parity
            conv = [nn.Conv2d(1, hidden, 3, padding=1, padding_mode="circular"), nn.LeakyReLU(),
                    nn.Conv2d(hidden, hidden, 3, padding=1, padding_mode="circular"), nn.LeakyReLU(),
                    nn.Conv2d(hidden, 2, 3, padding=1, padding_mode="circular"), nn.Tanh()]
            self.net = nn.Sequential(*conv)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            size = x.shape[-1]
            idx = torch.arange(size, device=x.device)
            frozen_mask = ((idx[:, None] + idx[None, :] + self.parity) % 2 == 0).to(x.dtype)
            frozen = x * frozen_mask
            s, t = self.net(frozen.unsqueeze(1)).unbind(1)
            active = 1.0 - frozen_mask
            y = frozen + active * (x * torch.exp(s) + t)
            return y, (active * s).sum(dim=(-2, -1))

    class Flow(nn.Module):
        def __init__(self, layers: int, hidden: int) -> None:
            super().__init__()
            self.layers = nn.ModuleList(Coupling(i % 2, hidden) for i in range(layers))

        def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """x = f(z) and log q(x)."""
            log_q = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(dim=(-2, -1))
            x = z
            for layer in self.layers:
                x, log_det = layer(x)
                log_q = log_q - log_det
            return x, log_q

    return Flow(int(params.get("layers", 8)), int(params.get("hidden", 8)))


def torch_action(phi: Any, m2: Any, lam: Any) -> Any:
    """The action of ``action.py`` on a batch (B, L, L) with per-sample couplings (B,)."""
    import torch

    hop = phi * (torch.roll(phi, -1, -1) + torch.roll(phi, -1, -2))
    site = -2.0 * hop + (4.0 + m2[:, None, None]) * phi ** 2 + lam[:, None, None] * phi ** 4
    return site.sum(dim=(-2, -1))


def couplings(parameters: dict[str, Any]) -> tuple[int, float, float]:
    return int(parameters.get("L", 8)), float(parameters.get("m2", -4.0)), float(parameters.get("lam", 8.0))


def phi4_flow() -> Any:
    """The model entrypoint of twinapp.yaml: the engine's TrainingTask for ``flow``."""
    import torch
    from torch.utils.data import Dataset

    from twinengine.app import OptimizerConfig, TrainingConfig, TrainingData, TrainingTask

    class PriorDraws(Dataset[tuple[Any, Any]]):
        """z ~ N(0, 1) on L x L with the twin's couplings; fresh draws (training) or fixed ones (held out).

        Fresh draws come from torch's generator, seeded alike in every process of a DDP run: a process other
        than the first draws from a generator of its own (seeded by its rank), so the processes' batches differ
        and DDP averages gradients of different draws (one process draws exactly as without DDP)."""

        def __init__(self, size: int, m2: float, lam: float, count: int, seed: int | None) -> None:
            self.shape, self.count, self.seed = (size, size), count, seed
            self.coupling = torch.tensor([m2, lam], dtype=torch.float32)
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            self.fresh = torch.Generator().manual_seed(torch.initial_seed() + 7919 * rank) if rank else None

        def __len__(self) -> int:
            return self.count

        def __getitem__(self, i: int) -> tuple[Any, Any]:
            generator = self.fresh if self.seed is None else torch.Generator().manual_seed(self.seed + i)
            return torch.randn(self.shape, generator=generator), self.coupling

    def datasets(data: TrainingData) -> tuple[PriorDraws, PriorDraws]:
        size, m2, lam = couplings(data.parameters)
        return (PriorDraws(size, m2, lam, STEPS_PER_EPOCH * BATCH, None),
                PriorDraws(size, m2, lam, HELD_OUT, 10_000))

    def reverse_kl(model: Any, batch: Any) -> Any:
        z, coupling = batch
        x, log_q = model(z)
        return (log_q + torch_action(x, coupling[:, 0], coupling[:, 1])).mean()

    def log_weights(model: Any, batch: Any) -> np.ndarray[Any, Any]:
        z, coupling = batch
        x, log_q = model(z)
        return (-torch_action(x, coupling[:, 0], coupling[:, 1]) - log_q).double().cpu().numpy()

    def acceptance_rate(model: Any, batch: Any) -> float:
        return independence_metropolis(log_weights(model, batch), seed=0)[1]

    def ess(model: Any, batch: Any) -> float:
        return ess_per_sample(log_weights(model, batch))

    def predict(model: Any, inputs: Any) -> Any:
        """{n, seed, parameters: {L, m2, lam}} -> proposals {phi (n, L, L), log_q, action}."""
        size, m2, lam = couplings(inputs.get("parameters") or {})
        n = int(inputs.get("n", 1024))
        z = torch.randn((n, size, size), generator=torch.Generator().manual_seed(int(inputs.get("seed", 0))))
        device = next(model.parameters()).device
        x, log_q = model(z.to(device))
        s = torch_action(x, torch.full((n,), m2, device=device), torch.full((n,), lam, device=device))
        return {"phi": x.cpu().tolist(), "log_q": log_q.cpu().tolist(), "action": s.cpu().tolist()}

    return TrainingTask(
        build_model=build_flow, datasets=datasets, loss=reverse_kl, predict=predict,
        metrics={"acceptance_rate": acceptance_rate, "ess": ess},
        config=TrainingConfig(epochs=20, batch_size=BATCH, seed=1, log_every=25, threads=1,
                              optimizer=OptimizerConfig(name="adam", lr=0.003), params={"layers": 8, "hidden": 8}),
        gate={"acceptance_rate": {"min": 0.2}, "thresholds": {"ess": {"min": 0.05}}, "compare": "val_loss",
              "mode": "min", "margin": 0.05},
        search_space={"params.layers": {"type": "int", "low": 4, "high": 12},
                      "params.hidden": {"type": "int", "low": 4, "high": 16}})
