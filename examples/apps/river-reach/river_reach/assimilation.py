"""What the engine's assimilation needs of the reach: its model step and the level its storage gives.

The step advances the catchment's storage under the gauge's rain (the linear reservoir, integrated
exactly); the observation operator turns storage into discharge and, through the rating curve, into the
level the gauge reads. Both are plain functions of one member's state: the engine runs them for every
member in the app's workers (assimilation: in twinapp.yaml).
"""

from __future__ import annotations

from typing import Any

from river_reach.catchment import Catchment, RatingCurve


def step(state: dict[str, float], parameters: dict[str, Any], forcing: dict[str, float],
         dt: float) -> dict[str, float]:
    """Storage after ``dt`` seconds of the latest rain (none when the gauge has not reported any)."""
    catchment = Catchment.from_parameters(parameters)
    catchment.storage_mm = max(state["storage"], 0.0)
    catchment.step(max(forcing.get("rain", 0.0), 0.0), dt / 3600.0)
    return {"storage": catchment.storage_mm}


def level(state: dict[str, float], parameters: dict[str, Any]) -> float:
    """The level at the outlet gauge for the member's storage: outflow plus base flow, through the rating curve."""
    catchment = Catchment.from_parameters(parameters)
    catchment.storage_mm = max(state["storage"], 0.0)
    rating = RatingCurve(parameters.get("rating_a", 18.0), parameters.get("rating_b", 1.6),
                         parameters.get("datum_m", 0.2))
    return rating.level(catchment.discharge())
