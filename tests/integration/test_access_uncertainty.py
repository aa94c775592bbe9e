"""EDR answers carry a value's uncertainty (SQLite and PostgreSQL stores): a variable that lists its standard
deviation and quantiles (CF ``ancillary_variables``, NetCDF-U ``ref``) is answered as one CoverageJSON
ParameterGroup with UncertML statistical measures, valid against the OGC schema and covjson-pydantic."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from access_checks import check_covjson
from helpers import Engine
from twinengine.access.statistics import MEAN, QUANTILE, STD

LAT, LON = np.linspace(44.0, 46.0, 5), np.linspace(7.0, 9.0, 5)
TIME = pd.date_range("2026-03-01", periods=4, freq="h")
STATIONS = ["RR-01", "RR-02"]


def _grid() -> xr.Dataset:
    shape = (len(TIME), len(LAT), len(LON))
    mean = np.arange(np.prod(shape), dtype="float32").reshape(shape) / 10
    dims = ("time", "lat", "lon")
    return xr.Dataset(
        {"level": (dims, mean, {"units": "m", "standard_name": "water_surface_height_above_reference_datum",
                                "ancillary_variables": "level_std level_q05 level_q95"}),
         "level_std": (dims, np.full(shape, 0.25, "float32"), {"units": "m", "ref": STD}),
         "level_q05": (dims, mean - 0.4, {"units": "m", "ref": QUANTILE, "quantile": 0.05}),
         "level_q95": (dims, mean + 0.4, {"units": "m", "ref": QUANTILE, "quantile": 0.95}),
         "rain": (dims, np.ones(shape, "float32"), {"units": "mm h-1"})},
        coords={"time": TIME, "lat": ("lat", LAT, {"units": "degrees_north"}),
                "lon": ("lon", LON, {"units": "degrees_east"})})


def _stations() -> xr.Dataset:
    shape = (len(TIME), len(STATIONS))
    dims = ("time", "station")
    return xr.Dataset(
        {"level": (dims, np.full(shape, 2.0), {"units": "m", "ancillary_variables": "level_err"}),
         "level_err": (dims, np.full(shape, 0.1), {"units": "m",
                                                   "standard_name": "water_surface_height standard_error"})},
        coords={"time": TIME, "station": STATIONS, "lon": ("station", [7.5, 8.5]), "lat": ("station", [44.5, 45.5])})


@pytest.fixture
def edr(engine: Engine) -> tuple[Engine, dict[str, str]]:
    folder = engine.runtime.settings.data_dir / "collections"
    folder.mkdir(parents=True, exist_ok=True)
    _grid().to_netcdf(folder / "reach.nc", engine="h5netcdf")
    _stations().to_netcdf(folder / "gauges.nc", engine="h5netcdf")
    return engine, engine.headers(engine.token("uma", "user"))


def covjson(edr: Any, url: str) -> dict[str, Any]:
    engine, headers = edr
    response = engine.http.get(url, headers=headers)
    assert response.status_code == 200, response.text[:500]
    doc: dict[str, Any] = response.json()
    check_covjson(doc)
    return doc


def test_a_value_and_its_statistics_are_one_parameter_group(edr: Any) -> None:
    doc = covjson(edr, "/edr/collections/reach/position?coords=POINT(8 45)")
    assert doc["type"] == "Coverage"
    assert doc["parameterGroups"] == [{
        "type": "ParameterGroup", "label": {"en": "water surface height above reference datum with its uncertainty"},
        "observedProperty": doc["parameters"]["level"]["observedProperty"],
        "members": ["level", "level_std", "level_q05", "level_q95"]}]
    parameters = doc["parameters"]
    assert parameters["level"]["statisticalMeasure"] == MEAN
    assert parameters["level"]["observedProperty"]["id"] == "water_surface_height_above_reference_datum"
    assert parameters["level_std"]["statisticalMeasure"] == STD
    assert "id" not in parameters["level_std"]["observedProperty"]  # a spread is not the height itself
    assert parameters["level_q05"]["statisticalMeasure"] == QUANTILE
    assert parameters["level_q05"]["quantileLevel"] == 0.05
    assert "statisticalMeasure" not in parameters["rain"]
    assert doc["ranges"]["level_std"]["values"] == [0.25] * len(TIME)
    q05, mean = doc["ranges"]["level_q05"]["values"], doc["ranges"]["level"]["values"]
    assert np.allclose(np.array(mean) - np.array(q05), 0.4, atol=1e-5)


def test_asking_for_the_value_brings_its_statistics(edr: Any) -> None:
    doc = covjson(edr, "/edr/collections/reach/cube?bbox=7,44,8,45&parameter-name=level")
    assert list(doc["parameters"]) == ["level", "level_std", "level_q05", "level_q95"]
    assert doc["parameterGroups"][0]["members"] == ["level", "level_std", "level_q05", "level_q95"]
    plain = covjson(edr, "/edr/collections/reach/cube?bbox=7,44,8,45&parameter-name=rain")
    assert list(plain["parameters"]) == ["rain"] and "parameterGroups" not in plain


def test_stations_carry_a_cf_standard_error_as_a_standard_deviation(edr: Any) -> None:
    doc = covjson(edr, "/edr/collections/gauges/area?coords=POLYGON((7 44,9 44,9 46,7 46,7 44))"
                       "&parameter-name=level")
    assert doc["type"] == "CoverageCollection"
    assert doc["parameterGroups"][0]["members"] == ["level", "level_err"]
    assert doc["parameters"]["level_err"]["statisticalMeasure"] == STD


def test_collection_metadata_names_the_measures(edr: Any) -> None:
    engine, headers = edr
    described = engine.http.get("/edr/collections/reach", headers=headers).json()["parameter_names"]
    assert described["level_std"]["statisticalMeasure"] == STD
    assert described["level_q95"]["quantileLevel"] == 0.95
