"""The field's data formats through the same paths: each file is written here by its own library and served
by EDR with values equal to what that library (xarray, h5py, cfgrib, rioxarray, pandas) reads from it
directly; ``load_collection`` reads every gridded format; a file that cannot be opened answers 4xx naming it.
Runs on SQLite only: the store plays no part in reading files (one engine for the module keeps it quick)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from starlette.testclient import TestClient

import format_data as fd
from access_checks import check_covjson
from helpers import Engine, need_modules
from twinengine.api import create_app
from twinengine.config import Settings
from twinengine.runtime import Runtime


@dataclass(frozen=True)
class Grid:
    """What a format's own library reads from the file: values (t?, y, x), the axes, the parameter's name."""

    values: np.ndarray
    ys: np.ndarray
    xs: np.ndarray
    times: np.ndarray | None
    parameter: str


def _zarr(path: Path) -> Grid:
    da = xr.open_zarr(path)["rain"]
    return Grid(da.values, da["lat"].values, da["lon"].values, da["time"].values, "rain")


def _netcdf(path: Path) -> Grid:
    da = xr.open_dataset(path, engine="h5netcdf")["rain"]
    return Grid(da.values, da["lat"].values, da["lon"].values, da["time"].values, "rain")


def _hdf5(path: Path) -> Grid:
    import h5py

    with h5py.File(path, "r") as f:
        times = np.datetime64("1970-01-01") + f["time"][...].astype("timedelta64[s]")
        return Grid(f["rain"][...], f["lat"][...], f["lon"][...], times.astype("datetime64[ns]"), "rain")


def _grib(path: Path) -> Grid:
    da = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})["tprate"]
    return Grid(da.values, da["latitude"].values, da["longitude"].values, da["valid_time"].values, "tprate")


def _geotiff(path: Path) -> Grid:
    import rioxarray

    da = rioxarray.open_rasterio(path)
    assert isinstance(da, xr.DataArray)
    return Grid(da.sel(band=1).values, da["y"].values, da["x"].values, None, "rain")


# file name -> (writer, direct reader, modules the format needs)
GRIDDED: dict[str, tuple[Callable[[Path], Any], Callable[[Path], Grid], tuple[str, ...]]] = {
    "rain-v2.zarr": (lambda p: fd.write_zarr(p, 2), _zarr, ()),
    "rain-v3.zarr": (lambda p: fd.write_zarr(p, 3), _zarr, ()),
    "rain-nc.nc": (fd.write_netcdf, _netcdf, ()),
    "rain-h5.h5": (lambda p: fd.write_hdf5(p, scales=True), _hdf5, ()),
    "rain-bare.hdf5": (lambda p: fd.write_hdf5(p, scales=False), _hdf5, ()),
    "rain-grib.grib2": (fd.write_grib, _grib, ("cfgrib", "eccodes")),
    "rain-tif.tif": (fd.write_geotiff, _geotiff, ()),
}
TABLES = {"gauges-csv.csv": fd.write_csv, "gauges-pq.parquet": fd.write_parquet}


def _corrupt(folder: Path) -> dict[str, str]:
    """Files that cannot be opened, and a word each error must say besides the file's name."""
    good = folder / "rain-nc.nc"
    (folder / "broken.nc").write_bytes(good.read_bytes()[:300])
    (folder / "garbage.grib2").write_bytes(b"GRIB" + bytes(range(256)) * 4)
    (folder / "junk.tif").write_bytes(b"II*\x00" + b"\x00" * 64)
    fd.write_zarr(folder / "damaged.zarr", 3)
    (folder / "damaged.zarr" / "zarr.json").write_text("{ not json")
    pd.DataFrame({"station": ["a"], "value": [1.0]}).to_csv(folder / "nolonlat.csv", index=False)
    frame = fd.station_frame()
    pd.concat([frame, frame.iloc[:1]]).to_csv(folder / "twice.csv", index=False)
    out = {"broken.nc": "netCDF", "junk.tif": "GeoTIFF", "damaged.zarr": "zarr", "nolonlat.csv": "longitude",
           "twice.csv": "more than one row"}
    if "rain-grib.grib2" in {p.name for p in folder.iterdir()}:
        fd.write_grib_without_grid(folder / "nogrid.grib2")
        out |= {"garbage.grib2": "GRIB", "nogrid.grib2": "reduced_gg"}
    return out


