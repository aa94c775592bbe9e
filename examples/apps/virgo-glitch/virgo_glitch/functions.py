"""The function on arrival: each frame is whitened and judged; the cleaned strain goes to ``cleaned``, and
the shape of each vetoed glitch (the whitened strain around it) to ``glitches``, the generative model's
training data."""

from __future__ import annotations

from typing import Any

import numpy as np

from virgo_glitch.channels import SAMPLE_RATE
from virgo_glitch.detector import Thresholds, decide, gate

SNIPPET = 512  # samples of whitened strain kept around a vetoed glitch (125 ms)


def snippet(white: np.ndarray, at: float) -> np.ndarray:
    """``SNIPPET`` samples of ``white`` centred on ``at`` seconds (zeros past the frame's ends)."""
    centre = round(at * SAMPLE_RATE)
    padded = np.pad(white, SNIPPET)
    start = centre - SNIPPET // 2 + SNIPPET
    return padded[start:start + SNIPPET].copy()


def veto(ctx: Any, records: list[dict[str, Any]]) -> None:
    """Publish every frame's whitened strain (gated around the glitch when vetoed) with its decision, and
    count windows and vetoes in the twin's state."""
    thresholds = Thresholds.of(ctx.parameters)
    cleaned, glitches = [], []
    for frame in records:
        decision = decide(frame, thresholds)
        strain = gate(decision.whitened, decision.strain_time) if decision.vetoed else decision.whitened
        cleaned.append({"time": frame["time"], "h": strain, "vetoed": decision.vetoed,
                        "strain_peak": decision.strain_peak, "aux_peak": decision.aux_peak,
                        "channel": decision.channel})
        if decision.vetoed:
            glitches.append({"time": frame["time"], "channel": decision.channel,
                             "shape": snippet(decision.whitened, decision.strain_time),
                             "strain_peak": decision.strain_peak})
    ctx.publish("cleaned", cleaned)
    if glitches:
        ctx.publish("glitches", glitches)
    reported = ctx.state.reported if ctx.state is not None else {}
    windows = (reported["windows"].value if "windows" in reported else 0) + len(cleaned)
    vetoed = (reported["vetoed_windows"].value if "vetoed_windows" in reported else 0) + \
        sum(1 for c in cleaned if c["vetoed"])
    ctx.update_state(timestamp=records[-1]["time"], windows=windows, vetoed_windows=vetoed,
                     veto_fraction=vetoed / windows, last_strain_peak=cleaned[-1]["strain_peak"])
