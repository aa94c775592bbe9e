"""The Canadian Forest Fire Weather Index system (Van Wagner and Pickett 1985; Van Wagner 1987), computed
with climate-indices (BSD-3-Clause; the app's own requirement, imported here where it is first needed).

The library was picked by its agreement with the cffdrs reference table of the 48-day test weather
(``data/fwi_01.csv``): climate-indices 3.1.0 within 0.0004 on FFMC, DMC, DC, ISI, BUI, FWI and DSR; xclim
0.62.0 drifts 0.12 on FFMC and 0.26 on ISI; cffdrs-fire 0.3.0 rewets the fine fuel after 0.4 mm of rain and
is off by 4.4 on FFMC from that day on (the app's README has the table, `bench/climate_impacts.py
--libraries` measures it again).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from climate_impacts.readers import StationWeather

__all__ = ["COMPONENTS", "compare_with_reference", "fwi_grid", "fwi_station"]

COMPONENTS = ("ffmc", "dmc", "dc", "isi", "bui", "fwi", "dsr")


def _quiet() -> None:
    """climate-indices logs every call at info level; only its warnings and errors are kept (its own setting,
    read when it first logs)."""
    os.environ.setdefault("CLIMATE_INDICES_LOG_LEVEL", "WARNING")


def fwi_station(weather: StationWeather) -> dict[str, np.ndarray]:
    """The seven components for a station's days, from the literature's start-up values (FFMC 85, DMC 6,
    DC 15), day lengths of the station's latitude."""
    _quiet()
    from climate_indices.fire import cffwis

    with np.errstate(all="ignore"):  # lets climate-indices run its compiled kernels (it keeps numpy's policy)
        result = cffwis(weather.temp, weather.rh, weather.wind_kmh / 3.6, weather.prec,
                        latitude_degrees_north=weather.latitude, month=weather.month)
    return {name: np.asarray(getattr(result, name), dtype="float64") for name in COMPONENTS}


def fwi_grid(tmax: np.ndarray, rh: np.ndarray, wind: np.ndarray, pr: np.ndarray, lat: np.ndarray,
             month: np.ndarray) -> np.ndarray:
    """Daily FWI of (time, lat, lon) fields (degC, %, m/s, mm), run continuously from the first day (no
    overwintering: a climate without a snow season)."""
    _quiet()
    from climate_indices.fire import cffwis

    plain = [np.ascontiguousarray(a, dtype="float64") for a in (tmax, np.clip(rh, 0, 100), np.maximum(wind, 0),
                                                                  np.maximum(pr, 0))]
    with np.errstate(all="ignore"):  # lets climate-indices run its compiled kernels (it keeps numpy's policy)
        result = cffwis(*plain, latitude_degrees_north=np.ascontiguousarray(
                            np.broadcast_to(lat[:, None], tmax.shape[1:]), dtype="float64"),
                        month=np.asarray(month, dtype="int64"), outputs=("fwi",))
    return np.asarray(result.fwi, dtype="float64")


def compare_with_reference(weather: StationWeather) -> dict[str, Any]:
    """Each component against the table's own reference columns: the largest absolute difference, the day
    it happened and that day's rain."""
    got = fwi_station(weather)
    out: dict[str, Any] = {"days": len(weather.dates), "components": {}}
    for name in COMPONENTS:
        ref = weather.columns.get(name.upper())
        if ref is None:
            raise ValueError(f"the table has no reference column {name.upper()}")
        diff = np.abs(got[name] - ref)
        worst = int(np.argmax(diff))
        out["components"][name] = {"max_abs_difference": float(diff.max()), "day": weather.dates[worst],
                                   "rain_mm": float(weather.prec[worst])}
    out["max_abs_difference"] = max(c["max_abs_difference"] for c in out["components"].values())
    light = [i for i, p in enumerate(weather.prec) if 0 < p <= 0.5]
    out["light_rain_days"] = [weather.dates[i] for i in light]
    return out
