"""Where an answer's values come from (``Extraction.sources``), what a data space policy's area judges beside
the area asked: the nearest cell or station to a point, the cells interpolated, the cells along a path; none for
answers whose cells lie in the asked area by construction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import shapely
import xarray as xr

from twinengine.access.extract import sources_area
from twinengine.access.service import DataAccess, Query, run_query
from twinengine.auth.principal import SYSTEM
from twinengine.collections.local import LocalCollections


@pytest.fixture
def access(tmp_path: Path) -> Iterator[DataAccess]:
    grid = xr.Dataset({"v": (("lat", "lon"), np.arange(35.0).reshape(5, 7))},
                      coords={"lat": np.linspace(46.0, 47.0, 5), "lon": np.linspace(7.0, 8.5, 7)})
    grid.to_zarr(tmp_path / "grid.zarr", consolidated=False)
    stations = xr.Dataset({"level": (("station",), [1.0, 2.0, 3.0])},
                          coords={"station": ["A", "B", "C"], "lon": ("station", [7.1, 9.5, 20.0]),
                                  "lat": ("station", [46.1, 46.9, 50.0])})
    stations.to_zarr(tmp_path / "gauges.zarr", consolidated=False)
    found = DataAccess(LocalCollections(tmp_path), max_values=10**6, cache_bytes=0)
    yield found
    found.close()


def _sources(access: DataAccess, collection: str, query: Query) -> list[tuple[float, float]] | None:
    area = sources_area(run_query(access, principal=SYSTEM, collection_id=collection, query=query))
    return None if area is None else sorted((round(x, 6), round(y, 6)) for x, y in shapely.get_coordinates(area))


def test_a_point_is_answered_by_its_nearest_cell_or_the_four_around_it(access: DataAccess) -> None:
    point = shapely.Point(7.89, 46.5)
    assert _sources(access, "grid", Query(kind="position", geometry=point)) == [(8.0, 46.5)]
    # the four cells around it, each read (one of weight 0 counts too: a gap there makes the answer a gap)
    assert _sources(access, "grid", Query(kind="position", geometry=point, method="linear")) == [
        (7.75, 46.25), (7.75, 46.5), (8.0, 46.25), (8.0, 46.5)]


def test_a_path_is_answered_by_the_cells_along_it(access: DataAccess) -> None:
    line = shapely.LineString([(7.0, 46.0), (7.5, 46.0)])
    assert _sources(access, "grid", Query(kind="trajectory", geometry=line)) == [
        (7.0, 46.0), (7.25, 46.0), (7.5, 46.0)]


def test_grid_answers_of_an_area_name_no_sources(access: DataAccess) -> None:
    for query in (Query(kind="cube", bbox=(7.1, 46.1, 7.9, 46.9)),
                  Query(kind="area", geometry=shapely.box(7.1, 46.1, 7.9, 46.9))):
        assert _sources(access, "grid", query) is None


def test_a_station_answers_wherever_it_is(access: DataAccess) -> None:
    """The station nearest a point may lie far outside any area around that point."""
    assert _sources(access, "gauges", Query(kind="position", geometry=shapely.Point(9.0, 47.0))) == [(9.5, 46.9)]
    assert _sources(access, "gauges", Query(kind="area", geometry=shapely.box(7.0, 46.0, 8.0, 47.0))) == [
        (7.1, 46.1)]
