"""The surrogate's networks (PyTorch): a conditional normalising flow for the layer energies and a conditional
zero-inflated model for the voxels within each layer, both conditioned on log E_inc.

Layer energies are coded as in CaloFlow: x_0 = ln(E_tot/E_inc) and, for the first 44 layers, the logit of the
layer's share of what is left from it on, E_i / sum_{j>=i} E_j; so E_tot is one coordinate the flow learns
directly, and the layers always add up to it. An empty layer is dequantised to a uniform draw below the readout
cut (and set back to 0 when drawn below it). The flow is a conditional affine map followed by affine couplings.
A layer's voxels (16 alpha x 9 radial bins, as shares of the layer's energy) are drawn independently given the
layer: a radial bin's voxel is non-zero with probability p and its log share is a mixture of two normals; p
and the mixture come from a network of log E_inc, the shower's depth, the layer, and the layer's and its
neighbours' log energies;
the bins of one radius share them (the showers enter at normal incidence). The drawn voxels are scaled to the
layer's energy. This module imports torch; ``surrogate`` imports it only when a model is built.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from calo_fastsim.geometry import ALPHA_BINS, LAYERS, R_BINS
from calo_fastsim.simulator import THRESHOLD_MEV

__all__ = ["Surrogate", "condition", "decode_layers", "encode_layers", "fit_scales"]

LOG_E_MID, LOG_E_HALF = 4.5, 1.5  # log10 of 1 GeV-1 TeV in MeV, mapped onto [-1, 1]
EPS = 1e-6


def condition(e_inc: torch.Tensor) -> torch.Tensor:
    """log10(E_inc/MeV) mapped to [-1, 1], shape (B, 1)."""
    return ((torch.log10(e_inc) - LOG_E_MID) / LOG_E_HALF).reshape(-1, 1)


def encode_layers(e_inc: torch.Tensor, e_layer: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, q): the flow's coordinates and log10(E_layer / E_inc), empty layers dequantised with ``noise``."""
    e = torch.where(e_layer > 0, e_layer, THRESHOLD_MEV * noise.clamp_min(EPS))
    left = torch.flip(torch.cumsum(torch.flip(e, [1]), 1), [1])
    share = (e[:, :-1] / left[:, :-1]).clamp(1e-12, 1 - EPS)  # an empty layer under a 1 TeV shower: ~1e-8
    x = torch.cat([torch.log(left[:, :1] / e_inc[:, None]), torch.log(share) - torch.log1p(-share)], 1)
    return x, torch.log10(e / e_inc[:, None])


