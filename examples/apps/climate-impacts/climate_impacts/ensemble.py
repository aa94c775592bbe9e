"""An ensemble's members judged together: the 99 % interval of their mean, and the science checks of a
scenario (drought frequency against its closed form, planted droughts found)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["BOUNDS", "confidence_interval", "scenario_checks"]

# the planted droughts' tolerances: duration (months), extent (share of the grid), intensity (SPI)
BOUNDS = {"duration": 1, "extent": 0.05, "intensity": 0.2}


def confidence_interval(values: Sequence[float], level: float = 0.99) -> tuple[float, float, float]:
    """Mean of the members and its Student-t interval (infinite for one member)."""
    x = np.asarray(values, dtype="float64")
    mean = float(x.mean())
    if len(x) < 2:
        return mean, -math.inf, math.inf
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def scenario_checks(members: Sequence[dict[str, Any]], level: float = 0.99) -> dict[str, Any]:
    """From each member's state values: the members' mean SPI-1 drought frequency and its ``level`` interval,
    the closed form given each member's calibration inside it (the difference's interval holds 0), the closed
    form of the true distribution beside it, and the planted droughts' largest errors."""
    observed = [m["spi1_drought_frequency"] for m in members]
    expected = [m["spi1_expected_frequency"] for m in members]
    diff_mean, diff_low, diff_high = confidence_interval([o - e for o, e in zip(observed, expected, strict=True)],
                                                         level)
    mean, low, high = confidence_interval(observed, level)
    given_fit = float(np.mean(expected))
    out: dict[str, Any] = {
        "members": len(members), "frequency": mean, "interval": [low, high],
        "expected_given_fit": given_fit, "closed_form": float(np.mean([m["spi1_closed_form_frequency"]
                                                                        for m in members])),
        # the closed form for the members' calibrations, with the interval of the members' mean around it
        "expected_interval": [given_fit - (diff_high - diff_mean), given_fit + (diff_high - diff_mean)],
        "inside": bool(diff_low <= 0.0 <= diff_high),
        "compound_days": confidence_interval([m["compound_days"] for m in members], level)[0],
        "spi3_drought_frequency": float(np.mean([m["spi3_drought_frequency"] for m in members])),
        "spei3_drought_frequency": float(np.mean([m["spei3_drought_frequency"] for m in members])),
        "fwi_high_days": float(np.mean([m["fwi_high_days"] for m in members])),
        "planted": int(sum(m.get("planted_droughts", 0) for m in members)),
        "planted_found": int(sum(m.get("planted_found", 0) for m in members)),
    }
    for key in BOUNDS:
        errors = [m.get(f"planted_{key}_error") for m in members if m.get(f"planted_{key}_error") is not None]
        out[f"planted_{key}_error"] = max(errors) if errors else None
    out["planted_within_bounds"] = bool(out["planted"] == out["planted_found"] and all(
        out[f"planted_{k}_error"] is None or out[f"planted_{k}_error"] <= b + 1e-9 for k, b in BOUNDS.items()))
    return out
