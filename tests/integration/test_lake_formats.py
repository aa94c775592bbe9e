"""The field's formats in the lake: uploads get their media types, STAC lists them (gridded ones with the
datacube fields), a GRIB dataset is a collection EDR serves with cfgrib's values, and a ROOT file is
registered, listed and read back by app code (``twinengine.formats.open_dataset``) as uproot reads it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO

import numpy as np
import pytest
import xarray as xr

import format_data as fd
from helpers import Engine, need_modules
from twinengine import formats
from twinengine.errors import DataCorrupted
from twinengine.lake.collections import LakeCollections


@pytest.fixture
def backend() -> str:
    return "sqlite"  # reading files plays no part in the store


MEDIA = {"rain.grib2": "application/x-grib", "rain.tif": "image/tiff; application=geotiff",
         "rain.cog.tif": "image/tiff; application=geotiff; profile=cloud-optimized",
         "rain.h5": "application/x-hdf5", "rain.nc": "application/x-netcdf",
         "gauges.parquet": "application/vnd.apache.parquet", "gauges.csv": "text/csv",
         "events.root": "application/x-root"}


def test_formats_in_the_lake_and_stac(engine: Engine, tmp_path: Path) -> None:
    need_modules("formats", "cfgrib", "eccodes", "uproot", hint="pip install -e '.[formats]'")
    engine.as_role("pat", "provider").lake.add_endpoint("disk", "file", str(tmp_path / "disk"))
    user = engine.as_role("uma", "user")
    files = tmp_path / "files"
    files.mkdir()
    written = {"rain.grib2": fd.write_grib(files / "rain.grib2"), "rain.tif": fd.write_geotiff(files / "rain.tif"),
               "rain.h5": fd.write_hdf5(files / "rain.h5", scales=True), "rain.nc": fd.write_netcdf(files / "rain.nc"),
               "gauges.parquet": fd.write_parquet(files / "gauges.parquet"),
               "gauges.csv": fd.write_csv(files / "gauges.csv"), "events.root": fd.write_root(files / "events.root")}
    (files / "rain.cog.tif").write_bytes((files / "rain.tif").read_bytes())
    user.lake.add_dataset("fx:formats", container=True, meta={"title": "Formats"})
    for name in MEDIA:
        dataset = f"fx:{name.replace('.', '-')}"
        user.lake.add_dataset(dataset, bbox=(7.5, 45.5, 8.75, 46.5))
        user.lake.upload(files / name, f"{dataset}/{name}", endpoint="disk", dataset=dataset)
        user.lake.attach("fx:formats", [dataset])
    headers = engine.headers(engine.token("uma", "user"))
    items = engine.http.get("/stac/collections/formats/items?limit=50", headers=headers).json()["features"]
    by_file = {next(iter(i["assets"])): i for i in items}
    assert {key: item["assets"][key]["type"] for key, item in by_file.items()} == MEDIA
    for gridded in ("rain.grib2", "rain.tif", "rain.h5", "rain.nc"):
        dims = by_file[gridded]["properties"]["cube:dimensions"]
        assert {d["type"] for d in dims.values()} >= {"spatial"}, gridded
    assert "cube:dimensions" not in by_file["events.root"]["properties"]

    listed = {c["id"] for c in engine.http.get("/edr/collections", headers=headers).json()["collections"]}
    assert {"fx.rain-grib2", "fx.rain-tif", "fx.rain-h5", "fx.gauges-parquet", "fx.gauges-csv"} <= listed
    assert "fx.events-root" not in listed  # ROOT is registered in the lake, not served as a collection
    direct = xr.open_dataset(files / "rain.grib2", engine="cfgrib", backend_kwargs={"indexpath": ""})["tprate"]
    doc = engine.http.get("/edr/collections/fx.rain-grib2/position?coords=POINT(8.25 46)", headers=headers).json()
    np.testing.assert_allclose(doc["ranges"]["tprate"]["values"], direct.sel(latitude=46.0, longitude=8.25).values,
                               rtol=1e-6)
    gauges = engine.http.get("/edr/collections/fx.gauges-parquet/locations/RR-02", headers=headers).json()
    frame = written["gauges.parquet"]
    assert gauges["ranges"]["level"]["values"] == frame[frame["station"] == "RR-02"]["level [m]"].tolist()

    # app code: the ROOT file back from the lake, read as uproot reads it
    import uproot

    back = user.lake.download("fx:events-root/events.root", tmp_path / "events.root")
    events = formats.open_dataset(back)
    with uproot.open(files / "events.root") as f:
        for branch in ("energy", "charge"):
            np.testing.assert_array_equal(events[branch].values, f["events"][branch].array(library="np"))
    assert events.attrs["root_tree"] == "events" and "hits" in events.attrs["skipped_branches"]


class _Remote:
    """A replica reachable only as a file object (as on object storage)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def open_file(self, path: str) -> IO[bytes]:
        return open(self.path / path, "rb")


def test_path_only_formats_read_a_verified_local_copy_of_remote_replicas(engine: Engine, tmp_path: Path) -> None:
    need_modules("formats", "cfgrib", "eccodes", hint="pip install -e '.[formats]'")
    fd.write_grib(tmp_path / "rain.grib2")
    sha = hashlib.sha256((tmp_path / "rain.grib2").read_bytes()).hexdigest()
    source = LakeCollections(engine.runtime.db, engine.runtime.lake, cache_dir=tmp_path / "cache")
    ds = source._read(_Remote(tmp_path), "rain.grib2", name="rain.grib2", label="fx:rain.grib2",  # type: ignore[arg-type]
                      sha256=sha)
    assert (tmp_path / "cache" / f"{sha}.grib2").is_file() and ds["tprate"].shape == (4, 5, 6)
    with pytest.raises(DataCorrupted):
        source._read(_Remote(tmp_path), "rain.grib2", name="rain.grib2", label="fx:rain.grib2",  # type: ignore[arg-type]
                     sha256="0" * 64)
    assert not list((tmp_path / "cache").glob(".*.part"))
    remote_nc = source._read(_Remote(tmp_path), "x.nc", name="x.nc", label="fx:x.nc", sha256="") if \
        fd.write_netcdf(tmp_path / "x.nc") is not None else None
    assert remote_nc is not None and float(remote_nc["rain"][0, 0, 0]) == 0.5  # read from the file object
