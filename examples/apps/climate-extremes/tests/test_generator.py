"""The weather generator plants what the science checks recover: a warming trend from the first scenario year,
rain amounts scaled by 1 + alpha dT, and CF metadata on every variable."""

from __future__ import annotations

import numpy as np
from climate_extremes.generator import ALPHA, Config, generate, warming
from climate_extremes.trends import slope_per_decade

SMALL = {"years": 8, "baseline_years": 4, "grid_cells": 10, "storms_per_year": 4}


def test_same_parameters_and_member_give_the_same_weather() -> None:
    a, b = generate(SMALL, 3).data, generate(SMALL, 3).data
    c = generate(SMALL, 4).data
    assert a.identical(b)
    assert not np.array_equal(a["tasmax"].values, c["tasmax"].values)


def test_the_dataset_is_cf() -> None:
    ds = generate(SMALL, 0).data
    assert ds.attrs["Conventions"] == "CF-1.10"
    assert ds.sizes == {"time": 12 * 365 + 3, "lat": 10, "lon": 10}  # 2017-2028 holds three leap days
    for name in ("tasmax", "tasmin", "tas", "pr", "hurs", "uas", "vas", "sfcWind"):
        assert {"units", "standard_name", "long_name"} <= set(ds[name].attrs), name
    assert ds["lat"].attrs["standard_name"] == "latitude" and ds["time"].attrs["axis"] == "T"
    assert (ds["tasmin"] < ds["tasmax"]).all() and (ds["pr"] >= 0).all()
    assert float(ds["hurs"].min()) >= 5 and float(ds["hurs"].max()) <= 100


def test_warming_starts_with_the_first_scenario_year() -> None:
    cfg = Config.from_parameters({"warming_k_per_decade": 0.5, **SMALL})
    times = cfg.times()
    d_t = warming(cfg, times)
    assert (d_t[times.year < cfg.start_year] == 0).all()
    assert abs(d_t[-1] - 0.05 * 8) < 0.01  # K at the end of eight years at 0.5 K per decade


def test_the_planted_warming_is_in_the_daily_maxima() -> None:
    params = {"warming_k_per_decade": 0.7, "years": 20, "baseline_years": 2, "grid_cells": 8, "storms_per_year": 0}
    hot, flat = generate(params, 5).data, generate({**params, "warming_k_per_decade": 0.0}, 5).data
    diff = (hot["tasmax"] - flat["tasmax"]).mean(("lat", "lon"))  # the same member's noise cancels
    yearly = diff.groupby("time.year").mean()
    years = yearly["year"].values
    assert abs(slope_per_decade(years[years >= 2021], yearly.values[years >= 2021]) - 0.7) < 0.01


def test_rain_scales_with_warming_exactly() -> None:
    params = {"warming_k_per_decade": 0.7, **SMALL}
    wet, dry = generate(params, 2), generate({**params, "warming_k_per_decade": 0.0}, 2)
    cfg = Config.from_parameters(params)
    factor = 1 + ALPHA * warming(cfg, cfg.times())
    expected = dry.data["pr"].values * factor[:, None, None]
    assert np.allclose(wet.data["pr"].values, expected, rtol=1e-5, atol=2e-3)  # float32 rounding
    assert [s.x for s in wet.storms] == [s.x for s in dry.storms]  # the same storms


def test_station_table() -> None:
    from climate_extremes.stations import station_table

    ds = generate(SMALL, 0).data
    lines = station_table(ds, {"A": (1, 2), "B": (30, 30)}).splitlines()
    assert lines[0] == "station,lon,lat,time,tasmax [degC],tasmin [degC],pr [mm d-1],hurs [%],sfcWind [m s-1]"
    assert len(lines) == 1 + 2 * ds.sizes["time"]
    first = lines[1].split(",")
    assert first[:4] == ["A", str(float(ds["lon"][1])), str(float(ds["lat"][2])), "2017-01-01"]
    assert float(first[4]) == round(float(ds["tasmax"].isel(time=0, lat=2, lon=1)), 2)
    assert lines[-1].startswith(f"B,{float(ds['lon'][-1])},{float(ds['lat'][-1])},2028-12-31,")  # clipped