@dataclass
class Served:
    engine: Engine
    folder: Path
    headers: dict[str, str]
    grids: dict[str, Grid]
    tables: dict[str, pd.DataFrame]
    corrupt: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("formats")
    folder = data / "collections"
    folder.mkdir()
    grids = {}
    for name, (write, read, modules) in GRIDDED.items():
        if all(__import__("importlib").util.find_spec(m) for m in modules):
            write(folder / name)
            grids[name] = read(folder / name)
    tables = {name: write(folder / name) for name, write in TABLES.items()}
    corrupt = _corrupt(folder)
    (folder / "notes.xyz").write_text("not data")
    runtime = Runtime.from_settings(Settings(data_dir=data))
    app = create_app(runtime=runtime)
    try:
        with TestClient(app) as http:
            engine = Engine(runtime=runtime, app=app, http=http, admin_token="")
            yield Served(engine, folder, engine.headers(engine.token("uma", "user")), grids, tables, corrupt)
    finally:
        runtime.close()


def _id(name: str) -> str:
    return name.split(".")[0]


def _get(served: Served, url: str, status: int = 200) -> Any:
    response = served.engine.http.get(url, headers=served.headers)
    assert response.status_code == status, f"{url}: {response.status_code} {response.text[:400]}"
    return response


def _grid_values(doc: dict[str, Any], name: str) -> np.ndarray:
    """A CoverageJSON range as (..., y, x), None as NaN."""
    rng = doc["ranges"][name]
    flat = np.array([np.nan if v is None else v for v in rng["values"]], dtype="float64")
    data = flat.reshape(rng.get("shape", [-1]))
    return np.swapaxes(data, -1, -2) if rng.get("axisNames", [])[-2:] == ["x", "y"] else data


def test_grib_is_required_in_ci() -> None:
    need_modules("formats", "cfgrib", "eccodes", "uproot", hint="pip install -e '.[formats]'")


def test_every_format_is_listed_once(served: Served) -> None:
    listed = {c["id"]: c for c in _get(served, "/edr/collections").json()["collections"]}
    expected = {_id(n) for n in [*served.grids, *served.tables]}
    assert set(listed) == expected  # the corrupt files and notes.xyz are left out, not a failed listing
    for name, grid in served.grids.items():
        doc = listed[_id(name)]
        west, south, east, north = doc["extent"]["spatial"]["bbox"][0]
        assert (west, east) == (grid.xs.min(), grid.xs.max()) and (south, north) == (grid.ys.min(), grid.ys.max())
        assert grid.parameter in doc["parameter_names"]
    info = {c.id: c.format for c in served.engine.runtime.collections.list()}
    assert info["rain-v2"] == info["rain-v3"] == "zarr" and info["rain-bare"] == "hdf5"
    assert info["gauges-pq"] == "parquet" and info.get("rain-grib", "grib") == "grib"


@pytest.mark.parametrize("name", list(GRIDDED))
def test_gridded_format_served_by_edr_equals_its_library(served: Served, name: str) -> None:
    if name not in served.grids:
        need_modules("formats", *GRIDDED[name][2], hint="pip install -e '.[formats]'")
    grid, cid = served.grids[name], _id(name)
    i, j = 3, 2  # a grid point: (8.25, 46.0)
    doc = _get(served, f"/edr/collections/{cid}/position?coords=POINT({grid.xs[i]} {grid.ys[j]})").json()
    check_covjson(doc)
    got = np.array(doc["ranges"][grid.parameter]["values"], dtype="float64")
    np.testing.assert_allclose(got, grid.values[..., j, i].reshape(-1), rtol=1e-6)
    if grid.times is not None:
        assert doc["domain"]["axes"]["t"]["values"][0] == str(np.datetime_as_string(grid.times[0], unit="s")) + "Z"
    cube = _get(served, f"/edr/collections/{cid}/cube?bbox=7.7,45.7,8.3,46.3").json()
    check_covjson(cube)
    xs = (grid.xs >= 7.7) & (grid.xs <= 8.3)
    ys = (grid.ys >= 45.7) & (grid.ys <= 46.3)
    expected = grid.values[..., ys, :][..., xs]
    got = _grid_values(cube, grid.parameter)
    # the cube is written south-to-north or as stored: compare along the axes the answer names
    if cube["domain"]["axes"]["y"]["values"][0] != grid.ys[ys][0]:
        got = got[..., ::-1, :]
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-6)
    nc = _get(served, f"/edr/collections/{cid}/position?coords=POINT({grid.xs[i]} {grid.ys[j]})&f=NetCDF")
    from_nc = xr.open_dataset(io.BytesIO(nc.content), engine="h5netcdf")[grid.parameter].values
    np.testing.assert_allclose(from_nc.reshape(-1), grid.values[..., j, i].reshape(-1), rtol=1e-6)


