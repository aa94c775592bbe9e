"""How the surrogate codes a shower's layers as continuous coordinates, and back.

Layer energies as in CaloFlow: x_0 = ln(E_tot/E_inc) and, for the first 44 layers, the logit of the layer's share
of what is left from it on, E_i / sum_{j>=i} E_j; so E_tot is one coordinate the model learns directly, and the
layers always add up to it. An empty layer is dequantised to 1-2 times ``EMPTY_MEV``, three decades under the
readout cut, so empty and hit layers stay apart (and one drawn below the cut is emptied). A layer's count of voxels
above the cut is ln(n + 1 + u). A layer's radial spread is the log of its energy-weighted mean r^2 about the axis
(``radial_moment``); ``spread_to_width`` gives drawn voxel shares that spread, tilting them by exp(lambda r^2).
"""

from __future__ import annotations

import math

import torch

from calo_fastsim.geometry import ALPHA_BINS, LAYERS, R_BINS, R_EDGES_MM
from calo_fastsim.simulator import THRESHOLD_MEV

__all__ = [
    "DIMS",
    "EMPTY_MEV",
    "condition",
    "decode_hits",
    "decode_layers",
    "drawn_empty",
    "encode_hits",
    "encode_layers",
    "encode_widths",
    "pick_tilt",
    "radial_moment",
    "spread_to_width",
]

LOG_E_MID, LOG_E_HALF = 4.5, 1.5  # log10 of 1 GeV-1 TeV in MeV, mapped onto [-1, 1]
EPS = 1e-6
VOXELS_PER_LAYER = ALPHA_BINS * R_BINS
DIMS = 2 * LAYERS  # the flow's coordinates: 45 for the layer energies, then each layer's hit count
R2_MM2 = (0.25 * (R_EDGES_MM[:-1] + R_EDGES_MM[1:]) ** 2).tolist()  # each radial bin's mid-radius^2
WIDTH_NOISE = 0.02  # dequantises the spread of a layer with few hits (one hit: one of nine values)
TILT = 2000.0  # the bisection's bound on lambda, r^2 in units of the outermost bin's
EMPTY_MEV = 1e-3 * THRESHOLD_MEV  # an empty layer is coded as 1-2 times this: far below any layer with a hit
SPARSE_HITS = 8  # a layer with at most this many hits has them picked given its drawn spread (``pick_tilt``)
NEAR_CUT = 4.0  # a layer drawn under this many times the cut is emptied when its drawn hit count is 0


def condition(e_inc: torch.Tensor) -> torch.Tensor:
    """log10(E_inc/MeV) mapped to [-1, 1], shape (B, 1)."""
    return ((torch.log10(e_inc) - LOG_E_MID) / LOG_E_HALF).reshape(-1, 1)


def encode_layers(e_inc: torch.Tensor, e_layer: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, q): the flow's coordinates and log10(E_layer / E_inc), empty layers dequantised with ``noise``."""
    e = torch.where(e_layer > 0, e_layer, EMPTY_MEV * (1 + noise))
    left = torch.flip(torch.cumsum(torch.flip(e, [1]), 1), [1])
    share = (e[:, :-1] / left[:, :-1]).clamp(1e-12, 1 - EPS)  # an empty layer under a 1 TeV shower: ~1e-9
    x = torch.cat([torch.log(left[:, :1] / e_inc[:, None]), torch.log(share) - torch.log1p(-share)], 1)
    return x, torch.log10(e / e_inc[:, None])


