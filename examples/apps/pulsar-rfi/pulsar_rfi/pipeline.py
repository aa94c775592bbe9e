"""What the twin does to each chunk of the stream: normalise the bandpass, describe every cell for the
flagger, flag, dedisperse the cells kept, search the chunk for single pulses, name its class, and add it to
the folded profile. Each chunk arrives with ``OVERLAP`` samples of the next, so the lowest channel's
delayed pulse is in hand (overlap-save dedispersion); flags and results cover its first ``CHUNK`` samples.
numpy only: the flagger is handed in as a function of the cells' features."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["CHUNK", "CLASSES", "NBINS", "OVERLAP", "ChunkResult", "cell_features", "process_chunk",
           "profile_snr", "remember", "steady", "swinging", "track"]

CHUNK = 256  # samples judged per chunk
OVERLAP = 64  # samples of the next chunk each carries: the largest delay plus the widest boxcar
WIDTHS = (1, 2, 4, 8)  # boxcars of the single-pulse search, samples
NBINS = 256  # phase bins of the folded profile
CLASSES = ("noise", "pulse", "narrowband", "broadband", "mixed")
FEATURES = 12
MEMORY = 1 / 16  # weight of the newest chunk in a channel's memory of being flagged whole
HOLD = 0.25  # a channel whose memory reaches this is flagged whole in the next chunk too
SWING = 0.2  # noise sigma: a held channel's level must swing by this much from chunk to chunk (its spread)
FAINT = 1.0  # noise sigma: a channel steadier than SWING under this level is the receiver's, not flagged whole
SETTLED = 0.5  # the weight of the chunks followed before a channel can be called steady (11 chunks)

Flagger = Callable[[np.ndarray], np.ndarray]  # features (cell, feature) -> probability of interference


def _running_median(values: np.ndarray, half: int = 4) -> np.ndarray:
    padded = np.pad(values, half, mode="edge")
    return np.asarray(np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1))


def normalise(block: np.ndarray) -> np.ndarray:
    """Cells in noise sigma against a bandpass smooth across channels (a transmitter's channel stands out
    from its neighbours instead of being normalised away)."""
    median = np.median(block, axis=1)
    spread = 1.4826 * np.median(np.abs(block - median[:, None]), axis=1)
    level, scale = _running_median(median), np.maximum(_running_median(spread), 1e-6)
    return np.asarray((block - level[:, None]) / scale[:, None])


def _box(values: np.ndarray, width: int, axis: int) -> np.ndarray:
    """Centred running sum over ``width`` along ``axis`` divided by sqrt(width): unit variance for noise."""
    pad = [(0, 0)] * values.ndim
    pad[axis] = (width // 2, width - 1 - width // 2)
    summed = np.cumsum(np.pad(values, pad), axis=axis)
    summed = np.concatenate([np.take(summed, [width - 1], axis=axis),
                             np.take(summed, np.arange(width, summed.shape[axis]), axis=axis)
                             - np.take(summed, np.arange(0, summed.shape[axis] - width), axis=axis)], axis=axis)
    return np.asarray(summed / np.sqrt(width))


def _squash(values: np.ndarray) -> np.ndarray:
    return np.asarray(np.sign(values) * np.log1p(np.abs(values)))


def cell_features(z: np.ndarray) -> np.ndarray:
    """(cell, FEATURES) of a normalised block: the cell; its channel over 8, 32 and 128 samples; the band at
    its sample over 1 and 4 samples; 8 channels at its sample; boxes of 3 channels by 8 samples and 5 by 16 (a
    drifting carrier); its channel's level and spread and its sample's spread over the block. Narrowband
    interference shows along time, broadband across the band, and weak interference only when summed."""
    nchan, nsamp = z.shape
    clipped = np.clip(z, -50, 50)
    band = clipped.mean(axis=0, keepdims=True) * np.sqrt(nchan)
    channel_level = np.median(clipped, axis=1, keepdims=True) * np.sqrt(nsamp) / 1.25
    channel_spread = np.log(np.maximum(clipped.std(axis=1, keepdims=True), 1e-3)) * np.sqrt(nsamp / 2)
    sample_spread = np.log(np.maximum(clipped.std(axis=0, keepdims=True), 1e-3)) * np.sqrt(nchan / 2)
    columns = [clipped, _box(clipped, 8, 1), _box(clipped, 32, 1), np.broadcast_to(band, z.shape),
               np.broadcast_to(_box(band, 4, 1), z.shape), _box(_box(clipped, 8, 1), 3, 0),
               np.broadcast_to(channel_level, z.shape), np.broadcast_to(channel_spread, z.shape),
               np.broadcast_to(sample_spread, z.shape), _box(clipped, 128, 1), _box(clipped, 8, 0),
               _box(_box(clipped, 16, 1), 5, 0)]
    return _squash(np.stack([np.asarray(c, dtype="float32").ravel() for c in columns], axis=1))


def channel_levels(z: np.ndarray) -> np.ndarray:
    """Each channel's level in a normalised block (its median, noise sigma): what ``track`` follows."""
    return np.asarray(np.median(z, axis=1))


