"""The official ``openeo`` Python client, unmodified, against a live engine: connect, authenticate with an
engine token, list collections and processes, compute synchronously and as a batch job; the numbers equal
xarray's on the same data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openeo
import pytest
import xarray as xr

from helpers import LiveEngine
from workflow_data import write_collection

BBOX = {"west": 7.2, "south": 46.2, "east": 8.2, "north": 46.8}
INTERVAL = ["2026-03-01", "2026-03-02T12:00:00Z"]


def expected_mean(ds: xr.Dataset) -> xr.DataArray:
    cut = ds["rain"].sel(lon=slice(BBOX["west"], BBOX["east"]), lat=slice(BBOX["south"], BBOX["north"]))
    end = np.datetime64("2026-03-02T12:00:00") - np.timedelta64(1, "ns")  # the interval's end is excluded
    cut = cut.sel(time=slice(np.datetime64("2026-03-01"), end))
    return cut.mean("time")


@pytest.fixture
def connection(live: LiveEngine) -> openeo.Connection:
    with live.client() as admin:
        token = admin.create_token("uma", "user").token
    con = openeo.connect(live.url)
    con.authenticate_basic("uma", token)
    return con


@pytest.mark.slow
def test_official_client_sync_and_batch(live: LiveEngine, connection: openeo.Connection, tmp_path: Path) -> None:
    ds = write_collection(live.settings.data_dir / "collections")
    assert connection.describe_account()["user_id"] == "uma"
    assert "rain" in [c["id"] for c in connection.list_collections()]
    process_ids = {p["id"] for p in connection.list_processes()}
    assert {"load_collection", "filter_bbox", "reduce_dimension", "save_result", "run_udf"} <= process_ids
    cube = (connection.load_collection("rain", bands=["rain"])
            .filter_bbox(**BBOX).filter_temporal(INTERVAL).reduce_dimension(dimension="t", reducer="mean"))

    cube.download(tmp_path / "out.nc")
    got = xr.open_dataset(tmp_path / "out.nc", engine="h5netcdf")
    want = expected_mean(ds)
    np.testing.assert_allclose(got["rain"].values, want.values, rtol=1e-6)
    assert got["rain"].shape == (5, 6)

    job = cube.save_result(format="netCDF").create_job(title="mean rain")
    job.start_and_wait(max_poll_interval=0.5, soft_error_max=0)
    assert job.status() == "finished"
    files = job.get_results().download_files(tmp_path / "job")
    data = [f for f in files if f.suffix == ".nc"]
    assert [f.name for f in data] == ["result.nc"]
    np.testing.assert_allclose(xr.open_dataset(data[0], engine="h5netcdf")["rain"].values, want.values, rtol=1e-6)
    assert any("result.nc" in log["message"] for log in job.logs())  # kept, or reused from the cache
    # the results' item says where they lie: the kept cells' edges (centres half a cell out), as a polygon too
    item = job.get_results().get_metadata()
    kept = xr.open_dataset(data[0], engine="h5netcdf")
    xs, ys = (kept[name].values for name in (("x", "y") if "x" in kept.coords else ("lon", "lat")))
    half_x, half_y = abs(xs[1] - xs[0]) / 2, abs(ys[1] - ys[0]) / 2
    west, south, east, north = xs.min() - half_x, ys.min() - half_y, xs.max() + half_x, ys.max() + half_y
    np.testing.assert_allclose(item["bbox"], [west, south, east, north], atol=1e-9)
    assert item["geometry"]["type"] == "Polygon"
    np.testing.assert_allclose(item["geometry"]["coordinates"][0],
                               [[west, south], [east, south], [east, north], [west, north], [west, south]], atol=1e-9)
    assert "start_datetime" not in item["properties"]  # reduced over time: no time left to say
    assert job.job_id in [j["id"] for j in connection.list_jobs()]


def test_invalid_graph_and_auth_errors(live: LiveEngine, connection: openeo.Connection) -> None:
    write_collection(live.settings.data_dir / "collections")
    bad = {"process_graph": {"x": {"process_id": "no_such_process", "arguments": {}, "result": True}}}
    with pytest.raises(openeo.rest.OpenEoApiError) as info:
        connection.execute(bad)
    assert info.value.code == "ProcessUnsupported" and "'x'" in info.value.message
    assert connection.validate_process_graph(bad)[0]["code"] == "ProcessUnsupported"
    missing = {"process_graph": {"l": {"process_id": "load_collection", "arguments": {"id": "rain"}, "result": True}}}
    assert connection.validate_process_graph(missing)[0]["code"] == "ProcessParameterMissing"
    with pytest.raises(openeo.rest.OpenEoApiError) as info:
        openeo.connect(live.url).authenticate_basic("uma", "not-a-token")
    assert info.value.http_status_code == 401


def test_a_geojson_spatial_extent_loads_the_cells_whose_centre_it_holds(connection: openeo.Connection,
                                                                         live: LiveEngine, tmp_path: Path) -> None:
    """openEO 1.2's ``load_collection`` takes GeoJSON polygons as well as a bounding box: a cell is loaded
    when its centre lies in a polygon. A triangle, so that cells inside its bounds are left out too; no cell
    centre lies on its edges, so the expected cells follow from its three inequalities alone."""
    ds = write_collection(live.settings.data_dir / "collections")
    triangle = {"type": "Polygon", "coordinates": [[[7.1, 46.1], [8.5, 46.1], [7.1, 46.95], [7.1, 46.1]]]}
    feature = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": triangle},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": []}}]}  # empty: ignored
    for extent in (triangle, feature):
        cube = (connection.load_collection("rain", spatial_extent=extent, temporal_extent=INTERVAL, bands=["rain"])
                .reduce_dimension(dimension="t", reducer="mean"))
        cube.download(tmp_path / "zone.nc")
        got = xr.open_dataset(tmp_path / "zone.nc", engine="h5netcdf")["rain"].load()
        end = np.datetime64("2026-03-02T12:00:00") - np.timedelta64(1, "ns")
        cut = ds["rain"].sel(lon=slice(7.1, 8.5), lat=slice(46.1, 46.95),
                             time=slice(np.datetime64("2026-03-01"), end))
        lon, lat = np.meshgrid(cut["lon"].values, cut["lat"].values)
        inside = (lon >= 7.1) & (lat >= 46.1) & ((lon - 7.1) / 1.4 + (lat - 46.1) / 0.85 <= 1)
        want = cut.where(xr.DataArray(inside, dims=("lat", "lon"), coords={"lat": cut["lat"], "lon": cut["lon"]}))
        np.testing.assert_allclose(got.values, want.mean("time").values, rtol=1e-6, equal_nan=True)
        assert 0 < int(inside.sum()) < inside.size and np.isnan(got.values).sum() == inside.size - inside.sum()
    line = {"type": "LineString", "coordinates": [[7.1, 46.1], [8.5, 46.1]]}  # the client refuses it itself
    graph = {"load": {"process_id": "load_collection", "arguments": {"id": "rain", "spatial_extent": line,
                                                                     "temporal_extent": INTERVAL}},
             "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "load"}, "format": "netCDF"},
                      "result": True}}
    with pytest.raises(openeo.rest.OpenEoApiError, match="spatial_extent: a GeoJSON extent is a Polygon"):
        connection.download(graph, tmp_path / "x.nc")
    bowtie = {"type": "Polygon", "coordinates": [[[7.1, 46.1], [8.5, 46.9], [8.5, 46.1], [7.1, 46.9], [7.1, 46.1]]]}
    with pytest.raises(openeo.rest.OpenEoApiError, match="spatial_extent: the polygon is not valid: Self-inter"):
        connection.load_collection("rain", spatial_extent=bowtie, temporal_extent=INTERVAL).download(tmp_path / "y.nc")
