"""The function on arrival: it runs on the ``strain`` stream joined with the nine auxiliary channels' streams
(the engine pairs each strain record with the channels' records of the same second). Each frame is whitened
and judged; the cleaned strain goes to ``cleaned``, and the shape of each vetoed glitch (the whitened strain
around it) to ``glitches``, the generative model's training data. A frame whose auxiliary channel never came
is judged on the channels that did, and its cleaned window names the absent ones."""

from __future__ import annotations

from typing import Any

import numpy as np

from virgo_glitch.channels import AUX, SAMPLE_RATE, SAMPLES, STRAIN
from virgo_glitch.detector import Thresholds, decide, gate

SNIPPET = 512  # samples of whitened strain kept around a vetoed glitch (125 ms)


def snippet(white: np.ndarray, at: float) -> np.ndarray:
    """``SNIPPET`` samples of ``white`` centred on ``at`` seconds (zeros past the frame's ends)."""
    centre = round(at * SAMPLE_RATE)
    padded = np.pad(white, SNIPPET)
    start = centre - SNIPPET // 2 + SNIPPET
    return padded[start:start + SNIPPET].copy()


def frame_of(joined: dict[str, Any]) -> dict[str, Any]:
    """A joined record as one frame: the strain and the auxiliary channels whose records came."""
    frame = {"time": joined["time"], STRAIN: joined[STRAIN]}
    for name in AUX:
        partner = joined.get(name)
        if partner is not None:
            frame[name] = partner[SAMPLES]
    return frame


def _count(reported: dict[str, Any], name: str) -> int:
    return int(reported[name].value) if name in reported else 0


def veto(ctx: Any, records: list[dict[str, Any]]) -> None:
    """Publish every frame's whitened strain (gated around the glitch when vetoed) with its decision, and
    count windows, vetoes and incomplete frames in the twin's state."""
    thresholds = Thresholds.of(ctx.parameters)
    cleaned, glitches = [], []
    for record in records:
        decision = decide(frame_of(record), thresholds)
        missing = record.get("_missing") or []
        strain = gate(decision.whitened, decision.strain_time) if decision.vetoed else decision.whitened
        cleaned.append({"time": record["time"], "h": strain, "vetoed": decision.vetoed,
                        "strain_peak": decision.strain_peak, "aux_peak": decision.aux_peak,
                        "channel": decision.channel, "missing": ",".join(missing) or None})
        if decision.vetoed:
            glitches.append({"time": record["time"], "channel": decision.channel,
                             "shape": snippet(decision.whitened, decision.strain_time),
                             "strain_peak": decision.strain_peak})
    ctx.publish("cleaned", cleaned)
    if glitches:
        ctx.publish("glitches", glitches)
    reported = ctx.state.reported if ctx.state is not None else {}
    windows = _count(reported, "windows") + len(cleaned)
    vetoed = _count(reported, "vetoed_windows") + sum(1 for c in cleaned if c["vetoed"])
    incomplete = _count(reported, "incomplete_windows") + sum(1 for c in cleaned if c["missing"])
    ctx.update_state(timestamp=records[-1]["time"], windows=windows, vetoed_windows=vetoed,
                     incomplete_windows=incomplete, veto_fraction=vetoed / windows,
                     last_strain_peak=cleaned[-1]["strain_peak"])
