"""``twin demo``'s data-access chapter: the rainfall field it wrote, queried through /edr, gives the same
catchment mean and gauge series as direct xarray computations on that field; the gauge's readings, as a
station CSV of the twin in the lake, are served back with the twin's reported levels, and to nobody without a
grant on the twin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import shapely
import xarray as xr

from demo_fixtures import HOURS, DemoRun
from helpers import RIVER_REACH


def test_demo_queries_the_rainfall_field_through_edr(demo_run: DemoRun) -> None:
    data_dir = demo_run.data_dir  # read only
    facts = demo_run.facts["edr"]
    field = xr.open_zarr(data_dir / "collections" / "river-reach-rain.zarr", consolidated=False).load()
    assert len(facts["times"]) == field.sizes["time"] == HOURS  # an hourly field over the demo's hours

    import sys

    sys.path.insert(0, str(RIVER_REACH))
    from river_reach import CATCHMENT_POLYGON, GAUGE

    polygon = shapely.Polygon(CATCHMENT_POLYGON)
    lon, lat = np.meshgrid(field.lon.values, field.lat.values)
    inside = shapely.intersects_xy(polygon, lon, lat)
    assert facts["cells_inside"] == int(inside.sum()) > 20
    weights = np.cos(np.radians(lat)) * inside
    expected = (field.rain.values * weights).sum(axis=(1, 2)) / weights.sum()
    np.testing.assert_allclose(facts["area_mean"], expected, atol=1e-3)
    gauge = field.rain.sel(lon=GAUGE[0], lat=GAUGE[1], method="nearest")
    np.testing.assert_array_equal(np.array(facts["gauge"], dtype="float32"), gauge.values)
    assert max(facts["area_mean"]) > 0.5  # a storm crossed the catchment
    assert Path(facts["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stations = facts["stations"]
    name = stations["did"].rsplit("/", 1)[-1]  # the station table is the twin's, in the lake, not in the collections
    assert not (data_dir / "collections" / name).exists() and not list((data_dir / "collections").glob("*gauges*"))
    copies = [p for p in (data_dir / "lake").rglob(name) if ".incoming" not in p.parts]
    table = pd.read_csv(copies[0])
    assert stations["stations"] == ["RR-01"] and stations["levels"] == len(table) > 20
    assert stations["max_level"] == table["level [m]"].max()
    assert stations["collection"] == f"river-reach.{demo_run.facts['twin_name']}-gauges"
    assert stations["without_grant"] == {"status": 404, "listed": False}  # ada holds no grant on the twin