def track(levels: np.ndarray | None, level: np.ndarray) -> np.ndarray:
    """Each channel's level followed from chunk to chunk, the newest chunk weighing ``MEMORY`` as in
    ``remember``: (3, channel) of the weight the chunks so far carry (1 - (1 - MEMORY)^chunks, the same for
    every channel), and the weighted sums of the level and of its square."""
    now = np.stack([np.ones_like(level), level, level ** 2])
    before = np.zeros_like(now) if levels is None else np.asarray(levels, dtype="float64")
    return np.asarray((1 - MEMORY) * before + MEMORY * now)


def _moments(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weight, mean level, its spread from chunk to chunk) of ``track``'s sums."""
    weight = np.maximum(levels[0], 1e-12)
    mean = levels[1] / weight
    return levels[0], mean, np.sqrt(np.maximum(levels[2] / weight - mean ** 2, 0.0))


def swinging(levels: np.ndarray) -> np.ndarray:
    """Which channels' level swings from chunk to chunk by more than ``SWING`` (a transmitter's power does; a
    receiver channel's own offset from its neighbours does not)."""
    return np.asarray(_moments(levels)[2] > SWING)


def steady(levels: np.ndarray) -> np.ndarray:
    """Which channels sit at a faint level (under ``FAINT``) that has not swung in the chunks followed so far
    (their weight at least ``SETTLED``): a receiver channel's own offset, which the bandpass's running median
    across channels leaves in, not a transmitter."""
    weight, mean, spread = _moments(levels)
    return np.asarray((weight >= SETTLED) & (spread <= SWING) & (np.abs(mean) < FAINT))


