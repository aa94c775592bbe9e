"""Real formats, unchanged: the same weather in CMIP6 units (K, kg m-2 s-1) and in E-OBS-like units (degC,
mm/day, other variable names) reads to the same arrays; a unit it does not know is named."""

from __future__ import annotations

import numpy as np
import pytest
from climate_impacts.generator import generate
from climate_impacts.readers import daily_weather


def test_cmip6_and_eobs_units_read_the_same() -> None:
    ds = generate({"years": 5, "baseline_years": 10, "grid_cells": 6, "droughts": 0}, 0).data.isel(time=slice(0, 60))
    eobs = ds.rename({"pr": "rr", "tasmax": "tx", "tas": "tg", "hursmin": "hu", "lat": "latitude",
                      "lon": "longitude"})
    eobs["rr"] = eobs["rr"] * 86400.0
    eobs["rr"].attrs["units"] = "mm"
    for name in ("tx", "tg"):
        eobs[name] = eobs[name] - 273.15
        eobs[name].attrs["units"] = "degC"
    a, b = daily_weather(ds), daily_weather(eobs)
    for field in ("pr", "tmax", "tmean", "rh", "wind"):
        assert np.allclose(getattr(a, field), getattr(b, field), atol=1e-3), field
    assert np.allclose(a.tmax, ds["tasmax"].values - 273.15, atol=1e-4)


def test_an_unknown_unit_is_named() -> None:
    ds = generate({"years": 5, "baseline_years": 10, "grid_cells": 6, "droughts": 0}, 0).data.isel(time=slice(0, 5))
    ds["tasmax"].attrs["units"] = "degF"
    with pytest.raises(ValueError, match="tasmax: temperature in 'degF'"):
        daily_weather(ds)
