"""A generative model of glitch shapes: a conditional normalising flow (RealNVP, written on PyTorch) that
learns the whitened strain around vetoed glitches, conditioned on the auxiliary channel that vetoed them, and
draws new glitches of a channel's family (for injection studies and for subtracting a glitch's typical shape).

A shape (512 samples at unit RMS) is first projected on the ``COMPONENTS`` leading principal components of
its channel's training shapes (computed by ``datasets`` from the training set and kept as buffers of the
model, so a stored version carries them); the flow models those coefficients exactly: a channel-dependent affine map,
then ``LAYERS`` affine couplings whose scales and shifts come from small networks of the frozen half and the
channel. Training maximises the likelihood of the coefficients (the loss is their negative log-likelihood
per component, which is also ``val_loss``); a draw is the flow run backwards from Gaussian noise, mapped back
through the components, plus Gaussian noise outside them with the spectrum the components left out of the
channel's training shapes (the detector's noise around a glitch; it has no parameters to learn).

Its training data are the ``glitches`` stream's records (a retraining buffer fills with them); its gate
metric is how far the spectral centroid of drawn glitches is from the held-out glitches' of the same channel.
torch is imported inside the functions, so publishing the app does not need it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from virgo_glitch.channels import COUPLED, SAMPLE_RATE

SIZE = 512  # samples per shape (the function's snippet)
COMPONENTS = 8  # principal components per channel the flow models
LAYERS = 6
MIN_GLITCHES = 10


def centroid(shapes: np.ndarray) -> np.ndarray:
    """Spectral centroid (Hz) of each shape: where its power sits."""
    power = np.abs(np.fft.rfft(shapes, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(shapes.shape[-1], 1 / SAMPLE_RATE)
    return (power * freqs).sum(axis=-1) / np.maximum(power.sum(axis=-1), 1e-12)


def _table(records: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(shapes normalised to unit RMS, channel index) of records from a coupled channel, in time order."""
    rows = sorted((r for r in records if r.get("channel") in COUPLED), key=lambda r: r["time"])
    if not rows:
        return np.zeros((0, SIZE), dtype="float32"), np.zeros(0, dtype="int64")
    shapes = np.stack([np.asarray(r["shape"], dtype="float64") for r in rows])
    shapes /= np.maximum(np.sqrt((shapes ** 2).mean(axis=1, keepdims=True)), 1e-9)
    return shapes.astype("float32"), np.array([COUPLED.index(r["channel"]) for r in rows], dtype="int64")