def flag(z: np.ndarray, flagger: Flagger, threshold: float = 0.5, memory: np.ndarray | None = None,
         levels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The flagger's mask of a normalised block, widened as flaggers do: a channel more than half flagged
    goes whole, unless ``levels`` say it is ``steady`` (then its flags go), and so does a channel the
    ``memory`` holds (``remember``) whose level swings. Also which channels this block itself flagged whole,
    the evidence the memory keeps."""
    mask = flagger(cell_features(z)).reshape(z.shape) > threshold
    whole = mask.mean(axis=1) > 0.5
    if levels is not None:
        quiet = whole & steady(levels)
        mask[quiet] = False
        whole &= ~quiet
    mask[whole] = True
    if memory is not None and levels is not None:
        mask[(np.asarray(memory) >= HOLD) & swinging(levels)] = True
    return mask, whole


def remember(memory: np.ndarray | None, whole: np.ndarray) -> np.ndarray:
    """Each channel's memory of being flagged whole, the newest chunk weighing ``MEMORY``: a transmitter that
    holds a channel for the whole observation swings through phases too faint to see in one chunk (0.2 sigma
    and less), and one chunk cannot tell them from the channel's own level; its earlier chunks can. A carrier
    that sits in a channel for a chunk or two stays below ``HOLD``. Only a chunk's own evidence is kept, so a
    channel the transmitter leaves is released after some chunks."""
    before = np.zeros(len(whole)) if memory is None else np.asarray(memory, dtype="float64")
    return np.asarray((1 - MEMORY) * before + MEMORY * whole.astype("float64"))


@dataclass
class ChunkResult:
    """One chunk judged: its flags, its dedispersed series, the loudest single pulse and the class."""

    start: int  # the chunk's first sample in the observation
    flags: np.ndarray  # (channel, CHUNK) bool
    block_mask: np.ndarray  # (channel, CHUNK + OVERLAP) bool: what the dedispersion left out
    series: np.ndarray  # (CHUNK,) dedispersed, unit noise per sample
    snr: float  # the loudest boxcar's S/N
    pulse: bool  # the loudest boxcar reached the threshold
    peak: int  # its sample in the observation
    width: int
    label: str
    interference: bool  # narrowband or broadband interference in the chunk (besides channels held throughout)
    profile_sum: np.ndarray  # (NBINS,) kept cells' values summed per phase bin
    profile_count: np.ndarray  # (NBINS,) kept cells per phase bin
    flagged_fraction: float
    memory: np.ndarray | None = None  # (channel,) each channel's memory after this chunk (``remember``)
    levels: np.ndarray | None = None  # (3, channel) each channel's level followed to this chunk (``track``)


def _clean(z: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each channel renormalised on its kept cells (the bandpass's ripple out); flagged cells zero."""
    kept = np.where(mask, np.nan, z)
    with warnings.catch_warnings():  # a channel flagged whole has no statistics: it stays zero
        warnings.simplefilter("ignore", RuntimeWarning)
        centre, spread = np.nanmedian(kept, axis=1), np.nanstd(kept, axis=1)
    good = np.isfinite(spread) & (spread > 0)
    out = np.zeros_like(z)
    out[good] = (z[good] - centre[good, None]) / spread[good, None]
    out[mask] = 0.0
    return out


def _search(z: np.ndarray, mask: np.ndarray, lag: np.ndarray,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, int, int]]:
    """Dedisperse the kept cells at ``lag`` and find the loudest boxcar: (summed, kept count, series in unit
    noise, (S/N, first sample, width))."""
    clean, kept = _clean(z, mask), ~mask
    rows = np.arange(z.shape[0])[:, None]
    cols = np.minimum(np.arange(CHUNK + max(WIDTHS))[None, :] + lag[:, None], z.shape[1] - 1)
    summed, count = clean[rows, cols].sum(axis=0), kept[rows, cols].sum(axis=0)
    series = summed / np.sqrt(np.maximum(count, 1))
    best = (-np.inf, 0, 1)
    for width in WIDTHS:
        snr = _box(series, width, 0)[width // 2:width // 2 + CHUNK]
        at = int(np.argmax(snr))
        if snr[at] > best[0]:
            best = (float(snr[at]), at, width)
    return summed, count, series, best


def _spare(mask: np.ndarray, lag: np.ndarray, *, at: int, width: int) -> np.ndarray:
    """The mask with a found pulse's own cells unflagged: in each channel, the cells along the pulsar's
    dispersion sweep at the pulse's boxcar (one sample either side), where the flags stop there, i.e. the
    two samples beyond each side are not flagged. Interference arrives at zero DM or sits in a channel for
    many samples, so its flags run on past the sweep; a bright pulse is dispersed, and a cell flagger sees
    its cells as weak interference (a pulse 3.7 times the mean had a quarter of its cells flagged). Only a
    pulse the search found is spared, so sparing never makes a pulse."""
    nsamp = mask.shape[1]
    spared = mask
    for channel in np.flatnonzero(mask.mean(axis=1) <= 0.5):  # channels flagged whole stay so
        first, last = at + int(lag[channel]) - 1, at + int(lag[channel]) + width + 1
        lo, hi = max(first, 0), min(last, nsamp)
        if lo >= hi or not mask[channel, lo:hi].any():
            continue
        if mask[channel, max(first - 2, 0):lo].any() or mask[channel, hi:min(last + 2, nsamp)].any():
            continue  # the flags run on: interference crossing the sweep
        if spared is mask:
            spared = mask.copy()
        spared[channel, lo:hi] = False
    return spared


def _label(mask: np.ndarray, pulse: bool) -> str:
    """pulse, narrowband (flags along time in a few channels), broadband (flags across the band at a few
    samples), noise, or mixed when more than one (a pulse amid interference, or both kinds of it)."""
    part = mask[:, :CHUNK]
    partial = part[part.mean(axis=1) < 0.9]  # channels held the whole time are the band's, not the chunk's
    kinds = []
    if pulse:
        kinds.append("pulse")
    if (partial.sum(axis=1) >= 16).any():
        kinds.append("narrowband")
    if (part.mean(axis=0) > 0.4).any():
        kinds.append("broadband")
    return "noise" if not kinds else kinds[0] if len(kinds) == 1 else "mixed"


def process_chunk(block: np.ndarray, start: int, *, lag: np.ndarray, period: float, tsamp: float,
                  flagger: Flagger | None = None, mask: np.ndarray | None = None,
                  flag_threshold: float = 0.5, snr_threshold: float = 6.0,
                  memory: np.ndarray | None = None, levels: np.ndarray | None = None) -> ChunkResult:
    """Judge one chunk (``block``: channel x (CHUNK + OVERLAP) raw samples from ``start``) with ``flagger``
    and the channels' ``memory`` and ``levels`` of the chunks before (the result carries both on), or with a
    given ``mask`` of the block (the truth, to compare against)."""
    z = normalise(block.astype("float64"))
    flagged = mask is None  # a given mask (the truth) is used as it is
    if mask is None:
        if flagger is None:
            raise ValueError("give a flagger or a mask")
        levels = track(levels, channel_levels(z[:, :CHUNK]))
        mask, whole = flag(z, flagger, flag_threshold, memory, levels)
        memory = remember(memory, whole)
    summed, count, series, best = _search(z, mask, lag)
    if flagged and best[0] >= snr_threshold:
        spared = _spare(mask, lag, at=best[1], width=best[2])
        if spared is not mask:
            mask = spared
            summed, count, series, best = _search(z, mask, lag)
    label = _label(mask, best[0] >= snr_threshold)
    phase = ((start + np.arange(CHUNK)) * tsamp / period) % 1.0
    bins = np.minimum((phase * NBINS).astype(int), NBINS - 1)
    profile_sum = np.bincount(bins, weights=summed[:CHUNK], minlength=NBINS)
    profile_count = np.bincount(bins, weights=count[:CHUNK].astype(float), minlength=NBINS)
    return ChunkResult(start=start, flags=mask[:, :CHUNK].copy(), block_mask=mask, series=series[:CHUNK], snr=best[0],
                       pulse=best[0] >= snr_threshold, peak=start + best[1], width=best[2],
                       label=label, interference=label not in ("pulse", "noise"),
                       profile_sum=profile_sum, profile_count=profile_count,
                       flagged_fraction=float(mask[:, :CHUNK].mean()), memory=memory, levels=levels)


def profile_snr(total: np.ndarray, count: np.ndarray, window: tuple[int, int] | None = None,
                ) -> tuple[float, tuple[int, int]]:
    """The folded profile's S/N: the kept cells in the on-pulse bins above the off-pulse level, over the
    noise of as many unit cells. ``window`` (first bin, bins) is searched for over 1 to 16 bins if not given."""
    if window is None:
        best = (-np.inf, (0, 1))
        for width in (1, 2, 3, 4, 6, 8, 12, 16):
            for first in range(NBINS):
                on = (first + np.arange(width)) % NBINS
                snr = _window_snr(total, count, on)
                if snr > best[0]:
                    best = (snr, (first, width))
        return best
    return _window_snr(total, count, (window[0] + np.arange(window[1])) % NBINS), window


def _window_snr(total: np.ndarray, count: np.ndarray, on: np.ndarray) -> float:
    off = np.ones(len(total), dtype=bool)
    off[on] = False
    level = total[off].sum() / max(count[off].sum(), 1.0)
    cells = count[on].sum()
    return float((total[on].sum() - level * cells) / np.sqrt(max(cells, 1.0)))