@pytest.mark.parametrize("name", list(GRIDDED))
def test_load_collection_reads_each_gridded_format(served: Served, name: str) -> None:
    if name not in served.grids:
        need_modules("formats", *GRIDDED[name][2], hint="pip install -e '.[formats]'")
    grid = served.grids[name]
    graph = {"process_graph": {
        "load": {"process_id": "load_collection",
                 "arguments": {"id": _id(name), "spatial_extent": {"west": 7.7, "south": 45.7, "east": 8.3,
                                                                     "north": 46.3},
                               "temporal_extent": None, "bands": [grid.parameter]}},
        "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "load"}, "format": "netCDF"},
                 "result": True}}}
    answer = served.engine.http.post("/openeo/1.2/result", json={"process": graph}, headers=served.headers)
    assert answer.status_code == 200, answer.text[:400]
    result = xr.open_dataset(io.BytesIO(answer.content), engine="h5netcdf")
    var = result[grid.parameter] if grid.parameter in result else result[next(iter(result.data_vars))]
    xs = (grid.xs >= 7.7) & (grid.xs <= 8.3)
    ys = (grid.ys >= 45.7) & (grid.ys <= 46.3)
    expected = grid.values[..., ys, :][..., xs]
    got = var.transpose(*[d for d in ("t", "y", "x") if d in var.dims]).values
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("name", list(TABLES))
def test_station_table_is_a_point_collection(served: Served, name: str) -> None:
    cid, frame = _id(name), served.tables[name]
    meta = _get(served, f"/edr/collections/{cid}").json()
    assert set(meta["data_queries"]) == {"position", "radius", "area", "cube", "locations"}
    assert meta["parameter_names"]["rain"]["unit"]["symbol"] == "mm"
    assert meta["extent"]["spatial"]["bbox"] == [[7.9, 45.7, 8.6, 46.3]]
    located = _get(served, f"/edr/collections/{cid}/locations").json()
    assert {f["id"] for f in located["features"]} == set(fd.STATIONS)

    def series(station: str, column: str) -> list[float | None]:
        rows = frame[frame["station"] == station].set_index("time")[column]
        times = [str(pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ")) for t in fd.TIMES]
        return [None if t not in rows.index else float(rows[t]) for t in times]

    one = _get(served, f"/edr/collections/{cid}/locations/RR-03").json()
    check_covjson(one)
    assert one["domain"]["domainType"] == "PointSeries" and one["ranges"]["rain"]["values"] == series("RR-03",
                                                                                                     "rain [mm]")
    assert one["domain"]["axes"]["x"]["values"] == [8.6]
    near = _get(served, f"/edr/collections/{cid}/position?coords=POINT(8.25 46.1)&parameter-name=level").json()
    check_covjson(near)
    assert near["ranges"]["level"]["values"] == series("RR-01", "level [m]") and "rain" not in near["ranges"]
    within = _get(served, f"/edr/collections/{cid}/radius?coords=POINT(8.262 46.081)&within=40&within-units=km"
                          "&datetime=2026-03-01T06:00:00Z/2026-03-01T18:00:00Z").json()
    check_covjson(within)
    assert within["type"] == "CoverageCollection" and len(within["coverages"]) == 2  # RR-01 and RR-02 (31 km)
    assert [c["domain"]["axes"]["x"]["values"][0] for c in within["coverages"]] == [8.262, 7.9]
    assert within["coverages"][0]["ranges"]["rain"]["values"] == series("RR-01", "rain [mm]")[1:]
    area = _get(served, f"/edr/collections/{cid}/area?coords=POLYGON((8.4 45.6,8.8 45.6,8.8 45.8,8.4 45.8,"
                        "8.4 45.6))").json()
    check_covjson(area)
    assert len(area["coverages"]) == 1 and area["coverages"][0]["ranges"]["rain"]["values"][1] is None  # the gap
    box = _get(served, f"/edr/collections/{cid}/cube?bbox=7.8,45.6,8.7,46.4").json()
    assert len(box["coverages"]) == 3
    geo = _get(served, f"/edr/collections/{cid}/locations/RR-02?f=GeoJSON").json()
    assert geo["features"][0]["geometry"]["coordinates"] == [7.9, 46.3]
    for query, field in (("trajectory?coords=LINESTRING(7.9 46.3,8.6 45.7)", "query"),
                         ("corridor?coords=LINESTRING(7.9 46.3,8.6 45.7)&corridor-width=5&width-units=km", "query"),
                         ("position?coords=POINT(8 46)&method=linear", "method"),
                         ("position?coords=POINT(8 46)&z=10", "z"),
                         ("area?coords=POLYGON((0 0,1 0,1 1,0 1,0 0))", "coords"),
                         ("position?coords=POINT(8 46)&datetime=2027-01-01T00:00:00Z", "datetime")):
        refused = _get(served, f"/edr/collections/{cid}/{query}", status=400).json()
        assert refused["details"][0]["loc"] == field, refused
    _get(served, f"/edr/collections/{cid}/locations/RR-99", status=404)


def test_files_that_cannot_be_opened_answer_4xx_naming_them(served: Served) -> None:
    for name, word in served.corrupt.items():
        cid = _id(name)
        for url in (f"/edr/collections/{cid}", f"/edr/collections/{cid}/position?coords=POINT(8 46)"):
            body = _get(served, url, status=422).json()
            assert body["code"] == "UnreadableFile" and name in body["description"], body
            assert word.lower() in body["description"].lower(), body
            assert str(served.folder) not in body["description"]  # no server paths in answers
    missing = _get(served, "/edr/collections/notes", status=404).json()
    assert "notes.xyz" in missing["description"]
    graph = {"process_graph": {
        "load": {"process_id": "load_collection", "arguments": {"id": "broken", "spatial_extent": None,
                                                                "temporal_extent": None}},
        "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "load"}, "format": "netCDF"},
                 "result": True}}}
    answer = served.engine.http.post("/openeo/1.2/result", json={"process": graph}, headers=served.headers)
    assert 400 <= answer.status_code < 500 and "broken.nc" in answer.text, answer.text[:400]


@pytest.mark.parametrize(("cid", "query"), [
    ("rain-nc", "position?coords=POINT(8.25 46)"),
    ("rain-nc", "position?coords=MULTIPOINT((8.25 46),(7.5 45.5))"),
    ("rain-nc", "cube?bbox=7.7,45.7,8.3,46.3"),
    ("rain-nc", "area?coords=POLYGON((7.6 45.6,8.4 45.6,8.4 46.1,7.6 45.6))"),
    ("rain-nc", "trajectory?coords=LINESTRING(7.5 45.5,8.75 46.5)&datetime=2026-03-01T06:00:00Z"),
    ("rain-tif", "position?coords=POINT(8 46.25)"),
    ("gauges-csv", "radius?coords=POINT(8.262 46.081)&within=40&within-units=km"),
    ("gauges-pq", "locations/RR-03"),
])
def test_sdk_decodes_coveragejson_as_the_engine_writes_netcdf(served: Served, cid: str, query: str) -> None:
    """``Coverage.to_xarray()`` on the CoverageJSON answer equals the engine's own netCDF answer."""
    from twinengine.client_types import Coverage

    decoded = Coverage(_get(served, f"/edr/collections/{cid}/{query}").json()).to_xarray()
    sep = "&" if "?" in query else "?"
    written = xr.open_dataset(io.BytesIO(_get(served, f"/edr/collections/{cid}/{query}{sep}f=NetCDF").content),
                              engine="h5netcdf").load()
    assert set(decoded.data_vars) == set(written.data_vars)
    for name in written.data_vars:
        assert decoded[name].dims == written[name].dims, name
        np.testing.assert_allclose(decoded[name].values, written[name].values, rtol=1e-6)
        assert decoded[name].attrs.get("units") == written[name].attrs.get("units")
    for coord in ("lon", "lat", "time"):
        if coord in written.coords:
            assert np.array_equal(decoded[coord].values, written[coord].values), coord