def decode_layers(
    e_inc: torch.Tensor, x: torch.Tensor, empty: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(E_layer with layers below the cut emptied and the rest scaled to E_tot, q as ``encode_layers``). Layers
    where ``empty`` (B, 45) is true are emptied too (their drawn hit count is 0: ``drawn_empty``), unless that
    would empty the whole shower."""
    total = e_inc[:, None] * torch.exp(x[:, :1])
    share = torch.sigmoid(x[:, 1:])
    kept = torch.cumprod(torch.cat([torch.ones_like(total), 1 - share], 1), 1)  # share of E_tot left at layer i
    e = total * kept * torch.cat([share, torch.ones_like(total)], 1)
    q = torch.log10(e.clamp_min(1e-30) / e_inc[:, None])
    keep = e >= THRESHOLD_MEV
    if empty is not None:
        drop = empty & (e < NEAR_CUT * THRESHOLD_MEV)
        keep = torch.where((keep & ~drop).any(1, keepdim=True), keep & ~drop, keep)
    cut = torch.where(keep, e, torch.zeros_like(e))
    scale = total / cut.sum(1, keepdim=True).clamp_min(1e-30)
    return cut * scale, q


def encode_hits(hits: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """A layer's count of voxels above the cut as a continuous coordinate: ln(n + 1 + u), u uniform in [0, 1)."""
    return torch.log(hits + 1 + noise)


def drawn_empty(h: torch.Tensor) -> torch.Tensor:
    """Where a drawn hit-count coordinate says no voxel is hit. The layer energies' mixtures leak into the gap
    between the empty layers' code and the readout cut (which no simulated layer has), and the leak above the cut
    made the deep layers filled too often (layer 44: 17 % against 11 %) with one or two hits near the axis; the
    hit count, drawn given the layer's energy, tells those apart, so ``decode_layers`` empties them."""
    return torch.floor(torch.exp(h) - 1) < 1


def decode_hits(h: torch.Tensor, e_layer: torch.Tensor) -> torch.Tensor:
    """The counts back, at least one in a layer with energy, none in an empty one, and no more than the layer's
    energy can raise above the cut."""
    n = torch.floor(torch.exp(h) - 1).clamp(0, VOXELS_PER_LAYER)
    n = torch.minimum(n.clamp_min(1), torch.floor(e_layer / THRESHOLD_MEV))
    return torch.where(e_layer > 0, n, torch.zeros_like(n))


def radial_moment(voxels: torch.Tensor, e_layer: torch.Tensor) -> torch.Tensor:
    """ln of each layer's energy-weighted mean r^2 about the axis (mm^2, voxels at their bin's mid-radius), ln of
    the innermost bin's for an empty layer; ``voxels`` (..., 45, 16, 9), ``e_layer`` (..., 45)."""
    r2 = torch.tensor(R2_MM2, dtype=voxels.dtype, device=voxels.device)
    mean = (voxels.sum(-2) * r2).sum(-1) / torch.where(e_layer > 0, e_layer, torch.ones_like(e_layer))
    return torch.log(torch.where(e_layer > 0, mean, r2[0]))


def encode_widths(voxels: torch.Tensor, e_layer: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The layers' spreads as continuous coordinates: ``radial_moment`` plus ``WIDTH_NOISE`` times ``noise``
    (standard normal), so that the few values of a layer with one or two hits are not spikes."""
    return radial_moment(voxels, e_layer) + WIDTH_NOISE * noise


def spread_to_width(y: torch.Tensor, e_layer: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Voxel energies from unnormalised shares ``y`` (..., 16, 9; a voxel is hit where y > 0): each hit voxel
    gets the readout cut plus its share of the rest of the layer's energy ``e_layer``, the shares tilted by
    exp(lambda r^2) with lambda set by bisection so that ``radial_moment`` is ``w`` (or, where these hits cannot
    reach it, as near as they can). The layer's energy and hits are kept exactly."""
    shape, dtype = y.shape, y.dtype
    y, e, w = y.double().reshape(-1, ALPHA_BINS * R_BINS), e_layer.double().reshape(-1), w.double().reshape(-1)
    r2 = torch.tensor(R2_MM2, dtype=torch.float64, device=y.device).repeat(ALPHA_BINS)
    u = r2 / r2.max()
    hit = y > 0
    n = hit.sum(1)
    rest = (e - n * THRESHOLD_MEV).clamp_min(0.0)
    # the mean u the shares of the rest must have for the layer's mean r^2 to be exp(w)
    target = (e * torch.exp(w) - THRESHOLD_MEV * (hit * r2).sum(1)) / (rest * r2.max()).clamp_min(1e-30)
    log_y = torch.where(hit, torch.log(torch.where(hit, y, torch.ones_like(y))), torch.full_like(y, -math.inf))
    log_y = torch.where((n > 0)[:, None], log_y, torch.zeros_like(y))  # an empty layer: any finite weights
    log_ring = torch.logsumexp(log_y.reshape(-1, ALPHA_BINS, R_BINS), 1)  # the tilt sees the radial bins' sums
    lo, hi = torch.full_like(e, -TILT), torch.full_like(e, TILT)
    for _ in range(36):  # lambda to 6e-8
        mid = 0.5 * (lo + hi)
        mean = (torch.softmax(log_ring + mid[:, None] * u[:R_BINS], 1) * u[:R_BINS]).sum(1)
        low = mean < target
        lo, hi = torch.where(low, mid, lo), torch.where(low, hi, mid)
    shares = torch.softmax(log_y + (0.5 * (lo + hi))[:, None] * u, 1)
    v = hit * THRESHOLD_MEV + shares * rest[:, None] * hit
    return v.reshape(shape).to(dtype)


def pick_tilt(logit_p: torch.Tensor, hits: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """What to add to each radial bin's hit logits ``logit_p`` (rows, 9) so that a sparse layer's hits are picked
    where its drawn spread ``w`` (rows,) can be reached: the few hits of a deep layer fix its spread (the tilt of
    the shares cannot move one hit), so they are picked given it. One hit: the radial bin whose mid-radius^2 is
    nearest exp(w) (any angle). Two to ``SPARSE_HITS``: the bins' odds tilted by exp(lambda r^2), lambda by
    bisection so that the picks' expected mean r^2 is exp(w). More hits: no tilt (the shares' tilt reaches it)."""
    r2 = torch.tensor(R2_MM2, dtype=logit_p.dtype, device=logit_p.device)
    u = r2 / r2.max()
    target = (torch.exp(w) / r2.max()).reshape(-1)
    n = hits.reshape(-1)
    lo, hi = torch.full_like(target, -TILT / 40), torch.full_like(target, TILT / 40)
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        mean = (torch.softmax(logit_p + mid[:, None] * u, 1) * u).sum(1)
        low = mean < target
        lo, hi = torch.where(low, mid, lo), torch.where(low, hi, mid)
    tilt = (0.5 * (lo + hi))[:, None] * u
    nearest = (torch.log(r2)[None, :] - w.reshape(-1, 1)).abs().argmin(1, keepdim=True)
    one = torch.full_like(logit_p, -1e4).scatter(1, nearest, 0.0) - logit_p  # the nearest bin's voxels alone
    sparse = ((n >= 2) & (n <= SPARSE_HITS))[:, None]
    return torch.where((n == 1)[:, None], one, torch.where(sparse, tilt, torch.zeros_like(tilt)))
