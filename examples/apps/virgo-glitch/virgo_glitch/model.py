"""A generative model of glitch shapes: a conditional variational autoencoder (PyTorch) that learns the
whitened strain around vetoed glitches, conditioned on the auxiliary channel that vetoed them, and draws new
glitches of a channel's family (for injection studies and for subtracting a glitch's typical shape).

Its training data are the ``glitches`` stream's records (a retraining buffer fills with them); its gate
metric is how far the spectral centroid of generated glitches is from the held-out glitches' of the same
channel. Drawn shapes are the decoder's means: smoother than measured glitches, which carry the detector's
noise, so their power sits somewhat lower. torch is imported inside the functions, so publishing the app
does not need it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from virgo_glitch.channels import COUPLED, SAMPLE_RATE

LATENT = 4
SIZE = 512  # samples per shape (the function's snippet)


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


def glitch_shapes() -> Any:
    """The model entrypoint declared in the manifest."""
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from twinengine.app import TrainingConfig, TrainingData, TrainingTask

    class ConditionalVAE(nn.Module):
        def __init__(self, hidden: int) -> None:
            super().__init__()
            k = len(COUPLED)
            self.encoder = nn.Sequential(nn.Linear(SIZE + k, hidden), nn.Tanh(), nn.Linear(hidden, 2 * LATENT))
            self.decoder = nn.Sequential(nn.Linear(LATENT + k, hidden), nn.Tanh(), nn.Linear(hidden, SIZE))

        def forward(self, x: torch.Tensor, channel: torch.Tensor) -> tuple[torch.Tensor, ...]:
            c = nn.functional.one_hot(channel, len(COUPLED)).float()
            mu, log_var = self.encoder(torch.cat([x, c], 1)).chunk(2, 1)
            z = mu + torch.randn_like(mu) * (0.5 * log_var).exp()
            return self.decoder(torch.cat([z, c], 1)), mu, log_var

        def sample(self, channel: torch.Tensor) -> torch.Tensor:
            c = nn.functional.one_hot(channel, len(COUPLED)).float()
            return self.decoder(torch.cat([torch.randn(len(channel), LATENT), c], 1))

    def build(params: dict[str, Any]) -> nn.Module:
        return ConditionalVAE(int(params.get("hidden", 128)))

    def datasets(data: TrainingData) -> tuple[TensorDataset, TensorDataset]:
        shapes, channels = _table(data.records)
        if len(shapes) < 10:
            raise ValueError(f"only {len(shapes)} glitches of coupled channels; need at least 10 to train")
        x, c = torch.from_numpy(shapes), torch.from_numpy(channels)
        cut = int(len(x) * 0.8)  # the newest fifth is held out
        return TensorDataset(x[:cut], c[:cut]), TensorDataset(x[cut:], c[cut:])

    def loss(model: nn.Module, batch: Any) -> torch.Tensor:
        x, c = batch
        recon, mu, log_var = model(x, c)
        kl = -0.5 * torch.mean(torch.sum(1 + log_var - mu ** 2 - log_var.exp(), dim=1))
        return nn.functional.mse_loss(recon, x) + 0.01 * kl

    def centroid_error(model: nn.Module, batch: Any) -> float:
        """Mean over the channels in the batch of |centroid(generated) - centroid(held out)| / centroid(held out)."""
        x, c = batch
        errors = []
        with torch.no_grad():
            for k in c.unique():
                real = x[c == k].numpy()
                drawn = model.sample(torch.full((64,), int(k), dtype=torch.long)).numpy()
                want = float(np.median(centroid(real)))
                errors.append(abs(float(np.median(centroid(drawn))) - want) / want)
        return float(np.mean(errors))

    def predict(model: nn.Module, inputs: Any) -> Any:
        """inputs: {channel, n?, seed?} → n generated glitch shapes of that channel's family (unit RMS)."""
        channel = str(inputs["channel"])
        if channel not in COUPLED:
            raise ValueError(f"channel {channel!r} is not a coupled channel ({', '.join(COUPLED)})")
        torch.manual_seed(int(inputs.get("seed", 0)))
        drawn = model.sample(torch.full((int(inputs.get("n", 1)),), COUPLED.index(channel), dtype=torch.long))
        return [[round(float(v), 5) for v in row] for row in drawn]

    return TrainingTask(
        build_model=build, datasets=datasets, loss=loss, metrics={"centroid_error": centroid_error},
        predict=predict,
        config=TrainingConfig(epochs=150, batch_size=16, seed=3, params={"hidden": 128}),
        gate={"thresholds": {"centroid_error": {"max": 0.25}}},
    )