def decode_layers(e_inc: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(E_layer with layers below the cut emptied and the rest scaled to E_tot, q as ``encode_layers``)."""
    total = e_inc[:, None] * torch.exp(x[:, :1])
    share = torch.sigmoid(x[:, 1:])
    kept = torch.cumprod(torch.cat([torch.ones_like(total), 1 - share], 1), 1)  # share of E_tot left at layer i
    e = total * kept * torch.cat([share, torch.ones_like(total)], 1)
    q = torch.log10(e.clamp_min(1e-30) / e_inc[:, None])
    cut = torch.where(e >= THRESHOLD_MEV, e, torch.zeros_like(e))
    scale = total / cut.sum(1, keepdim=True).clamp_min(1e-30)
    return cut * scale, q


def _zero_linear(inputs: int, outputs: int) -> nn.Linear:
    layer = nn.Linear(inputs, outputs)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class Coupling(nn.Module):
    """Moves the coordinates outside ``mask`` by a scale and shift computed from those inside it and c."""

    mask: torch.Tensor

    def __init__(self, mask: torch.Tensor, hidden: int) -> None:
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = nn.Sequential(nn.Linear(LAYERS + 1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 _zero_linear(hidden, 2 * LAYERS))  # starts as the identity

    def _scale_shift(self, frozen: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(torch.cat([frozen, c], 1)).chunk(2, 1)
        free = 1 - self.mask
        return 2 * torch.tanh(s / 2) * free, t * free

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._scale_shift(x * self.mask, c)
        return x * torch.exp(s) + t, s.sum(1)

    def inverse(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        s, t = self._scale_shift(z * self.mask, c)
        return (z - t) * torch.exp(-s)


class LayerFlow(nn.Module):
    """p(x | c): standardise, a c-dependent affine map, then couplings, onto N(0, 1)."""

    x_mean: torch.Tensor
    x_std: torch.Tensor

    def __init__(self, hidden: int, layers: int) -> None:
        super().__init__()
        self.register_buffer("x_mean", torch.zeros(LAYERS))
        self.register_buffer("x_std", torch.ones(LAYERS))
        self.affine = nn.Sequential(nn.Linear(1, hidden), nn.SiLU(), _zero_linear(hidden, 2 * LAYERS))
        idx = torch.arange(LAYERS)
        masks = [(idx % 2 == i % 2) if i % 4 < 2 else ((idx < LAYERS // 2) if i % 2 else (idx >= LAYERS // 2))
                 for i in range(layers)]
        self.couplings = nn.ModuleList([Coupling(m.float(), hidden) for m in masks])

    def log_prob(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """log p(x | c) per coordinate."""
        shift, log_scale = self.affine(c).chunk(2, 1)
        z = ((x - self.x_mean) / self.x_std - shift) * torch.exp(-log_scale)
        log_det = -log_scale.sum(1) - torch.log(self.x_std).sum()
        for layer in self.couplings:
            z, more = layer(z, c)
            log_det = log_det + more
        out: torch.Tensor = ((-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(1) + log_det) / LAYERS
        return out

    def sample(self, c: torch.Tensor) -> torch.Tensor:
        z = torch.randn(len(c), LAYERS, device=c.device)
        for layer in reversed(list(self.couplings)):
            z = cast(Coupling, layer).inverse(z, c)
        shift, log_scale = self.affine(c).chunk(2, 1)
        out: torch.Tensor = (z * torch.exp(log_scale) + shift) * self.x_std + self.x_mean
        return out


class VoxelModel(nn.Module):
    """Per layer and radial bin: p(non-zero) and a two-normal mixture of the log share of the layer."""

    q_mean: torch.Tensor
    q_std: torch.Tensor

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.register_buffer("q_mean", torch.zeros(LAYERS))
        self.register_buffer("q_std", torch.ones(LAYERS))
        self.net = nn.Sequential(nn.Linear(2 + 3 + LAYERS, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 6 * R_BINS))

    @torch.no_grad()
    def set_output_bias(self, bias: torch.Tensor) -> None:
        """Start from the training set's average layer (``fit_scales``' ``voxel_bias``)."""
        last = self.net[-1]
        if not isinstance(last, nn.Linear):
            raise TypeError("the voxel network must end in a linear layer")
        last.bias.copy_(bias)

    def _inputs(self, c: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """(B * 45, 50): c, the shower's depth, the layer's and its neighbours' standardised log energies, the
        layer one-hot. The depth (the profile's centre of gravity) stands in for the shower's T, which sets how
        wide each layer is (GFlash's tau = t / T)."""
        b = len(c)
        qs = (q - self.q_mean) / self.q_std
        weight = torch.pow(10.0, q - q.max(1, keepdim=True).values)
        depth = (weight * torch.arange(LAYERS, device=q.device)).sum(1, keepdim=True) / weight.sum(1, keepdim=True)
        depth = (depth - 10.0) / 5.0
        pad = torch.zeros(b, 1, device=q.device)
        before, after = torch.cat([pad, qs[:, :-1]], 1), torch.cat([qs[:, 1:], pad], 1)
        onehot = torch.eye(LAYERS, device=q.device).expand(b, LAYERS, LAYERS)
        rows = torch.cat([c[:, None, :].expand(b, LAYERS, 1), depth[:, None, :].expand(b, LAYERS, 1), qs[..., None],
                          before[..., None], after[..., None], onehot], 2)
        return rows.reshape(b * LAYERS, -1)

    def _params(self, c: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(self._inputs(c, q)).reshape(-1, R_BINS, 6)
        logit_p, logit_w, mu, log_sig = out[..., 0], out[..., 1], out[..., 2:4], out[..., 4:6].clamp(-5, 3)
        return logit_p, logit_w, mu, log_sig

    def nll(self, c: torch.Tensor, q: torch.Tensor, shares: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per voxel of non-empty layers; ``shares`` (B, 45, 16, 9)."""
        logit_p, logit_w, mu, log_sig = self._params(c, q)
        y = shares.reshape(-1, ALPHA_BINS, R_BINS)
        hit = y > 0
        log_y = torch.log(torch.where(hit, y, torch.ones_like(y)))[..., None]  # (rows, 16, 9, 1)
        log_w = torch.stack([nn.functional.logsigmoid(logit_w), nn.functional.logsigmoid(-logit_w)], -1)[:, None]
        comp = (log_w - 0.5 * ((log_y - mu[:, None]) / log_sig.exp()[:, None]) ** 2 - log_sig[:, None]
                - 0.5 * math.log(2 * math.pi))
        on = nn.functional.logsigmoid(logit_p)[:, None] + torch.logsumexp(comp, -1)
        off = nn.functional.logsigmoid(-logit_p)[:, None].expand_as(on)
        per_voxel = -torch.where(hit, on, off)
        weight = filled.reshape(-1, 1, 1).to(per_voxel.dtype).expand_as(per_voxel)
        return (per_voxel * weight).sum() / weight.sum().clamp_min(1.0)

    def sample(self, c: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Unnormalised voxel shares (B, 45, 16, 9)."""
        logit_p, logit_w, mu, log_sig = self._params(c, q)
        shape = (len(logit_p), ALPHA_BINS, R_BINS)
        hit = torch.rand(shape, device=c.device) < torch.sigmoid(logit_p)[:, None]
        first = torch.rand(shape, device=c.device) < torch.sigmoid(logit_w)[:, None]
        pick = torch.where(first, 0, 1)[..., None]
        m = torch.gather(mu[:, None].expand(*shape, 2), -1, pick)[..., 0]
        s = torch.gather(log_sig[:, None].expand(*shape, 2), -1, pick)[..., 0].exp()
        y = torch.exp((m + s * torch.randn(shape, device=c.device)).clamp_max(0.0)) * hit  # a share is <= 1
        return y.reshape(len(c), LAYERS, ALPHA_BINS, R_BINS)


class Surrogate(nn.Module):
    """The whole generator: ``loss`` on simulated showers, ``generate`` for incident energies."""

    def __init__(self, hidden: int = 128, layers: int = 8, voxel_hidden: int = 128) -> None:
        super().__init__()
        self.flow = LayerFlow(hidden, layers)
        self.voxels = VoxelModel(voxel_hidden)

    def loss(self, e_inc: torch.Tensor, showers: torch.Tensor) -> torch.Tensor:
        e_inc, showers = e_inc.reshape(-1), showers.reshape(len(e_inc.reshape(-1)), LAYERS, ALPHA_BINS, R_BINS)
        e_layer = showers.sum((2, 3))
        x, q = encode_layers(e_inc, e_layer, torch.rand_like(e_layer))
        c = condition(e_inc)
        filled = e_layer > 0
        shares = showers / torch.where(filled, e_layer, torch.ones_like(e_layer))[..., None, None]
        return -self.flow.log_prob(x, c).mean() + self.voxels.nll(c, q, shares, filled)

    @torch.no_grad()
    def layer_energies(self, e_inc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return decode_layers(e_inc, self.flow.sample(condition(e_inc)))

    @torch.no_grad()
    def generate(self, e_inc: torch.Tensor) -> torch.Tensor:
        """Showers (B, 6480), MeV, for incident energies ``e_inc`` (B,), MeV."""
        e_layer, q = self.layer_energies(e_inc)
        y = self.voxels.sample(condition(e_inc), q)
        total = y.sum((2, 3))
        empty = (total <= 0) & (e_layer > 0)  # a layer with energy but no voxel drawn: its energy in the core
        if bool(empty.any()):
            y[..., 0, 0] = torch.where(empty, torch.ones_like(total), y[..., 0, 0])
            total = y.sum((2, 3))
        v = y / total.clamp_min(1e-30)[..., None, None] * e_layer[..., None, None]
        v = torch.where(v >= THRESHOLD_MEV, v, torch.zeros_like(v))  # the readout cut, then the layer's energy again
        kept = v.sum((2, 3))
        v = v * torch.where(kept > 0, e_layer / kept.clamp_min(1e-30), torch.ones_like(kept))[..., None, None]
        return v.reshape(len(e_inc), -1)


def fit_scales(e_inc: torch.Tensor, showers: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """Means and spreads of the flow's coordinates and of the layers' log energies over a training set (one
    fixed dequantisation draw), for the buffers ``x_mean``, ``x_std``, ``q_mean``, ``q_std``."""
    voxels = showers.reshape(len(showers), LAYERS, ALPHA_BINS, R_BINS).double()
    e_layer = voxels.sum((2, 3))
    noise = torch.rand(e_layer.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x, q = encode_layers(e_inc.double(), e_layer, noise)
    return {"x_mean": x.mean(0).float(), "x_std": x.std(0).clamp_min(1e-3).float(),
            "q_mean": q.mean(0).float(), "q_std": q.std(0).clamp_min(1e-3).float(),
            "voxel_bias": _voxel_bias(voxels, e_layer)}


def _voxel_bias(voxels: torch.Tensor, e_layer: torch.Tensor) -> torch.Tensor:
    """The voxel network's output bias for the training set's mean hit rate and log share per radial bin:
    training starts from the average layer and spends its steps on what changes from shower to shower."""
    filled = e_layer > 0
    shares = (voxels / torch.where(filled, e_layer, torch.ones_like(e_layer))[..., None, None])[filled]
    hit = shares > 0
    rate = hit.double().mean((0, 1)).clamp(1e-4, 1 - 1e-4)
    logs = torch.where(hit, torch.log(torch.where(hit, shares, torch.ones_like(shares))), torch.zeros_like(shares))
    count = hit.sum((0, 1)).clamp_min(1)
    mean = logs.sum((0, 1)) / count
    std = torch.sqrt(((logs - mean) ** 2 * hit).sum((0, 1)) / count).clamp_min(0.1)
    bias = torch.stack([torch.logit(rate), torch.zeros_like(rate), mean - 0.5 * std, mean + 0.5 * std,
                        torch.log(std), torch.log(std)], 1)
    return bias.reshape(-1).float()