def _components(shapes: np.ndarray, k: int) -> dict[str, Any]:
    """The mean of ``shapes``, their leading principal components as rows, the coefficients' spread and the
    rank: at most ``k`` and at most half the shapes (fewer components than shapes leaves a residual to learn
    the noise from); rows beyond the rank are zero, spreads one."""
    size = shapes.shape[1]
    basis, spread = np.zeros((k, size)), np.ones(k)
    mean = shapes.mean(axis=0) if len(shapes) else np.zeros(size)
    if len(shapes) < 2:
        return {"mean": mean, "basis": basis, "spread": spread, "rank": 0}
    _u, singular, rows = np.linalg.svd(shapes - mean, full_matrices=False)
    rank = int(min(k, max((len(shapes) - 1) // 2, 1), np.sum(singular > 1e-6 * max(float(singular[0]), 1e-12))))
    basis[:rank] = rows[:rank]
    spread[:rank] = singular[:rank] / math.sqrt(len(shapes) - 1)
    return {"mean": mean, "basis": basis, "spread": spread, "rank": rank}


def _residual_power(shapes: np.ndarray, part: dict[str, Any]) -> np.ndarray:
    """Mean power spectrum of what ``part``'s mean and components leave out of ``shapes``."""
    own = shapes - part["mean"]
    return np.mean(np.abs(np.fft.rfft(own - own @ part["basis"].T @ part["basis"], axis=1)) ** 2, axis=0)


def principal_components(shapes: np.ndarray, labels: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per channel (``labels``): the mean shape, leading principal components, the coefficients' spread and
    the rank (``_components``), and the mean power spectrum of what the components leave out (the residual).
    A channel with fewer than three shapes of its own gets every channel's: with too little data the model
    draws the glitches it knows rather than none."""
    pooled = _components(shapes, k)
    found, power = [], []
    for i in range(len(COUPLED)):
        own = shapes[labels == i]
        part = _components(own, k) if len(own) >= 3 else pooled
        found.append(part)
        power.append(_residual_power(own if len(own) >= 3 else shapes, part))
    out = {name: np.stack([np.asarray(part[name]) for part in found]) for name in ("mean", "basis", "spread", "rank")}
    return {**out, "residual_power": np.stack(power)}


def glitch_shapes() -> Any:
    """The model entrypoint declared in the manifest."""
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from twinengine.app import OptimizerConfig, TrainingConfig, TrainingData, TrainingTask

    k, channels = COMPONENTS, len(COUPLED)
    fitted: dict[str, Any] = {}  # the training set's components, for the model built after ``datasets``

    class Coupling(nn.Module):
        """Moves the components outside ``mask`` by a scale and shift computed from those inside it."""

        def __init__(self, mask: torch.Tensor, hidden: int) -> None:
            super().__init__()
            self.register_buffer("mask", mask)
            self.net = nn.Sequential(nn.Linear(k + channels, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                                     nn.Tanh(), nn.Linear(hidden, 2 * k))
            nn.init.zeros_(self.net[-1].weight)  # starts as the identity
            nn.init.zeros_(self.net[-1].bias)

        def _scale_shift(self, frozen: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            s, t = self.net(torch.cat([frozen, c], 1)).chunk(2, 1)
            free = 1 - self.mask
            return torch.tanh(s) * free, t * free

        def forward(self, u: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            s, t = self._scale_shift(u * self.mask, c)
            return u * torch.exp(s) + t, s.sum(1)

        def inverse(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            s, t = self._scale_shift(z * self.mask, c)
            return (z - t) * torch.exp(-s)

    class ConditionalFlow(nn.Module):
        def __init__(self, hidden: int, layers: int) -> None:
            super().__init__()
            for name, shape in (("mean", (channels, SIZE)), ("basis", (channels, k, SIZE)), ("rank", (channels,)),
                                ("spread", (channels, k)), ("residual_power", (channels, SIZE // 2 + 1))):
                self.register_buffer(name, torch.ones(shape) if name == "spread" else torch.zeros(shape))
            self.shift = nn.Parameter(torch.zeros(channels, k))  # the channel's own affine map first
            self.log_scale = nn.Parameter(torch.zeros(channels, k))
            masks = [(torch.arange(k) % 2 == i % 2).float() if i < layers // 2 else
                     (torch.arange(k) < k // 2).float() if i % 2 else (torch.arange(k) >= k // 2).float()
                     for i in range(layers)]
            self.layers = nn.ModuleList(Coupling(mask, hidden) for mask in masks)
            if "mean" in fitted:
                for name in ("mean", "basis", "rank", "spread", "residual_power"):
                    getattr(self, name).copy_(torch.as_tensor(fitted[name], dtype=torch.float32))

        def encode(self, x: torch.Tensor, channel: torch.Tensor) -> torch.Tensor:
            """Shapes → their channel's coefficients at unit spread (beyond its rank: noise, so the flow
            learns nothing there, and a draw puts nothing there)."""
            if float(self.rank.sum()) == 0:
                raise RuntimeError("the model has no principal components: build it after datasets()")
            u = torch.einsum("bs,bks->bk", x - self.mean[channel], self.basis[channel]) / self.spread[channel]
            beyond = torch.arange(k, device=x.device)[None, :] >= self.rank[channel][:, None]
            return torch.where(beyond, torch.randn_like(u), u)

        def log_prob(self, x: torch.Tensor, channel: torch.Tensor) -> torch.Tensor:
            """log p of the coefficients, per component, of each shape given its channel."""
            c = nn.functional.one_hot(channel, channels).float()
            z = (self.encode(x, channel) - self.shift[channel]) * torch.exp(-self.log_scale[channel])
            log_det = -self.log_scale[channel].sum(1)
            for layer in self.layers:
                z, more = layer(z, c)
                log_det = log_det + more
            return ((-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(1) + log_det) / k

        def sample(self, channel: torch.Tensor) -> torch.Tensor:
            c = nn.functional.one_hot(channel, channels).float()
            u = torch.randn(len(channel), k)
            for layer in reversed(self.layers):
                u = layer.inverse(u, c)
            u = u * torch.exp(self.log_scale[channel]) + self.shift[channel]
            basis = self.basis[channel]
            noise = torch.fft.irfft(torch.complex(torch.randn(len(channel), SIZE // 2 + 1),
                                                  torch.randn(len(channel), SIZE // 2 + 1))
                                    * (self.residual_power[channel] / 2).sqrt(), SIZE)
            noise = noise - torch.einsum("bk,bks->bs", torch.einsum("bs,bks->bk", noise, basis), basis)
            return self.mean[channel] + torch.einsum("bk,bks->bs", u * self.spread[channel], basis) + noise

    def build(params: dict[str, Any]) -> nn.Module:
        return ConditionalFlow(int(params.get("hidden", 32)), int(params.get("layers", LAYERS)))

    def datasets(data: TrainingData) -> tuple[TensorDataset, TensorDataset]:
        shapes, labels = _table(data.records)
        if len(shapes) < MIN_GLITCHES:
            raise ValueError(f"only {len(shapes)} glitches of coupled channels; need at least {MIN_GLITCHES} to train")
        cut = int(len(shapes) * 0.8)  # the newest fifth is held out
        fitted.update(principal_components(shapes[:cut].astype("float64"), labels[:cut], k))
        x, c = torch.from_numpy(shapes), torch.from_numpy(labels)
        return TensorDataset(x[:cut], c[:cut]), TensorDataset(x[cut:], c[cut:])

    def loss(model: nn.Module, batch: Any) -> torch.Tensor:
        x, c = batch
        return -model.log_prob(x, c).mean()

    def centroid_error(model: nn.Module, batch: Any) -> float:
        """Mean over the channels in the batch of |centroid(drawn) - centroid(held out)| / centroid(held out)."""
        x, c = batch
        errors = []
        with torch.no_grad():
            for label in c.unique():
                real = x[c == label].numpy()
                drawn = model.sample(torch.full((64,), int(label), dtype=torch.long)).numpy()
                want = float(np.median(centroid(real)))
                errors.append(abs(float(np.median(centroid(drawn))) - want) / want)
        return float(np.mean(errors))

    def predict(model: nn.Module, inputs: Any) -> Any:
        """inputs: {channel, n?, seed?} → n generated glitch shapes of that channel's family (unit RMS)."""
        channel = str(inputs["channel"])
        if channel not in COUPLED:
            raise ValueError(f"channel {channel!r} is not a coupled channel ({', '.join(COUPLED)})")
        torch.manual_seed(int(inputs.get("seed", 0)))
        with torch.no_grad():
            drawn = model.sample(torch.full((int(inputs.get("n", 1)),), COUPLED.index(channel), dtype=torch.long))
        drawn = drawn / drawn.pow(2).mean(1, keepdim=True).sqrt().clamp_min(1e-9)
        return [[round(float(v), 5) for v in row] for row in drawn]

    return TrainingTask(
        build_model=build, datasets=datasets, loss=loss, metrics={"centroid_error": centroid_error},
        predict=predict,
        config=TrainingConfig(epochs=40, batch_size=16, seed=3, threads=1, params={"hidden": 32, "layers": LAYERS},
                              optimizer=OptimizerConfig(name="adam", lr=0.001)),
        gate={"thresholds": {"centroid_error": {"max": 0.25}}},
    )
