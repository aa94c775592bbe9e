"""The science checks' measurements, shared by the app's tests, the bench and the demo: an observation run
chunk by chunk through the twin's pipeline, with a flagger or with the truth mask, and scored against the
simulator's truth (cells' F1, on-pulse cells flagged, folded S/N against the analytic S/N of the same fold of
the noiseless pulse, chunk classes against the pulses and events planted)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pulsar_rfi.model import f1
from pulsar_rfi.pipeline import CHUNK, NBINS, OVERLAP, ChunkResult, Flagger, process_chunk, profile_snr
from pulsar_rfi.simulator import Observation, delays

__all__ = ["Measured", "blocks", "chunk_truth", "measure", "pulse_scores"]


def blocks(obs: Observation) -> Iterator[tuple[int, np.ndarray]]:
    """(first sample, channel x (CHUNK + OVERLAP) block) of every whole chunk, as the stream carries them."""
    for start in range(0, obs.data.shape[1] - CHUNK - OVERLAP + 1, CHUNK):
        yield start, obs.data[:, start:start + CHUNK + OVERLAP]


@dataclass
class Measured:
    """One observation judged with one flagger (or the truth mask)."""

    results: list[ChunkResult]
    flags: np.ndarray  # (channel, judged samples)
    f1: float
    on_pulse_flagged: float  # share of the pulse's cells (outside interference) that were flagged
    snr: float  # folded S/N, on-pulse window searched on the profile
    analytic_snr: float  # the same fold and window of the noiseless pulse over the same kept cells
    window: tuple[int, int]


def measure(obs: Observation, *, flagger: Flagger | None = None, truth: bool = False,
            snr_threshold: float = 6.0) -> Measured:
    """Run every chunk of ``obs`` through the pipeline with ``flagger`` (or the truth mask)."""
    lag = delays(obs.pulsar.dm, obs.header)
    results: list[ChunkResult] = []
    signal = np.zeros(NBINS)
    memory = levels = None  # the channels' memory and levels, carried from chunk to chunk as the twin's state
    for start, block in blocks(obs):
        mask = obs.rfi[:, start:start + CHUNK + OVERLAP] if truth else None
        result = process_chunk(block, start, lag=lag, period=obs.pulsar.period, tsamp=obs.header.tsamp,
                               flagger=flagger, mask=mask, snr_threshold=snr_threshold, memory=memory, levels=levels)
        memory, levels = result.memory, result.levels
        results.append(result)
        pulse = np.where(result.block_mask, 0.0, obs.pulse[:, start:start + CHUNK + OVERLAP])
        rows = np.arange(len(lag))[:, None]
        cols = np.minimum(np.arange(CHUNK)[None, :] + lag[:, None], pulse.shape[1] - 1)
        phase = ((start + np.arange(CHUNK)) * obs.header.tsamp / obs.pulsar.period) % 1.0
        bins = np.minimum((phase * NBINS).astype(int), NBINS - 1)
        signal += np.bincount(bins, weights=pulse[rows, cols].sum(axis=0), minlength=NBINS)
    flags = np.concatenate([r.flags for r in results], axis=1)
    span = flags.shape[1]
    total = np.sum([r.profile_sum for r in results], axis=0)
    count = np.sum([r.profile_count for r in results], axis=0)
    snr, window = profile_snr(total, count)
    analytic, _ = profile_snr(signal, count, window)
    on_pulse = (obs.pulse[:, :span] > 0) & ~obs.rfi[:, :span]
    return Measured(results=results, flags=flags, f1=f1(flags, obs.rfi[:, :span]),
                    on_pulse_flagged=float(flags[on_pulse].mean()) if on_pulse.any() else 0.0,
                    snr=snr, analytic_snr=analytic, window=window)


def chunk_truth(obs: Observation) -> list[dict[str, Any]]:
    """Per chunk: the analytic S/N of the pulse it holds (at the top channel, over the cells interference
    left; a pulse across a chunk's edge counts in each chunk with the part it has there, 0: no pulse), and
    which interference kinds touch it."""
    span = (obs.data.shape[1] - CHUNK - OVERLAP) // CHUNK + 1
    rows: list[dict[str, Any]] = [{"pulse_snr": 0.0, "kinds": set()} for _ in range(span)]
    lag = delays(obs.pulsar.dm, obs.header)
    for start, amplitude in zip(obs.arrivals, obs.amplitudes, strict=True):
        samples = np.arange(start, start + obs.pulsar.width)
        for index in set((samples // CHUNK).tolist()):
            if index >= span:
                continue
            inside = samples[samples // CHUNK == index]
            cells = sum(int(np.sum(~obs.rfi[c, inside + d])) for c, d in enumerate(lag))
            rows[index]["pulse_snr"] = max(rows[index]["pulse_snr"], float(amplitude) * np.sqrt(cells))
    for event in obs.events:
        for index in range(event.start // CHUNK, min((event.stop - 1) // CHUNK + 1, span)):
            rows[index]["kinds"].add(event.kind)
    return rows


def pulse_scores(measured: Measured, truth: list[dict[str, Any]], *, at_snr: float = 7.0) -> dict[str, int]:
    """Chunks with a pulse found among those with a pulse of analytic S/N >= ``at_snr``, and among
    those with no pulse at all: the counts behind recall and the false-positive rate."""
    called = [r.pulse for r in measured.results]
    loud = [c for c, t in zip(called, truth, strict=True) if t["pulse_snr"] >= at_snr]
    empty = [c for c, t in zip(called, truth, strict=True) if t["pulse_snr"] == 0]
    return {"pulses": len(loud), "found": sum(loud), "empty": len(empty), "false": sum(empty)}
