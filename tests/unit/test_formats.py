"""The format registry: built-ins and entry-point plugins merged, longest suffix first, missing libraries
reported with the reason (and the file's collection answering 501), broken plugins warned about and ignored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import xarray as xr

from twinengine import formats
from twinengine.collections import LocalCollections
from twinengine.errors import FormatUnavailable, UnreadableFile
from twinengine.formats import _registry


class TextGrid(formats.FormatBackend):
    """A plugin format for the test: a ``.grid.txt`` file holding one number."""

    name: ClassVar[str] = "text-grid"
    description: ClassVar[str] = "a one-number text grid"
    suffixes: ClassVar[tuple[str, ...]] = (".grid.txt",)
    media_type: ClassVar[str] = "text/x-grid"

    def open_dataset(self, path: Path) -> xr.Dataset:
        value = float(path.read_text())
        return xr.Dataset({"v": (("lat", "lon"), [[value]])}, coords={"lat": [46.0], "lon": [8.0]})


class Exotic(formats.FormatBackend):
    name: ClassVar[str] = "exotic"
    description: ClassVar[str] = "an exotic file"
    suffixes: ClassVar[tuple[str, ...]] = (".exo",)
    media_type: ClassVar[str] = "application/x-exotic"
    requires: ClassVar[tuple[str, ...]] = ("no_such_module_for_tests",)
    install: ClassVar[str] = "pip install exotic"


class _Point:
    def __init__(self, name: str, target: Any) -> None:
        self.name, self.value, self._target = name, f"tests:{name}", target

    def load(self) -> Any:
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    points = [_Point("text-grid", TextGrid), _Point("exotic", Exotic), _Point("broken", ImportError("boom")),
              _Point("not-a-format", object)]
    monkeypatch.setattr(_registry, "entry_points", lambda group: points if group == _registry.GROUP else [])
    formats.refresh_formats()
    yield
    formats.refresh_formats()


def test_plugins_join_and_broken_ones_only_warn(plugins: None, tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning) as caught:
        available = formats.list_formats()
    assert {"text-grid", "netcdf", "zarr"} <= set(available) and "exotic" not in available
    assert sorted(str(w.message).split("'")[1] for w in caught) == ["broken", "not-a-format"]
    assert "no_such_module_for_tests (pip install exotic)" in formats.missing_formats()["exotic"]
    assert formats.media_type_for("a/b/x.grid.txt") == "text/x-grid"
    assert formats.media_type_for("x.exo") == "application/x-exotic"  # known, though not readable here
    (tmp_path / "one.grid.txt").write_text("4.5")
    assert formats.open_dataset(tmp_path / "one.grid.txt")["v"].item() == 4.5
    (tmp_path / "odd.exo").write_bytes(b"\x00")
    with pytest.raises(FormatUnavailable, match=r"odd\.exo: an exotic file needs no_such_module_for_tests"):
        formats.open_dataset(tmp_path / "odd.exo")
    source = LocalCollections(tmp_path)
    assert source.ids() == ["one"] and source.info("one").format == "text-grid"
    with pytest.raises(FormatUnavailable) as refused:
        source.open("odd")
    assert refused.value.status == 501


def test_suffixes_longest_first_and_unknown_ones_named() -> None:
    formats.refresh_formats()
    found = formats.match("rain.zarr.zip")
    assert found is not None and (found.format, found.stem) == ("zarr-zip", "rain")
    assert formats.match("rain.zarr", is_dir=False) is None  # a zarr store is a folder
    assert formats.match("events.root") is not None and not formats.match("events.root").collection  # type: ignore[union-attr]
    assert formats.media_type_for("x.cog.tif") == "image/tiff; application=geotiff; profile=cloud-optimized"
    assert formats.media_type_for("notes.txt") is None
    with pytest.raises(UnreadableFile, match=r"notes\.txt: no format the engine reads"):
        formats.resolve("notes.txt")


def test_station_table_errors_name_rows_and_columns(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("station,lon,lat,time,rain\nA,8,46,2026-03-01T00:00Z,1\nA,8,46,yesterday,2\n")
    with pytest.raises(UnreadableFile, match=r"bad\.csv: column 'time', row 2: 'yesterday' is not a date"):
        formats.open_dataset(bad)
    moving = tmp_path / "moving.csv"
    moving.write_text("station,lon,lat,time,rain\nA,8,46,2026-03-01T00:00Z,1\nA,9,46,2026-03-01T01:00Z,2\n")
    with pytest.raises(UnreadableFile, match="station 'A' appears at more than one position"):
        formats.open_dataset(moving)
    nameless = tmp_path / "nameless.csv"
    nameless.write_text("longitude,latitude,rain (mm)\n8,46,1.5\n9,47,2.5\n")
    ds = formats.open_dataset(nameless)
    assert list(ds["station"].values) == ["8_46", "9_47"] and ds["rain"].attrs["units"] == "mm"
    assert ds["rain"].dims == ("station",)


def test_projected_geotiff_is_reprojected_to_lon_lat(tmp_path: Path) -> None:
    import numpy as np
    import rioxarray  # noqa: F401

    x, y = 440000 + np.arange(20) * 1000.0, 5100000 - np.arange(15) * 1000.0  # UTM 32N, near 8.2°E 46°N
    source = xr.DataArray(np.arange(300, dtype="float32").reshape(15, 20), dims=("y", "x"),
                          coords={"y": y, "x": x}).rio.write_crs("EPSG:32632").rio.write_nodata(-9999.0)
    source.rio.to_raster(tmp_path / "utm.tif")
    ds = formats.open_dataset(tmp_path / "utm.tif")
    assert ds.rio.crs.to_epsg() == 4326 and ds["x"].attrs["units"] == "degrees_east"
    assert 8.1 < float(ds["x"].min()) < float(ds["x"].max()) < 8.5 and 45.9 < float(ds["y"].min()) < 46.1
    values = ds["band_1"].values
    assert np.nanmin(values) >= 0 and np.nanmax(values) <= 299 and np.isfinite(values).sum() > 200
