"""What the SDK hands to notebooks: escaped HTML tables, pandas from history/state/records, and the
CoverageJSON decoder (every domain type the engine writes) checked against arrays built by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from twinengine.access.covjson_decode import to_xarray
from twinengine.client_types import Coverage, History, RunResult, State, Twin
from twinengine.errors import InvalidInput
from twinengine.streams.sdk import Records

T0 = datetime(2026, 3, 1, tzinfo=UTC)
EVIL = '<script>alert("x")</script>'


def test_html_escapes_everything_a_user_wrote() -> None:
    twin = Twin(id="t-1", name=EVIL, app="a@1", app_name="a", app_version="1", owner="uma", description=EVIL,
                parameters={"station": EVIL}, origin=None, head_revision=3, created_at=T0, updated_at=T0,
                access="owner")
    shown = twin._repr_html_()
    assert "<script>" not in shown and "&lt;script&gt;" in shown and "&quot;x&quot;" in shown
    state = State(twin_id="t-1", revision=3, at=None, delta={"alert": True},
                  reported={"level": {"value": 1.5, "unit": "m", "timestamp": T0, "revision": 2, "stale": True,
                                      "quality": {"flag": "suspect", "checks": ["gap:level"]}},
                            "note": {"value": EVIL, "unit": None, "timestamp": T0, "revision": 3}},
                  desired={"alert": {"value": True, "unit": None, "timestamp": T0, "revision": 1}})
    html = state._repr_html_()
    assert "<script>" not in html and "revision 3" in html and ">1.5<" in html
    frame = state.to_pandas()
    assert list(frame.index) == ["alert", "level", "note"]
    assert frame.loc["level", "reported"] == 1.5 and frame.loc["level", "unit"] == "m"
    assert frame.loc["alert", "desired"] is True and pd.isna(frame.loc["alert", "timestamp"])
    assert frame.loc["level", "flag"] == "suspect" and frame.loc["level", "stale"] is True  # (gap check)
    assert frame.loc["note", "flag"] == "good" and frame.loc["note", "stale"] is None


def test_history_is_a_frame_by_timestamp_with_its_quality_flags() -> None:
    items = [{"value": v, "unit": "m", "timestamp": T0 + timedelta(hours=k), "revision": k + 1}
             for k, v in enumerate([1.2, 1.5, 1.1])]
    items[1]["quality"] = {"flag": "suspect", "checks": ["spike:level", "range:level"]}
    history = History(twin_id="t-1", property="level", kind="reported", unit="m", items=items)
    frame = history.to_pandas()
    assert list(frame.columns) == ["level", "flag", "checks", "revision"] and frame.attrs["units"] == "m"
    series = frame["level"]
    assert series.dtype == np.float64 and list(series.values) == [1.2, 1.5, 1.1]
    assert list(frame["flag"]) == ["good", "suspect", "good"]
    assert frame["checks"].iloc[1] == "spike:level, range:level" and frame["checks"].iloc[0] is None
    assert list(frame["revision"]) == [1, 2, 3]
    assert frame.index[1] == pd.Timestamp("2026-03-01T01:00:00Z") and str(frame.index.tz) == "UTC"
    mixed = History(twin_id="t-1", property="label", kind="reported", unit=None,
                    items=[{"value": "low", "unit": None, "timestamp": T0, "revision": 1}]).to_pandas()
    assert mixed["label"].iloc[0] == "low"
    clash = History(twin_id="t-1", property="flag", kind="reported", unit=None,
                    items=[{"value": True, "unit": None, "timestamp": T0, "revision": 1}]).to_pandas()
    assert list(clash.columns) == ["value", "flag", "checks", "revision"] and bool(clash["value"].iloc[0])


def test_records_become_a_frame() -> None:
    page = Records(twin_id="t-1", stream="gauges", count=2, next_offset=2, end_offset=2, items=[
        {"_offset": 0, "_arrival": "2026-03-01T08:00:01Z", "time": "2026-03-01T08:00:00Z", "level": 1.4},
        {"_offset": 1, "_arrival": "2026-03-01T08:15:01Z", "time": "2026-03-01T08:15:00Z", "level": 1.6}])
    frame = page.to_pandas()
    assert list(frame["level"]) == [1.4, 1.6] and frame["time"].iloc[1] == pd.Timestamp("2026-03-01T08:15Z")
    assert "gauges: 2 records" in page._repr_html_()


def test_run_result_opens_netcdf_only() -> None:
    import xarray as xr

    ds = xr.Dataset({"rain": (("t",), np.array([1.0, 2.0]))})
    result = RunResult(run_id="r", name="out.nc", media_type="application/x-netcdf",
                       content=bytes(ds.to_netcdf(engine="h5netcdf")))
    assert list(result.to_xarray()["rain"].values) == [1.0, 2.0]
    with pytest.raises(InvalidInput, match="not netCDF"):
        RunResult(run_id="r", name="out.json", media_type="application/json", content=b"{}").to_xarray()


PARAMS = {"rain": {"type": "Parameter", "description": {"en": "rain rate"}, "unit": {"symbol": "mm h-1"},
                   "observedProperty": {"id": "rain", "label": {"en": "rain"}}}}


def test_decode_grid_with_axes_in_any_order() -> None:
    values = np.arange(2 * 3 * 4, dtype=float).reshape(2, 4, 3)  # (t, x, y) as the engine writes grids
    doc = {"type": "Coverage", "parameters": PARAMS,
           "domain": {"type": "Domain", "domainType": "Grid",
                      "axes": {"x": {"values": [7.0, 7.5, 8.0, 8.5]}, "y": {"start": 46.0, "stop": 47.0, "num": 3},
                               "t": {"values": ["2026-03-01T00:00:00Z", "2026-03-01T01:00:00Z"]}}},
           "ranges": {"rain": {"type": "NdArray", "dataType": "float", "axisNames": ["t", "x", "y"],
                               "shape": [2, 4, 3], "values": [*values.reshape(-1)[:-1].tolist(), None]}}}
    ds = Coverage(doc).to_xarray()
    assert ds["rain"].dims == ("time", "lat", "lon") and ds["rain"].attrs["units"] == "mm h-1"
    assert list(ds["lat"].values) == [46.0, 46.5, 47.0]
    assert ds["time"].values[1] == np.datetime64("2026-03-01T01:00")
    assert float(ds["rain"].sel(lon=7.5, lat=46.5).isel(time=0)) == values[0, 1, 1]
    assert np.isnan(ds["rain"].values[-1, -1, -1])
    np.testing.assert_array_equal(ds["rain"].values[:, :-1, :-1], values.transpose(0, 2, 1)[:, :-1, :-1])


def test_decode_series_collections_and_composites() -> None:
    def series(x: float, y: float, times: list[str], vals: list[float | None]) -> dict[str, object]:
        return {"type": "Coverage", "domain": {"type": "Domain", "domainType": "PointSeries", "axes": {
            "x": {"values": [x]}, "y": {"values": [y]}, "t": {"values": times}}},
            "ranges": {"rain": {"type": "NdArray", "dataType": "float", "axisNames": ["t"], "shape": [len(vals)],
                                "values": vals}}}

    times = ["2026-03-01T00:00:00Z", "2026-03-01T06:00:00Z"]
    one = to_xarray({**series(8.2, 46.0, times, [1.0, 2.0]), "parameters": PARAMS})
    assert one["rain"].dims == ("time",) and float(one["lon"]) == 8.2
    both = to_xarray({"type": "CoverageCollection", "domainType": "PointSeries", "parameters": PARAMS,
                      "coverages": [series(8.2, 46.0, times, [1.0, 2.0]), series(7.9, 46.3, times[1:], [5.0])]})
    assert both["rain"].dims == ("coverage", "time") and list(both["lon"].values) == [8.2, 7.9]
    assert np.isnan(both["rain"].values[1, 0]) and both["rain"].values[1, 1] == 5.0  # outer join on time
    multi = to_xarray({"type": "Coverage", "parameters": PARAMS, "domain": {
        "type": "Domain", "domainType": "MultiPointSeries",
        "axes": {"t": {"values": times}, "composite": {"dataType": "tuple", "coordinates": ["x", "y"],
                                                       "values": [[8.0, 46.0], [8.5, 46.5], [9.0, 47.0]]}}},
        "ranges": {"rain": {"type": "NdArray", "dataType": "float", "axisNames": ["t", "composite"],
                            "shape": [2, 3], "values": [1, 2, 3, 4, 5, 6]}}})
    assert multi["rain"].dims == ("time", "point") and list(multi["lat"].values) == [46.0, 46.5, 47.0]
    assert multi["rain"].values[1, 2] == 6
    with pytest.raises(InvalidInput, match="not a CoverageJSON"):
        to_xarray({"type": "FeatureCollection", "features": []})


def test_a_runs_progress_is_shown_as_the_percent_it_is() -> None:
    """A run's ``progress`` is a percent (0-100) in the API: a finished run shows 100 %, not 10000 %."""
    from twinengine.workflows.run_types import Run, RunList

    run = Run(id="run-1", kind="run", status="finished", progress=100.0, owner="uma", title=None, twin_id=None,
              twin_name=None, app=None, workflow="forecast", graph_sha256="0" * 64, parameters={}, trigger_id=None,
              executor="local", error=None, assets=[], value=None, created_at=T0, updated_at=T0, started_at=T0,
              finished_at=T0)
    shown = run._repr_html_()
    assert ">100%</td>" in shown and "10000%" not in shown
    listed = RunList(items=[run.model_copy(update={"progress": 42.0})], total=1)._repr_html_()
    assert ">42%</td>" in listed and "4200%" not in listed
