"""The reach's processes for workflows: the catchment model as an openEO process of this app."""

from __future__ import annotations

from typing import Any

import numpy as np

from river_reach.catchment import Catchment, RatingCurve
from twinengine.app import app_process


@app_process(summary="Forecast the level at the outlet from a rain series over the catchment",
             parameters={"rain": {"schema": [{"type": "array", "items": {"type": "number"}},
                                             {"type": "object", "subtype": "datacube"}],
                                  "description": "Catchment-mean rain (mm/h), one value per step"},
                         "parameters": {"description": "The twin's parameters (area, runoff, rating curve)"}},
             returns={"description": "Level (m) after each step", "schema": {"type": "array",
                                                                                "items": {"type": "number"}}})
def forecast_level(rain: Any, parameters: dict, storage_mm: float = 2.0, step_hours: float = 1.0,
                   rain_factor: float = 1.0, horizon_hours: float | None = None) -> list:
    """Run the linear-reservoir catchment and the rating curve over the rain series (scaled by
    ``rain_factor``, cut at ``horizon_hours``)."""
    series = np.asarray(getattr(rain, "values", rain), dtype="float64").ravel() * float(rain_factor)
    if horizon_hours is not None:
        series = series[:max(1, round(float(horizon_hours) / step_hours))]
    catchment = Catchment.from_parameters(parameters)
    catchment.storage_mm = float(storage_mm)
    rating = RatingCurve(parameters.get("rating_a", 18.0), parameters.get("rating_b", 1.6),
                         parameters.get("datum_m", 0.2))
    return [round(rating.level(catchment.step(float(max(r, 0.0)), step_hours)), 4)
            for r in np.nan_to_num(series)]
