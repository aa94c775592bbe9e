"""OGC API EDR at /edr on a running engine (SQLite and PostgreSQL stores): every query type answers values
equal to direct xarray selections on the same data, as CoverageJSON valid against the OGC schema and
covjson-pydantic, and as GeoJSON and netCDF; errors are OGC exceptions naming the field."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from access_checks import check_covjson
from access_data import write_collections
from helpers import Engine
from twinengine.auth.models import ApiToken
from twinengine.config import Settings
from twinengine.runtime import Runtime
from twinengine.store.base import utcnow


@pytest.fixture
def edr(engine: Engine) -> tuple[Engine, dict[str, xr.Dataset], dict[str, str]]:
    cubes = write_collections(engine.runtime.settings.data_dir / "collections")
    return engine, cubes, engine.headers(engine.token("uma", "user"))


def get(edr: Any, url: str, status: int = 200) -> Any:
    engine, _, headers = edr
    response = engine.http.get(url, headers=headers)
    assert response.status_code == status, response.text[:500]
    return response


def covjson(edr: Any, url: str) -> dict[str, Any]:
    response = get(edr, url)
    assert response.headers["content-type"] == "application/vnd.cov+json"
    doc: dict[str, Any] = response.json()
    check_covjson(doc)
    return doc


def values(doc: dict[str, Any], name: str) -> np.ndarray:
    rng = doc["ranges"][name]
    # float32 data is written with enough digits to round-trip as float32, not as float64
    flat = np.array([np.nan if v is None else v for v in rng["values"]], dtype="float32")
    data = flat.reshape(rng.get("shape", [-1]))
    names = rng.get("axisNames", [])
    return np.swapaxes(data, -1, -2) if names[-2:] == ["x", "y"] else data  # compare as (..., y, x)


def test_landing_conformance_and_collections(edr: Any) -> None:
    landing = get(edr, "/edr?f=json").json()
    assert {link["rel"] for link in landing["links"]} >= {"self", "service-desc", "conformance", "data"}
    conforms = get(edr, "/edr/conformance").json()["conformsTo"]
    for version in ("1.0", "1.1"):
        for cls in ("core", "collections", "position", "radius", "area", "cube", "trajectory", "corridor",
                    "locations", "instances", "covjson", "geojson"):
            assert f"http://www.opengis.net/spec/ogcapi-edr-1/{version}/conf/{cls}" in conforms
    assert get(edr, "/edr/api").json()["openapi"].startswith("3.")
    listed = get(edr, "/edr/collections").json()["collections"]
    assert [c["id"] for c in listed] == ["atmos", "forecast", "rain"]
    rain = get(edr, "/edr/collections/rain").json()
    assert rain["extent"]["spatial"]["bbox"] == [[5.0, 40.0, 15.0, 49.0]]
    assert rain["extent"]["temporal"]["interval"] == [["2026-03-01T00:00:00Z", "2026-03-10T23:00:00Z"]]
    assert rain["parameter_names"]["rain"]["unit"]["symbol"] == "mm h-1"
    assert rain["parameter_names"]["temp"]["observedProperty"]["id"] == "air_temperature"
    assert {"position", "radius", "area", "cube", "trajectory", "corridor", "locations"} <= set(rain["data_queries"])
    assert "CoverageJSON" in rain["output_formats"] and rain["crs"] == ["CRS84"]
    atmos = get(edr, "/edr/collections/atmos").json()
    assert atmos["extent"]["vertical"]["values"][:2] == ["1000.0", "850.0"]
    assert "instances" in get(edr, "/edr/collections/forecast").json()["data_queries"]


def test_position_series_matches_xarray(edr: Any) -> None:
    cube = edr[1]["rain"]
    doc = covjson(edr, "/edr/collections/rain/position?coords=POINT(8.1 45.3)"
                       "&datetime=2026-03-02T00:00:00Z/2026-03-04T12:00:00Z")
    assert doc["domain"]["domainType"] == "PointSeries"
    expected = cube.sel(lon=8.1, lat=45.3, method="nearest").sel(time=slice("2026-03-02T00", "2026-03-04T12"))
    assert doc["domain"]["axes"]["x"]["values"] == [float(expected.lon)]
    assert doc["domain"]["axes"]["y"]["values"] == [float(expected.lat)]
    assert len(doc["domain"]["axes"]["t"]["values"]) == expected.time.size == 61
    np.testing.assert_array_equal(values(doc, "rain"), expected.rain.values)
    np.testing.assert_array_equal(values(doc, "temp"), expected.temp.values)
    # an open-ended interval, a single parameter and the NaN written as null
    doc = covjson(edr, "/edr/collections/rain/position?coords=POINT(6 48.25)&datetime=../2026-03-01T10:00:00Z"
                       "&parameter-name=rain")
    assert list(doc["ranges"]) == ["rain"] and doc["ranges"]["rain"]["values"][5] is None
    np.testing.assert_array_equal(values(doc, "rain"), cube.rain.sel(lon=6, lat=48.25).values[:11])


def test_position_interpolated_multipoint_and_profiles(edr: Any) -> None:
    cube = edr[1]["rain"]
    doc = covjson(edr, "/edr/collections/rain/position?coords=POINT(8.1 45.3)&method=linear"
                       "&datetime=2026-03-02T05:00:00Z")
    expected = cube.rain.sel(time="2026-03-02T05:00").interp(lon=8.1, lat=45.3)
    assert doc["domain"]["domainType"] == "Point"
    np.testing.assert_allclose(values(doc, "rain"), [float(expected)], rtol=1e-5)
    doc = covjson(edr, "/edr/collections/rain/position?coords=MULTIPOINT((8.1 45.3),(12 47),(8.05 45.26))"
                       "&datetime=2026-03-02T00:00:00Z/2026-03-02T05:00:00Z&parameter-name=rain")
    assert doc["domain"]["domainType"] == "MultiPointSeries"
    assert doc["domain"]["axes"]["composite"]["values"] == [[8.0, 45.25], [12.0, 47.0]]  # two points, one cell
    got = values(doc, "rain")
    assert got.shape == (6, 2)
    window = cube.rain.sel(time=slice("2026-03-02T00", "2026-03-02T05"))
    np.testing.assert_array_equal(got[:, 1], window.sel(lon=12, lat=47).values)
    atmos = edr[1]["atmos"]
    doc = covjson(edr, "/edr/collections/atmos/position?coords=POINT(8.1 45.3)&datetime=2026-03-01T06:00:00Z"
                       "&z=850/500")
    assert doc["domain"]["domainType"] == "VerticalProfile"
    assert doc["domain"]["axes"]["z"]["values"] == [850.0, 700.0, 500.0]
    expected = atmos.ta.sel(time="2026-03-01T06:00", lon=8.1, lat=45.3, method="nearest").sel(plev=[850, 700, 500])
    np.testing.assert_array_equal(values(doc, "ta"), expected.values)
    series = covjson(edr, "/edr/collections/atmos/position?coords=POINT(8 45)&z=R2/1000/-150")
    assert series["type"] == "CoverageCollection" and len(series["coverages"]) == 6  # a profile per time


def test_area_is_masked_by_the_polygon(edr: Any) -> None:
    cube = edr[1]["rain"]
    doc = covjson(edr, "/edr/collections/rain/area?coords=POLYGON((8 45,9 45,9 46,8 45))"
                       "&datetime=2026-03-02T00:00:00Z/2026-03-02T02:00:00Z")
    assert doc["domain"]["domainType"] == "Grid"
    xs, ys = doc["domain"]["axes"]["x"]["values"], doc["domain"]["axes"]["y"]["values"]
    got = values(doc, "rain")
    assert got.shape == (3, len(ys), len(xs)) == (3, 5, 5)
    window = cube.rain.sel(time=slice("2026-03-02T00", "2026-03-02T02")).sel(lon=xs, lat=ys)
    lon, lat = np.meshgrid(xs, ys)
    inside = lat <= 45 + (lon - 8)  # the triangle's cells (centres on the edge count)
    np.testing.assert_array_equal(got[:, inside], window.values[:, inside])
    assert np.isnan(got[:, ~inside]).all()
    multi = covjson(edr, "/edr/collections/rain/area?coords=MULTIPOLYGON(((8 45,8.5 45,8.5 45.5,8 45.5,8 45)),"
                         "((10 47,10.5 47,10.5 47.5,10 47.5,10 47)))&datetime=2026-03-02T00:00:00Z")
    grid = values(multi, "rain")
    assert np.isfinite(grid).sum() == 18 and np.isnan(grid).sum() > 0


def test_a_grid_written_while_read_arrives_whole(edr: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import twinengine.access.covjson as encoder

    monkeypatch.setattr(encoder, "OVERLAP_VALUES", 10)  # this small cube takes the path of large answers
    monkeypatch.setattr(encoder, "PIECE_VALUES", 7)  # and is sent in many pieces
    overlapped = []
    overlappable = encoder._overlappable
    monkeypatch.setattr(encoder, "_overlappable", lambda e: overlapped.append(overlappable(e)) or overlapped[-1])
    cube = edr[1]["rain"]
    url = "/edr/collections/rain/cube?bbox=6,44,10,47&datetime=2026-03-02T00:00:00Z/2026-03-02T09:00:00Z"
    response = get(edr, url)
    assert overlapped and overlapped[0] is not None
    assert int(response.headers["content-length"]) == len(response.content)
    doc = response.json()
    check_covjson(doc)
    expected = cube.rain.sel(time=slice("2026-03-02T00", "2026-03-02T09"), lon=slice(6, 10), lat=slice(47, 44))
    assert expected.size > 50
    np.testing.assert_array_equal(values(doc, "rain"), expected.values)


def test_cube_radius_trajectory_corridor(edr: Any) -> None:
    cube = edr[1]["rain"]
    doc = covjson(edr, "/edr/collections/rain/cube?bbox=8,45,9,45.5&datetime=2026-03-02T00:00:00Z/2026-03-02T03:00:00Z")
    expected = cube.rain.sel(time=slice("2026-03-02T00", "2026-03-02T03"), lon=slice(8, 9), lat=slice(45.5, 45))
    np.testing.assert_array_equal(values(doc, "rain"), expected.values)
    doc = covjson(edr, "/edr/collections/rain/radius?coords=POINT(8 45)&within=30&within-units=km"
                       "&datetime=2026-03-02T00:00:00Z&parameter-name=rain")
    got = values(doc, "rain")[0]
    xs, ys = doc["domain"]["axes"]["x"]["values"], doc["domain"]["axes"]["y"]["values"]
    from twinengine.access.geometry import haversine_km

    lon, lat = np.meshgrid(xs, ys)
    near = haversine_km(lon, lat, 8.0, 45.0) <= 30
    assert near.sum() == 5 and np.isfinite(got[near]).all() and np.isnan(got[~near]).all()
    doc = covjson(edr, "/edr/collections/rain/trajectory?coords=LINESTRINGM(8 45 1772409600, 8.6 45.2 1772420400)"
                       "&parameter-name=rain")
    assert doc["domain"]["domainType"] == "Trajectory"
    for (t, x, y), value in zip(doc["domain"]["axes"]["composite"]["values"], values(doc, "rain"), strict=True):
        assert value == float(cube.rain.sel(time=t.rstrip("Z"), lon=x, lat=y))
    doc = covjson(edr, "/edr/collections/rain/trajectory?coords=LINESTRING(8 45, 8.6 45.2)"
                       "&datetime=2026-03-02T00:00:00Z/2026-03-02T01:00:00Z&parameter-name=temp")
    assert doc["type"] == "CoverageCollection" and len(doc["coverages"]) == 2
    doc = covjson(edr, "/edr/collections/rain/corridor?coords=LINESTRING(8 45, 9 45)&corridor-width=30"
                       "&width-units=km&datetime=2026-03-02T00:00:00Z&parameter-name=rain")
    grid = values(doc, "rain")[0]
    ys = np.array(doc["domain"]["axes"]["y"]["values"])
    assert np.isfinite(grid[np.abs(ys - 45.0) < 0.01]).all()  # the path's row is inside
    assert np.isnan(grid[np.abs(ys - 45.0) > 0.2]).all()  # rows more than 15 km away are not


def test_locations_instances_and_features(edr: Any) -> None:
    engine, cubes, headers = edr
    stations = get(edr, "/edr/collections/rain/locations").json()
    assert stations["features"][0]["id"] == "RR-01"
    doc = covjson(edr, "/edr/collections/rain/locations/RR-01?datetime=2026-03-02T00:00:00Z/2026-03-02T01:00:00Z")
    np.testing.assert_array_equal(values(doc, "rain"), cubes["rain"].rain.sel(lon=8.1, lat=45.3, method="nearest")
                                  .sel(time=slice("2026-03-02T00", "2026-03-02T01")).values)
    runs = get(edr, "/edr/collections/forecast/instances").json()["instances"]
    assert [r["id"] for r in runs] == ["20260301T000000Z", "20260301T120000Z", "20260302T000000Z"]
    doc = covjson(edr, "/edr/collections/forecast/instances/20260301T120000Z/position?coords=POINT(8 45)")
    fc = cubes["forecast"].tp.sel(forecast_reference_time="2026-03-01T12:00", lon=8, lat=45)
    np.testing.assert_array_equal(values(doc, "tp"), fc.values)
    assert doc["domain"]["axes"]["t"]["values"][-1] == "2026-03-02T12:00:00Z"
    body = {"class": "od", "stream": "enfo", "param": "rain",
            "feature": {"type": "timeseries", "points": [[45.3, 8.1]], "time_axis": "date",
                        "range": {"start": "2026-03-02T00:00:00Z", "end": "2026-03-02T05:00:00Z"}}}
    response = engine.http.post("/edr/collections/rain/features", json=body, headers=headers)
    assert response.status_code == 200, response.text
    same = covjson(edr, "/edr/collections/rain/position?coords=POINT(8.1 45.3)&parameter-name=rain"
                        "&datetime=2026-03-02T00:00:00Z/2026-03-02T05:00:00Z")
    assert response.json() == same
    polygon = {"type": "polygon", "shape": [[45, 8], [45, 9], [46, 9], [45, 8]], "param": "rain",
               "datetime": "2026-03-02T00:00:00Z"}
    response = engine.http.post("/edr/collections/rain/features", json=polygon, headers=headers)
    assert response.status_code == 200 and response.json()["domain"]["domainType"] == "Grid"
    check_covjson(response.json())
    for feature in ({"type": "circle", "center": [[45, 8]], "radius": 30, "radius_units": "km"},
                    {"type": "boundingbox", "points": [[45, 8], [45.5, 9]]},
                    {"type": "trajectory", "points": [[45, 8], [45.2, 8.6]]},
                    {"type": "trajectory", "points": [[45, 8], [45.2, 8.6]], "inflation": 0.1}):
        request = {"feature": feature, "parameters": ["rain"], "datetime": "2026-03-02T00:00:00Z"}
        response = engine.http.post("/edr/collections/rain/features", json=request, headers=headers)
        assert response.status_code == 200, response.text
        check_covjson(response.json())
    atmos = {"feature": {"type": "verticalprofile", "points": [[45, 8]], "range": {"start": 900, "end": 600}},
             "datetime": "2026-03-01T00:00:00Z"}
    doc = engine.http.post("/edr/collections/atmos/features", json=atmos, headers=headers).json()
    assert doc["domain"]["domainType"] == "VerticalProfile" and doc["domain"]["axes"]["z"]["values"] == [850.0, 700.0]


def test_geojson_and_netcdf(edr: Any) -> None:
    cube = edr[1]["rain"]
    url = "/edr/collections/rain/position?coords=POINT(8.1 45.3)&datetime=2026-03-02T00:00:00Z/2026-03-02T03:00:00Z"
    response = get(edr, url + "&f=GeoJSON")
    assert response.headers["content-type"] == "application/geo+json"
    feature = response.json()["features"][0]
    assert feature["geometry"]["coordinates"] == [8.0, 45.25] and len(feature["properties"]["datetime"]) == 4
    expected = cube.rain.sel(lon=8.0, lat=45.25).sel(time=slice("2026-03-02T00", "2026-03-02T03")).values
    np.testing.assert_array_equal(np.array(feature["properties"]["rain"], dtype="float32"), expected)
    response = get(edr, "/edr/collections/rain/cube?bbox=8,45,9,45.5&datetime=2026-03-02T00:00:00Z&f=NetCDF")
    assert response.headers["content-type"] == "application/x-netcdf"
    ds = xr.open_dataset(io.BytesIO(response.content), engine="h5netcdf")
    assert ds.attrs["Conventions"] == "CF-1.10" and ds.rain.attrs["units"] == "mm h-1"
    np.testing.assert_array_equal(ds.rain.values, cube.rain.sel(time=["2026-03-02T00"], lon=slice(8, 9),
                                                                lat=slice(45.5, 45)).values)


@pytest.mark.parametrize(("url", "field", "status"), [
    ("/edr/collections/rain/position?coords=POINT(8.1 45.3", "coords", 400),
    ("/edr/collections/rain/position?coords=POLYGON((8 45,9 45,9 46,8 45))", "coords", 400),
    ("/edr/collections/rain/position?coords=POINT(8 95)", "coords", 400),
    ("/edr/collections/rain/position?coords=POINT(8 45)&datetime=2027-01-01T00:00:00Z", "datetime", 400),
    ("/edr/collections/rain/position?coords=POINT(8 45)&datetime=2026-13-01", "datetime", 400),
    ("/edr/collections/rain/position?coords=POINT(8 45)&parameter-name=snow", "parameter-name", 400),
    ("/edr/collections/rain/position?coords=POINT(8 45)&z=850", "z", 400),
    ("/edr/collections/rain/position?coords=POINT(8 45)&crs=EPSG:3857", "crs", 400),
    ("/edr/collections/rain/position?coords=POINT(8 45)&f=xml", "f", 400),
    ("/edr/collections/rain/area?coords=POLYGON((8 45,9 46,9 45,8 46,8 45))", "coords", 400),
    ("/edr/collections/rain/area?coords=POLYGON((8.01 45.01,8.02 45.01,8.02 45.02,8.01 45.01))", "coords", 400),
    ("/edr/collections/rain/radius?coords=POINT(8 45)&within=10", "within-units", 400),
    ("/edr/collections/rain/radius?coords=POINT(8 45)&within=abc&within-units=km", "within", 400),
    ("/edr/collections/rain/cube?bbox=8,45,9", "bbox", 400),
    ("/edr/collections/rain/cube?bbox=8,45,9,44", "bbox", 400),
    ("/edr/collections/rain/cube?bbox=-400,45,400,45.5", "bbox", 400),  # columns named again, a turn apart
    ("/edr/collections/rain/cube?bbox=-1e308,45,1e308,45.5", "bbox", 400),
    ("/edr/collections/rain/position?coords=POINT(1e308 45)", "coords", 400),
    ("/edr/collections/rain/locations/XX-99", None, 404),
    ("/edr/collections/nope/position?coords=POINT(8 45)", None, 404),
])
def test_bad_queries_are_ogc_exceptions_naming_the_field(edr: Any, url: str, field: str | None, status: int) -> None:
    body = get(edr, url, status).json()
    assert body["code"] and body["description"] and body["status"] == status and body["detail"]
    if field:
        assert body["details"][0]["loc"] == field, body


@pytest.mark.parametrize(("feature", "field"), [
    ({"type": "polygon", "shape": [[45, 8], [45, 9]]}, "feature.shape"),  # a ring needs three corners
    ({"type": "polygon", "shape": [[45, 8]]}, "feature.shape"),
    ({"type": "polygon", "shape": [[[45, 8], [45, 9], [46, 9]], [[45, 8], [46, 9]]]}, "feature.shape[1]"),
    ({"type": "polygon", "shape": [[45, 8], [45, 9], [95, 9]]}, "feature.shape[2]"),
    ({"type": "polygon", "shape": [[45, 8], [46, 9], [45, 9], [46, 8], [45, 8]]}, "feature.shape"),  # crosses itself
    ({"type": "polygon"}, "feature.shape"),
    ({"type": "polygon", "shape": [[]]}, "feature.shape[0]"),  # an empty point (a 500, found by schemathesis)
    ({"type": "boundingbox", "points": [[45, 8], [45.5, 9], [46, 9]]}, "feature.points"),
    ({"type": "timeseries", "points": [[-91, 8]]}, "feature.points[0]"),
    ({"type": "boundingbox", "points": [[45, -1e308], [45.5, 1e308]]}, "feature.points[0]"),
])
def test_bad_features_are_ogc_exceptions_naming_the_field(edr: Any, feature: dict[str, Any], field: str) -> None:
    engine, _, headers = edr
    request = {"feature": feature, "parameters": ["rain"], "datetime": "2026-03-02T00:00:00Z"}
    response = engine.http.post("/edr/collections/rain/features", json=request, headers=headers)
    assert response.status_code == 400, response.text[:500]
    body = response.json()
    assert body["code"] and body["details"][0]["loc"] == field, body


def test_size_limit_refuses_before_reading_and_cache_serves_repeats(edr: Any) -> None:
    engine = edr[0]
    access = engine.runtime.access
    access.max_values = 5_000
    access.cache.clear()
    body = get(edr, "/edr/collections/rain/cube?bbox=5,40,15,49", 413).json()
    values_asked = 240 * 37 * 41 * 2
    assert body["code"] == "ResponseTooLarge" and f"{values_asked:,}" in body["description"]
    assert body["details"][0]["values"] == values_asked
    assert len(access.cache) == 0  # nothing was read
    url = "/edr/collections/rain/position?coords=POINT(8 45)&parameter-name=rain"
    first = get(edr, url).content
    misses = len(access.cache)
    assert misses == 5  # 240 hours in chunks of 48: exactly the five chunks of that column
    second = get(edr, url).content
    assert first == second and len(access.cache) == misses
    reader = access.reader("rain", access.source.open("rain"), "rain")
    assert reader.stats.hits == 0  # per-query stats are moved to the extraction; the cache did the work


@pytest.mark.parametrize("url", [
    "/edr/collections/rain/area?coords=POLYGON((6 41, 14 41, 14 48, 6 48, 6 41))",
    "/edr/collections/rain/position?coords=MULTIPOINT((6 41),(7 42),(8 43))",
    "/edr/collections/rain/corridor?coords=LINESTRING(6 41, 14 48)&corridor-width=200&width-units=km",
])
def test_every_query_type_is_refused_with_its_size_before_reading(edr: Any, url: str) -> None:
    access = edr[0].runtime.access
    access.max_values = 100
    access.cache.clear()
    body = get(edr, url, 413).json()
    details = body["details"][0]
    assert body["status"] == 413 and details["loc"] == "size" and details["values"] > 100
    assert details["estimated_bytes"] > details["values"] and f"{details['values']:,}" in body["description"]
    assert len(access.cache) == 0 and access.cache.size == 0  # nothing was read


def test_chunk_cache_takes_its_limit_from_the_settings(edr: Any) -> None:
    runtime = edr[0].runtime
    assert runtime.access.cache.capacity == runtime.settings.edr_chunk_cache_bytes > 0


def test_read_threads_take_their_number_from_the_settings(tmp_path: Path) -> None:
    runtime = Runtime.from_settings(Settings(data_dir=tmp_path, edr_read_workers=7))
    try:
        assert runtime.access.workers == 7 and runtime.access.pool._max_workers == 7
    finally:
        runtime.close()


def test_a_revoked_token_is_refused_at_once(edr: Any) -> None:
    engine = edr[0]
    admin = engine.sdk(engine.admin_token)
    issued = admin.create_token("rita", "user")
    url = "/edr/collections/rain/position?coords=POINT(8 45)"
    assert engine.http.get(url, headers=engine.headers(issued.token)).status_code == 200
    admin.revoke_token(issued.jti)
    response = engine.http.get(url, headers=engine.headers(issued.token))
    assert response.status_code == 401 and "revoked" in response.json()["description"]


def test_a_token_revoked_by_another_process_is_refused_within_the_recheck_interval(edr: Any) -> None:
    engine = edr[0]
    runtime = engine.runtime
    issued = engine.sdk(engine.admin_token).create_token("rosa", "user")
    url = "/edr/collections/rain/position?coords=POINT(8 45)"
    assert engine.http.get(url, headers=engine.headers(issued.token)).status_code == 200
    with runtime.db.session() as session:  # what a second engine process on the same store would do
        record = session.get(ApiToken, issued.jti)
        assert record is not None
        record.revoked_at = utcnow()
    interval = runtime.settings.token_recheck.total_seconds()
    assert 0 < interval <= 5
    deadline = time.monotonic() + interval + 1
    while engine.http.get(url, headers=engine.headers(issued.token)).status_code == 200:
        assert time.monotonic() < deadline, "a revoked token was still accepted after settings.token_recheck"
        time.sleep(0.05)


def test_tokens_are_required(edr: Any) -> None:
    engine = edr[0]
    response = engine.http.get("/edr/collections")
    assert response.status_code == 401 and response.json()["code"] == "AuthenticationRequired"


def test_queries_outside_the_extent_are_400_naming_coords_and_the_extent(edr: Any) -> None:
    # rain: cell centres at longitude 5..15 and latitude 40..49, every 0.25°: cell edges 4.875..15.125, 39.875..49.125
    for url in ("position?coords=POINT(100 10)", "position?coords=POINT(15.2 45)",
                "position?coords=MULTIPOINT((8 45),(100 10))", "position?coords=POINT(8 49.2)",
                "radius?coords=POINT(100 10)&within=10&within-units=km",
                "area?coords=POLYGON((100 10,101 10,101 11,100 10))"):
        body = get(edr, f"/edr/collections/rain/{url}", 400).json()
        assert body["details"][0]["loc"] == "coords", (url, body)
        assert "4.875..15.125" in body["detail"] and "39.875..49.125" in body["detail"], (url, body)
    edge = covjson(edr, "/edr/collections/rain/position?coords=POINT(15.1 45)")  # within half a cell: the edge cell
    assert edge["domain"]["axes"]["x"]["values"] == [15.0]
    near = covjson(edr, "/edr/collections/rain/radius?coords=POINT(15.2 45)&within=40&within-units=km")
    assert max(near["domain"]["axes"]["x"]["values"]) == 15.0
