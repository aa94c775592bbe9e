"""A synthetic gridded rainfall field over the reach's catchment, consistent in spirit with the simulator:
storms arrive at random (Poisson), last a few hours with a bell-shaped intensity, and here also have a
footprint (a Gaussian rain cell) that drifts across the catchment with the wind.

The field is a CF-1.10 xarray Dataset on a small regular lon/lat grid, ``rain`` in mm h-1, with the
catchment outline and the outlet gauge in its attributes. Seeded, so a run can be repeated exactly.
"""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["CATCHMENT_POLYGON", "GAUGE", "catchment_wkt", "rain_field"]

# The outlet gauge (lon, lat) and the catchment draining to it (lon, lat ring), about 120 km².
GAUGE = (8.262, 46.081)
CATCHMENT_POLYGON = [(8.262, 46.081), (8.215, 46.095), (8.168, 46.121), (8.152, 46.158), (8.174, 46.186),
                     (8.221, 46.198), (8.275, 46.190), (8.318, 46.166), (8.329, 46.128), (8.301, 46.097),
                     (8.262, 46.081)]
BOUNDS = (8.05, 46.00, 8.45, 46.28)  # west, south, east, north of the grid
STEP_DEG = 0.02


def catchment_wkt() -> str:
    return "POLYGON((" + ", ".join(f"{x} {y}" for x, y in CATCHMENT_POLYGON) + "))"


def rain_field(start: datetime, hours: int, *, seed: int = 7, storms_per_day: float = 0.8,
               step: timedelta = timedelta(hours=1)) -> xr.Dataset:
    """Hourly (by default) rain rates on a 0.02° grid around the catchment for ``hours`` from ``start``."""
    rng = random.Random(seed)
    west, south, east, north = BOUNDS
    # imported here, not with the package: the gauge function and the model, which a worker runs on every
    # arrival, never need them, and they take about a second to import in each fresh worker (numpy alone
    # 0.2 s of CPU, most of what such a worker spent importing)
    import numpy as np
    import pandas as pd
    import xarray as xr

    lon = np.round(np.arange(west, east + 1e-9, STEP_DEG), 4)
    lat = np.round(np.arange(south, north + 1e-9, STEP_DEG), 4)
    step_h = step.total_seconds() / 3600.0
    n = round(hours / step_h)
    t_h = np.arange(n) * step_h + step_h / 2  # each value is the mean rate over its step
    glon, glat = np.meshgrid(lon, lat)
    km_x, km_y = 111.32 * math.cos(math.radians((south + north) / 2)), 110.57
    rain = np.zeros((n, lat.size, lon.size), dtype="float64")
    when = rng.expovariate(storms_per_day / 24.0) * 0.3
    while when < hours + 12:
        duration = rng.uniform(3.0, 10.0)
        peak = rng.gammavariate(2.0, 4.0)
        radius_km = rng.uniform(6.0, 18.0)
        heading = rng.uniform(0, 2 * math.pi)
        speed_kmh = rng.uniform(5.0, 25.0)
        x0 = rng.uniform(-10.0, 10.0) - math.cos(heading) * speed_kmh * duration / 2
        y0 = rng.uniform(-10.0, 10.0) - math.sin(heading) * speed_kmh * duration / 2
        phase = (t_h - when) / duration
        active = (phase >= 0) & (phase <= 1)
        for k in np.flatnonzero(active):
            elapsed = t_h[k] - when
            cx = GAUGE[0] + 0.05 + (x0 + math.cos(heading) * speed_kmh * elapsed) / km_x
            cy = GAUGE[1] + 0.06 + (y0 + math.sin(heading) * speed_kmh * elapsed) / km_y
            d2 = ((glon - cx) * km_x) ** 2 + ((glat - cy) * km_y) ** 2
            rain[k] += peak * math.sin(math.pi * phase[k]) ** 2 * np.exp(-d2 / (2 * radius_km**2))
        when += rng.expovariate(storms_per_day / 24.0)
    times = pd.date_range(pd.Timestamp(start).tz_localize(None) if pd.Timestamp(start).tzinfo else start,
                          periods=n, freq=pd.Timedelta(step))
    gauge = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "RR-01", "geometry": {"type": "Point", "coordinates": list(GAUGE)},
         "properties": {"name": "outlet gauge RR-01"}}]}
    ds = xr.Dataset(
        {"rain": (("time", "lat", "lon"), np.round(rain, 3).astype("float32"),
                  {"units": "mm h-1", "standard_name": "lwe_precipitation_rate", "long_name": "rain rate",
                   "cell_methods": "time: mean"})},
        coords={"time": ("time", times, {"standard_name": "time", "axis": "T"}),
                "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude", "axis": "X"})},
        attrs={"Conventions": "CF-1.10", "title": "River reach: synthetic gridded rainfall",
               "summary": "Storms as drifting Gaussian rain cells over the river-reach catchment (simulated).",
               "source": f"river_reach.rainfield, seed {seed}", "catchment_wkt": catchment_wkt(),
               "edr:locations": json.dumps(gauge)})
    return ds
