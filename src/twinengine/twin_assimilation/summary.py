"""What a scientist checks first about a run of cycles, for the CLI and the ``assimilate`` process alike."""

from __future__ import annotations

from typing import Any

from twinengine.twin_assimilation.schemas import CycleRead

__all__ = ["summary"]


def summary(cycles: list[CycleRead]) -> dict[str, Any]:
    """How many cycles and observations, whether the innovations look as the filter expected (a ratio well
    above 1: a bad sensor or a diverging filter), and the analysis spread."""
    with_obs = [c for c in cycles if c.innovation_rms is not None]
    weights = [c.obs_count for c in with_obs]
    total = sum(weights)
    mean = sum((c.innovation_mean or 0.0) * c.obs_count for c in with_obs) / total if total else None
    rms = (sum((c.innovation_rms or 0.0) ** 2 * c.obs_count for c in with_obs) / total) ** 0.5 if total else None
    expected = (sum((c.expected_rms or 0.0) ** 2 * c.obs_count for c in with_obs) / total) ** 0.5 if total else None
    return {"cycles": len(cycles), "observations": total, "innovation_mean": mean, "innovation_rms": rms,
            "expected_rms": expected, "ratio": rms / expected if rms is not None and expected else None,
            "spread": cycles[-1].spread if cycles else None, "revision": cycles[-1].revision if cycles else None}
