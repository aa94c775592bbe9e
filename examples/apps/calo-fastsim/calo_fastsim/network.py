"""The surrogate's networks (PyTorch), all conditioned on log E_inc: a masked autoregressive network for the layer
energies and hit counts, a second one for the layers' radial spreads given them, and a conditional zero-inflated
model for the voxels within each layer.

The first MADE (masked autoencoder for distribution estimation) models the 90 coordinates of ``coding``: the 45
of the layer energies, then the layers' hit counts; the second the 45 layers' spreads, given log E_inc and those
90, so that a shower's layers are wide or narrow together as the simulator's are. Each coordinate is a mixture of
normals whose parameters come from the context and the coordinates before it.
A layer's voxels (16 alpha x 9 radial bins, as shares of the layer's energy) are drawn given the layer: a network
of log E_inc, the shower's depth, the layer, its hit count and spread and its and its neighbours' log energies
gives each radial bin a probability of a hit and a mixture of normals for the log share of a hit; exactly the drawn
count of voxels is hit (picked by their odds without replacement), each gets the readout cut plus its share of
the rest of the layer's energy, the shares tilted so that the layer's spread is the drawn one. The bins of one
radius share the parameters (the showers enter at normal incidence). This module imports torch; ``surrogate``
imports it only when a model is built.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from calo_fastsim.coding import (
    DIMS,
    EMPTY_MEV,
    condition,
    decode_hits,
    decode_layers,
    drawn_empty,
    encode_hits,
    encode_layers,
    encode_widths,
    pick_tilt,
    radial_moment,
    spread_to_width,
)
from calo_fastsim.geometry import ALPHA_BINS, LAYERS, R_BINS

__all__ = [
    "EMPTY_MEV",
    "Surrogate",
    "condition",
    "decode_hits",
    "decode_layers",
    "encode_hits",
    "encode_layers",
    "encode_widths",
    "fit_scales",
    "radial_moment",
    "spread_to_width",
]

VOXEL_COMPONENTS = 2  # normals in the mixture of a voxel's log share


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (MADE's autoregressive wiring)."""

    mask: torch.Tensor

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class LayerFlow(nn.Module):
    """p(x | c) as a masked autoregressive network (MADE): each coordinate's density, a mixture of ``components``
    normals on the standardised coordinate, is computed from c and the coordinates before it (the total, then
    the layers from the front), all in one pass for the likelihood and one pass a coordinate when drawing. c has
    ``context`` columns: log E_inc for the layers, and the layers' standardised coordinates too for the spreads."""

    x_mean: torch.Tensor
    x_std: torch.Tensor

    def __init__(self, hidden: int, layers: int, components: int = 4, dims: int = DIMS, context: int = 1) -> None:
        super().__init__()
        self.register_buffer("x_mean", torch.zeros(dims))
        self.register_buffer("x_std", torch.ones(dims))
        self.components, self.dims = components, dims
        degree_in = torch.arange(1, dims + 1)
        # unit k sees coordinates 1..degree; an eighth see c alone, for E_tot/E_inc, the first coordinate
        alone = hidden // 8
        degree_hidden = torch.cat([torch.zeros(alone, dtype=torch.long), torch.arange(hidden - alone) % (dims - 1) + 1])
        self.inputs = MaskedLinear(degree_hidden[:, None] >= degree_in[None, :])
        self.context = nn.Linear(context, hidden)
        self.hidden = nn.ModuleList(
            [MaskedLinear(degree_hidden[:, None] >= degree_hidden[None, :]) for _ in range(max(layers - 1, 0))]
        )
        degree_out = degree_in.repeat_interleave(3 * components)  # coordinate d's outputs see only 1..d-1
        self.out = MaskedLinear(degree_out[:, None] > degree_hidden[None, :])
        with torch.no_grad():
            spread = torch.linspace(-1.0, 1.0, components)
            self.out.weight.mul_(0.1)
            self.out.bias.view(dims, components, 3).copy_(
                torch.stack([torch.zeros(components), spread, torch.full((components,), -0.5)], 1)
            )

    def _features(self, xs: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = nn.functional.silu(self.inputs(xs) + self.context(c))
        for layer in self.hidden:
            h = h + nn.functional.silu(layer(h))
        return h

    def _params(self, xs: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.out(self._features(xs, c)).reshape(len(c), self.dims, self.components, 3)
        return out[..., 0], out[..., 1], out[..., 2].clamp(-7.0, 3.0)

    def log_prob(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """log p(x | c) per coordinate."""
        xs = (x - self.x_mean) / self.x_std
        logit_w, mu, log_sig = self._params(xs, c)
        z = (xs[..., None] - mu) * torch.exp(-log_sig)
        comp = torch.log_softmax(logit_w, -1) - 0.5 * z**2 - log_sig - 0.5 * math.log(2 * math.pi)
        out: torch.Tensor = (torch.logsumexp(comp, -1).sum(1) - torch.log(self.x_std).sum()) / self.dims
        return out

    def sample(self, c: torch.Tensor) -> torch.Tensor:
        xs = torch.zeros(len(c), self.dims, device=c.device)
        weight = (self.out.weight * self.out.mask).reshape(self.dims, 3 * self.components, -1)
        bias = self.out.bias.reshape(self.dims, 3 * self.components)
        for d in range(self.dims):  # only coordinate d's outputs of the last layer
            raw = nn.functional.linear(self._features(xs, c), weight[d], bias[d]).reshape(len(c), self.components, 3)
            logit_w, mu, log_sig = raw[..., 0], raw[..., 1], raw[..., 2].clamp(-7.0, 3.0)
            pick = torch.multinomial(torch.softmax(logit_w, -1), 1)
            m, s = mu.gather(1, pick)[:, 0], log_sig.gather(1, pick)[:, 0].exp()
            xs[:, d] = m + s * torch.randn(len(c), device=c.device)
        out: torch.Tensor = xs * self.x_std + self.x_mean
        return out


class VoxelModel(nn.Module):
    """Per layer and radial bin: p(non-zero) and a mixture of normals for the log share of the layer."""

    q_mean: torch.Tensor
    q_std: torch.Tensor

    def __init__(self, hidden: int, components: int = VOXEL_COMPONENTS) -> None:
        super().__init__()
        self.register_buffer("q_mean", torch.zeros(LAYERS))
        self.register_buffer("q_std", torch.ones(LAYERS))
        self.components = components
        self.net = nn.Sequential(
            nn.Linear(4 + 3 + LAYERS, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, (1 + 3 * components) * R_BINS),
        )

    @torch.no_grad()
    def set_output_bias(self, stats: torch.Tensor) -> None:
        """Start from the training set's average layer (``fit_scales``' ``voxel_bias``: per radial bin the logit
        hit rate, the mean and the spread of the log share), the mixture's normals spread around the mean."""
        last = self.net[-1]
        if not isinstance(last, nn.Linear):
            raise TypeError("the voxel network must end in a linear layer")
        k = self.components
        logit_rate, mean, std = stats[:, :1], stats[:, 1:2], stats[:, 2:3]
        spread = torch.linspace(-0.5, 0.5, k) if k > 1 else torch.zeros(1)
        bias = torch.cat([logit_rate, torch.zeros(R_BINS, k), mean + std * spread, torch.log(std).expand(-1, k)], 1)
        last.bias.copy_(bias.reshape(-1))

    def _inputs(self, c: torch.Tensor, q: torch.Tensor, hits: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        """(B * 45, 52): c, the shower's depth, the layer's hit count and standardised spread ``ws``, the layer's
        and its neighbours' standardised log energies, the layer one-hot. The depth (the profile's centre of
        gravity) stands in for the shower's T, which sets how wide each layer is (GFlash's tau = t / T)."""
        b = len(c)
        qs = (q - self.q_mean) / self.q_std
        weight = torch.pow(10.0, q - q.max(1, keepdim=True).values)
        depth = (weight * torch.arange(LAYERS, device=q.device)).sum(1, keepdim=True) / weight.sum(1, keepdim=True)
        depth = (depth - 10.0) / 5.0
        pad = torch.zeros(b, 1, device=q.device)
        before, after = torch.cat([pad, qs[:, :-1]], 1), torch.cat([qs[:, 1:], pad], 1)
        onehot = torch.eye(LAYERS, device=q.device).expand(b, LAYERS, LAYERS)
        count = (torch.log1p(hits) - 2.0) / 1.5
        rows = torch.cat(
            [
                c[:, None, :].expand(b, LAYERS, 1),
                depth[:, None, :].expand(b, LAYERS, 1),
                count[..., None],
                ws[..., None],
                qs[..., None],
                before[..., None],
                after[..., None],
                onehot,
            ],
            2,
        )
        return rows.reshape(b * LAYERS, -1)

    def _params(
        self, c: torch.Tensor, q: torch.Tensor, hits: torch.Tensor, ws: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        k = self.components
        out = self.net(self._inputs(c, q, hits, ws)).reshape(-1, R_BINS, 1 + 3 * k)
        logit_p, logit_w, mu = out[..., 0], out[..., 1 : 1 + k], out[..., 1 + k : 1 + 2 * k]
        return logit_p, logit_w, mu, out[..., 1 + 2 * k :].clamp(-5, 3)

    def nll(
        self,
        c: torch.Tensor,
        q: torch.Tensor,
        hits: torch.Tensor,
        ws: torch.Tensor,
        shares: torch.Tensor,
        filled: torch.Tensor,
    ) -> torch.Tensor:
        """Mean negative log-likelihood per voxel of non-empty layers; ``shares`` (B, 45, 16, 9)."""
        logit_p, logit_w, mu, log_sig = self._params(c, q, hits, ws)
        y = shares.reshape(-1, ALPHA_BINS, R_BINS)
        hit = y > 0
        log_y = torch.log(torch.where(hit, y, torch.ones_like(y)))[..., None]  # (rows, 16, 9, 1)
        log_w = torch.log_softmax(logit_w, -1)[:, None]
        comp = (
            log_w
            - 0.5 * ((log_y - mu[:, None]) / log_sig.exp()[:, None]) ** 2
            - log_sig[:, None]
            - 0.5 * math.log(2 * math.pi)
        )
        on = nn.functional.logsigmoid(logit_p)[:, None] + torch.logsumexp(comp, -1)
        off = nn.functional.logsigmoid(-logit_p)[:, None].expand_as(on)
        per_voxel = -torch.where(hit, on, off)
        weight = filled.reshape(-1, 1, 1).to(per_voxel.dtype).expand_as(per_voxel)
        return (per_voxel * weight).sum() / weight.sum().clamp_min(1.0)

    def sample(
        self, c: torch.Tensor, q: torch.Tensor, hits: torch.Tensor, ws: torch.Tensor, w: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Unnormalised voxel shares (B, 45, 16, 9), exactly ``hits`` of each layer non-zero: the voxels are
        picked without replacement by their odds (the Gumbel top-k trick), their shares from the mixture. Given
        the layers' drawn spreads ``w`` (as ``encode_widths``), a sparse layer's picks are tilted to reach it
        (``coding.pick_tilt``)."""
        logit_p, logit_w, mu, log_sig = self._params(c, q, hits, ws)
        shape = (len(logit_p), ALPHA_BINS, R_BINS)
        pick_logit = logit_p if w is None else logit_p + pick_tilt(logit_p, hits, w)
        gumbel = -torch.log(-torch.log(torch.rand(shape, device=c.device).clamp(1e-12, 1 - 1e-7)))
        keys = (pick_logit[:, None] + gumbel).reshape(len(logit_p), -1)
        k = hits.reshape(-1, 1).long()
        kth = keys.sort(1, descending=True).values.gather(1, (k - 1).clamp_min(0))
        hit = ((keys >= kth) & (k > 0)).reshape(shape)
        gumbel_w = -torch.log(-torch.log(torch.rand((*shape, self.components), device=c.device).clamp(1e-12, 1 - 1e-7)))
        pick = (logit_w[:, None] + gumbel_w).argmax(-1, keepdim=True)
        m = torch.gather(mu[:, None].expand(*shape, self.components), -1, pick)[..., 0]
        s = torch.gather(log_sig[:, None].expand(*shape, self.components), -1, pick)[..., 0].exp()
        y = torch.exp((m + s * torch.randn(shape, device=c.device)).clamp(-60.0, 0.0)) * hit  # a share is <= 1
        return y.reshape(len(c), LAYERS, ALPHA_BINS, R_BINS)


class Surrogate(nn.Module):
    """The whole generator: ``loss`` on simulated showers, ``generate`` for incident energies."""

    def __init__(
        self,
        hidden: int = 256,
        layers: int = 2,
        voxel_hidden: int = 128,
        components: int = 4,
        voxel_components: int = VOXEL_COMPONENTS,
        width_hidden: int = 128,
    ) -> None:
        super().__init__()
        self.flow = LayerFlow(hidden, layers, components)
        self.widths = LayerFlow(width_hidden, layers, components, dims=LAYERS, context=1 + DIMS)
        self.voxels = VoxelModel(voxel_hidden, voxel_components)

    @torch.no_grad()
    def set_scales(self, fitted: dict[str, torch.Tensor]) -> None:
        """Copy ``fit_scales``' answer into the buffers and the voxel network's output bias."""
        self.flow.x_mean.copy_(fitted["x_mean"])
        self.flow.x_std.copy_(fitted["x_std"])
        self.widths.x_mean.copy_(fitted["w_mean"])
        self.widths.x_std.copy_(fitted["w_std"])
        self.voxels.q_mean.copy_(fitted["q_mean"])
        self.voxels.q_std.copy_(fitted["q_std"])
        self.voxels.set_output_bias(fitted["voxel_bias"])

    def _width_context(self, c: torch.Tensor, coded: torch.Tensor) -> torch.Tensor:
        """log E_inc and the layers' standardised coordinates: what a shower's spreads are drawn given."""
        return torch.cat([c, (coded - self.flow.x_mean) / self.flow.x_std], 1)

    def loss(self, e_inc: torch.Tensor, showers: torch.Tensor) -> torch.Tensor:
        e_inc, showers = e_inc.reshape(-1), showers.reshape(len(e_inc.reshape(-1)), LAYERS, ALPHA_BINS, R_BINS)
        e_layer = showers.sum((2, 3))
        hits = (showers > 0).sum((2, 3)).to(e_layer.dtype)
        x, q = encode_layers(e_inc, e_layer, torch.rand_like(e_layer))
        w = encode_widths(showers, e_layer, torch.randn_like(e_layer))
        c = condition(e_inc)
        filled = e_layer > 0
        shares = showers / torch.where(filled, e_layer, torch.ones_like(e_layer))[..., None, None]
        coded = torch.cat([x, encode_hits(hits, torch.rand_like(hits))], 1)
        voxels = self.voxels.nll(c, q, hits, self._standard_widths(w), shares, filled)
        spreads = self.widths.log_prob(w, self._width_context(c, coded)).mean()
        return -self.flow.log_prob(coded, c).mean() - spreads + voxels

    def _standard_widths(self, w: torch.Tensor) -> torch.Tensor:
        return (w - self.widths.x_mean) / self.widths.x_std

    @torch.no_grad()
    def draw_layers(self, e_inc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(E_layer, q as ``encode_layers``, hit counts, spreads as ``encode_widths``) for incident energies
        ``e_inc`` (B,), MeV."""
        c = condition(e_inc)
        coded = self.flow.sample(c)
        e_layer, q = decode_layers(e_inc, coded[:, :LAYERS], drawn_empty(coded[:, LAYERS:]))
        w = self.widths.sample(self._width_context(c, coded))
        return e_layer, q, decode_hits(coded[:, LAYERS:], e_layer), w

    @torch.no_grad()
    def layer_energies(self, e_inc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e_layer, q, _, _ = self.draw_layers(e_inc)
        return e_layer, q

    @torch.no_grad()
    def voxels_given(
        self, e_inc: torch.Tensor, e_layer: torch.Tensor, q: torch.Tensor, hits: torch.Tensor, w: torch.Tensor
    ) -> torch.Tensor:
        """Showers (B, 45, 16, 9), MeV, with the given layer energies, hit counts and spreads (where the hits
        can reach them)."""
        y = self.voxels.sample(condition(e_inc), q, hits, self._standard_widths(w), w)
        return spread_to_width(y, e_layer, w)

    @torch.no_grad()
    def generate(self, e_inc: torch.Tensor) -> torch.Tensor:
        """Showers (B, 6480), MeV, for incident energies ``e_inc`` (B,), MeV: each hit voxel gets the readout
        cut plus its drawn share of the rest of the layer's energy, so hits, energies and spreads are as drawn."""
        e_layer, q, hits, w = self.draw_layers(e_inc)
        return self.voxels_given(e_inc, e_layer, q, hits, w).reshape(len(e_inc), -1)


def fit_scales(e_inc: torch.Tensor, showers: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """Means and spreads of the flow's coordinates and of the layers' log energies over a training set (one
    fixed dequantisation draw), for ``Surrogate.set_scales``."""
    voxels = showers.reshape(len(showers), LAYERS, ALPHA_BINS, R_BINS).double()
    e_layer = voxels.sum((2, 3))
    hits = (voxels > 0).sum((2, 3)).double()
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand((2, *e_layer.shape), generator=generator, dtype=torch.float64)
    normal = torch.randn(e_layer.shape, generator=generator, dtype=torch.float64)
    x, q = encode_layers(e_inc.double(), e_layer, noise[0])
    x = torch.cat([x, encode_hits(hits, noise[1])], 1)
    w = encode_widths(voxels, e_layer, normal)
    return {
        "x_mean": x.mean(0).float(),
        "x_std": x.std(0).clamp_min(1e-3).float(),
        "w_mean": w.mean(0).float(),
        "w_std": w.std(0).clamp_min(1e-3).float(),
        "q_mean": q.mean(0).float(),
        "q_std": q.std(0).clamp_min(1e-3).float(),
        "voxel_bias": _voxel_bias(voxels, e_layer),
    }


def _voxel_bias(voxels: torch.Tensor, e_layer: torch.Tensor) -> torch.Tensor:
    """Per radial bin, the training set's logit hit rate and the mean and spread of the log share of a hit
    (R_BINS, 3): the voxel network starts from the average layer and spends its steps on what changes from shower
    to shower."""
    filled = e_layer > 0
    shares = (voxels / torch.where(filled, e_layer, torch.ones_like(e_layer))[..., None, None])[filled]
    hit = shares > 0
    rate = hit.double().mean((0, 1)).clamp(1e-4, 1 - 1e-4)
    logs = torch.where(hit, torch.log(torch.where(hit, shares, torch.ones_like(shares))), torch.zeros_like(shares))
    count = hit.sum((0, 1)).clamp_min(1)
    mean = logs.sum((0, 1)) / count
    std = torch.sqrt(((logs - mean) ** 2 * hit).sum((0, 1)) / count).clamp_min(0.1)
    return torch.stack([torch.logit(rate), mean, std], 1).float()
