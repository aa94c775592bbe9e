"""The function on arrival: each ``filterbank`` record is a chunk (and the next ``OVERLAP`` samples); it is
flagged with the twin's champion flagger, dedispersed at the twin's DM, searched for single pulses, named
and published to ``chunks`` with its part of the folded profile."""

from __future__ import annotations

from typing import Any

import numpy as np

from pulsar_rfi.pipeline import CHUNK, OVERLAP, process_chunk
from pulsar_rfi.simulator import NCHAN, band, delays

__all__ = ["judge", "record_of"]


def record_of(time: Any, start: int, block: np.ndarray) -> dict[str, Any]:
    """A chunk as the ``filterbank`` stream carries it (channel-major, flattened)."""
    if block.shape != (NCHAN, CHUNK + OVERLAP):
        raise ValueError(f"a chunk is {NCHAN} x {CHUNK + OVERLAP} samples, not {block.shape}")
    return {"time": time, "start": int(start), "data": np.asarray(block, dtype="float32").ravel()}


def _flagger(model: Any) -> Any:
    if model is None or not hasattr(model, "net"):  # no champion yet: the manifest's task, untrained
        raise RuntimeError("the twin's rfi_flagger has no trained version yet: train it before streaming")
    return model.predict


def _count(ctx: Any, name: str) -> float:
    reported = ctx.state.reported if ctx.state is not None else {}
    return float(reported[name].value) if name in reported else 0.0


def _kept(ctx: Any, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """What the twin's state kept of the chunks before under ``name`` (the channels' memory or levels), None
    before the first or if it is not of ``shape``."""
    reported = ctx.state.reported if ctx.state is not None else {}
    if name not in reported:
        return None
    kept = np.asarray(reported[name].value, dtype="float64")
    return kept if kept.shape == shape else None


def judge(ctx: Any, records: list[dict[str, Any]]) -> None:
    """Judge every chunk, publish it to ``chunks`` and count chunks, pulses and interference in state, with
    the channels' memory that carries a transmitter's channel from chunk to chunk and their levels followed
    (which tell a transmitter's swing from a receiver channel's steady offset)."""
    params = ctx.parameters
    header = band()
    lag = delays(float(params.get("dm", 40)), header)
    predict, threshold = _flagger(ctx.model), float(params.get("flag_threshold", 0.5))
    memory, levels = _kept(ctx, "channel_memory", (NCHAN,)), _kept(ctx, "channel_levels", (3, NCHAN))
    judged = []
    for record in records:
        block = np.asarray(record["data"], dtype="float64").reshape(NCHAN, CHUNK + OVERLAP)
        result = process_chunk(block, int(record["start"]), lag=lag, period=float(params.get("period_s", 0.7137)),
                               tsamp=header.tsamp, flagger=predict, flag_threshold=threshold,
                               snr_threshold=float(params.get("snr_threshold", 6)), memory=memory,
                               levels=levels)
        memory, levels = result.memory, result.levels
        judged.append({"time": record["time"], "start": result.start, "label": result.label,
                       "pulse": result.pulse, "interference": result.interference,
                       "score": round(result.snr, 3), "width": result.width, "flagged": result.flagged_fraction,
                       "profile_sum": result.profile_sum, "profile_count": result.profile_count})
    ctx.publish("chunks", judged)
    chunks = _count(ctx, "chunks") + len(judged)
    flagged = (_count(ctx, "flagged_fraction") * _count(ctx, "chunks") + sum(j["flagged"] for j in judged)) / chunks
    ctx.update_state(timestamp=records[-1]["time"], chunks=int(chunks),
                     pulse_chunks=int(_count(ctx, "pulse_chunks")) + sum(j["pulse"] for j in judged),
                     rfi_chunks=int(_count(ctx, "rfi_chunks")) + sum(j["interference"] for j in judged),
                     flagged_fraction=flagged, last_snr=judged[-1]["score"],
                     channel_memory=[round(float(m), 4) for m in np.asarray(memory)],
                     channel_levels=np.asarray(levels).round(6).tolist())
