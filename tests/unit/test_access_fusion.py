"""Data fusion: regridding against direct computations, collocation against direct selections, temporal
resampling, unit harmonisation and the merged CF dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from access_data import rain_cube
from twinengine.access import fusion
from twinengine.errors import InvalidInput, ValidationFailed


@pytest.fixture(scope="module")
def rain() -> xr.Dataset:
    return rain_cube().isel(time=slice(0, 48))


def test_regrid_conservative_keeps_area_means(rain: xr.Dataset) -> None:
    coarse = rain.coarsen(lat=4, lon=4, boundary="trim").mean()
    out = fusion.regrid(rain, coarse, method="conservative")
    weights = np.cos(np.radians(rain.lat))
    expected = rain.rain.weighted(weights).mean(("lat", "lon"))
    # Cell-by-cell: within a few per mille of the plain block mean (area weights differ inside a block).
    np.testing.assert_allclose(out.rain.values, coarse.rain.values, rtol=0.02, atol=0.01)
    assert out.rain.attrs["units"] == "mm h-1"
    overall = out.rain.weighted(np.cos(np.radians(out.lat))).mean(("lat", "lon"))
    np.testing.assert_allclose(overall.values, expected.values, rtol=0.05)


def test_regrid_nearest_and_bilinear(rain: xr.Dataset) -> None:
    target = xr.Dataset(coords={"lat": [45.0, 45.125], "lon": [8.0, 8.125]})
    nearest = fusion.regrid(rain.rain, target, method="nearest")
    np.testing.assert_array_equal(nearest.sel(lat=45.0, lon=8.0).values, rain.rain.sel(lat=45.0, lon=8.0).values)
    bilinear = fusion.regrid(rain, target, method="bilinear")
    corners = rain.rain.sel(lat=[45.0, 45.25], lon=[8.0, 8.25]).mean(("lat", "lon"))
    np.testing.assert_allclose(bilinear.rain.sel(lat=45.125, lon=8.125).values, corners.values, rtol=1e-5)
    with pytest.raises(InvalidInput, match="method"):
        fusion.regrid(rain, target, method="cubic")  # type: ignore[arg-type]


def stations() -> xr.Dataset:
    times = pd.date_range("2026-03-01T06:30", periods=6, freq="h")
    return xr.Dataset({"gauge": (("station", "time"), np.ones((2, 6)), {"units": "mm h-1"})},
                      coords={"station": ["RR-01", "RR-02"], "lon": ("station", [8.1, 9.05]),
                              "lat": ("station", [45.3, 46.2]), "time": times})


def test_collocate_nearest_and_linear(rain: xr.Dataset) -> None:
    obs = stations()
    near = fusion.collocate(obs, rain, space="nearest", time="nearest", prefix="model_")
    direct = rain.rain.sel(lon=8.1, lat=45.3, method="nearest").sel(time=obs.time.values, method="nearest")
    np.testing.assert_array_equal(near.model_rain.sel(station="RR-01").values, direct.values)
    assert near.model_rain.attrs["units"] == "mm h-1" and near.gauge.shape == near.model_rain.shape
    linear = fusion.collocate(obs, rain, space="bilinear", time="linear")
    expected = rain.rain.sortby("lat").interp(lon=9.05, lat=46.2).interp(time=obs.time.values)
    np.testing.assert_allclose(linear.rain.sel(station="RR-02").values, expected.values, rtol=1e-5)
    flat = xr.Dataset({"v": ("obs", [1.0, 2.0])}, coords={"lon": ("obs", [8.1, 30.0]), "lat": ("obs", [45.3, 45.3]),
                                                       "time": ("obs", pd.to_datetime(["2026-03-01T07:00"] * 2))})
    out = fusion.collocate(flat, rain, space="nearest", time="nearest")
    assert np.isfinite(out.rain.values[0]) and np.isnan(out.rain.values[1])  # 30°E is off the grid


def test_resample_align_units_and_merge(rain: xr.Dataset) -> None:
    daily = fusion.resample(rain, "1D", how="sum")
    np.testing.assert_allclose(daily.rain.isel(time=0).values, rain.rain.isel(time=slice(0, 24)).sum("time").values,
                               rtol=1e-5)
    fine = fusion.resample(rain.isel(time=slice(0, 3)), "30min", how="linear")
    assert fine.time.size == 5
    np.testing.assert_allclose(fine.temp.isel(time=1).values,
                               rain.temp.isel(time=slice(0, 2)).mean("time").values, rtol=1e-5)
    a, b = fusion.align(rain[["rain"]], rain[["temp"]].isel(time=slice(12, 60)), freq="6h")
    assert a.time.size == b.time.size == 6
    kelvin = fusion.harmonise_units(rain, {"temp": "K", "rain": "m s-1"})
    np.testing.assert_allclose(kelvin.temp.values, rain.temp.values + 273.15, rtol=1e-6)
    np.testing.assert_allclose(kelvin.rain.values, rain.rain.values / 3.6e6, rtol=1e-6)
    assert kelvin.temp.attrs["units"] == "K"
    back = fusion.harmonise_units(kelvin, like=rain)
    np.testing.assert_allclose(back.temp.values, rain.temp.values, atol=1e-4)
    with pytest.raises(ValidationFailed, match=r"temp\.units"):
        fusion.harmonise_units(rain, {"temp": "m"})
    merged = fusion.merge(rain[["rain"]], fusion.collocate(stations(), rain)[["gauge"]].isel(station=0),
                          title="rain and gauge")
    assert merged.attrs["Conventions"] == "CF-1.10" and "fusion.merge" in merged.attrs["history"]
    assert merged.lat.attrs["units"] == "degrees_north" and merged.time.attrs["axis"] == "T"
    with pytest.raises(InvalidInput, match="cannot be merged"):
        fusion.merge(rain[["rain"]], (rain[["rain"]] + 1))
