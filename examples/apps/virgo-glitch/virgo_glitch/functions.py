"""The function on arrival: each frame is whitened and judged; the cleaned strain goes to ``cleaned``."""

from __future__ import annotations

from typing import Any

from virgo_glitch.detector import Thresholds, decide, gate


def veto(ctx: Any, records: list[dict[str, Any]]) -> None:
    """Publish every frame's whitened strain (gated around the glitch when vetoed) with its decision, and
    count windows and vetoes in the twin's state."""
    thresholds = Thresholds.of(ctx.parameters)
    cleaned = []
    for frame in records:
        decision = decide(frame, thresholds)
        strain = gate(decision.whitened, decision.strain_time) if decision.vetoed else decision.whitened
        cleaned.append({"time": frame["time"], "h": strain, "vetoed": decision.vetoed,
                        "strain_peak": decision.strain_peak, "aux_peak": decision.aux_peak,
                        "channel": decision.channel})
    ctx.publish("cleaned", cleaned)
    reported = ctx.state.reported if ctx.state is not None else {}
    windows = (reported["windows"].value if "windows" in reported else 0) + len(cleaned)
    vetoed = (reported["vetoed_windows"].value if "vetoed_windows" in reported else 0) + \
        sum(1 for c in cleaned if c["vetoed"])
    ctx.update_state(timestamp=records[-1]["time"], windows=windows, vetoed_windows=vetoed,
                     veto_fraction=vetoed / windows, last_strain_peak=cleaned[-1]["strain_peak"])
