"""Shared lake test data: a river-reach container on two local endpoints, with a gridded rainfall dataset."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from twinengine.client import Client
from twinengine.daemons import lake_conveyor, lake_judge, lake_reaper
from twinengine.runtime import Runtime

COLLECTION = "river-reach-obs"
SCOPE = "rr"
START = datetime(2026, 3, 1, tzinfo=UTC)
REACH = {"type": "Polygon", "coordinates": [[[7.0, 46.0], [8.5, 46.0], [8.5, 47.0], [7.0, 47.0], [7.0, 46.0]]]}


def converge(runtime: Runtime, rounds: int = 30) -> None:
    for _ in range(rounds):
        with runtime.db.session() as session:
            work = lake_judge.run_once(session, tuning=runtime.lake.tuning)
        work += lake_conveyor.run_once(runtime.db, runtime.lake, limit=50)
        work += lake_reaper.run_once(runtime.db, runtime.lake)
        if not work:
            return
    raise AssertionError("the lake did not settle")


def rain_field(hours: int = 24) -> xr.Dataset:
    time = pd.date_range(START.replace(tzinfo=None), periods=hours, freq="h")
    lat, lon = np.linspace(46.0, 47.0, 5), np.linspace(7.0, 8.5, 7)
    data = np.random.default_rng(3).gamma(0.5, 2.0, (hours, lat.size, lon.size)).astype("float32")
    return xr.Dataset({"rain": (("time", "lat", "lon"), data, {"units": "mm h-1", "long_name": "rainfall rate"})},
                      coords={"time": time, "lat": lat, "lon": lon}, attrs={"title": "Synthetic rain"})


def uploaded_rain(engine: Any, tmp_path: Path, dataset: str) -> tuple[Path, Client]:
    """uma's gridded rain field (``rain.nc``) uploaded into her ``dataset`` on the file endpoint ``disk``,
    which pat, a provider, adds: the netCDF written and uma's client (``engine``: the ``engine`` fixture)."""
    user = engine.as_role("uma", "user")
    engine.as_role("pat", "provider").lake.add_endpoint("disk", "file", str(tmp_path / "disk"))
    nc = tmp_path / "rain.nc"
    rain_field().to_netcdf(nc, engine="h5netcdf")
    user.lake.add_dataset(dataset)
    user.lake.upload(nc, f"{dataset}/rain.nc", endpoint="disk", dataset=dataset)
    return nc, user


def wait_for_rule(client: Client, rule_id: str, timeout: float = 90.0) -> None:
    """Poll until the engine's own loops (``twin serve``) have settled the rule."""
    deadline = time.monotonic() + timeout
    while client.lake.rule(rule_id).state.value == "REPLICATING":
        assert time.monotonic() < deadline, "the rule did not converge"
        time.sleep(0.3)




def populate(client: Client, folder: Path, settle: Callable[[str], None], *, days: int = 5) -> None:
    """Endpoints alpha (site A) and beta (site B), a container with one dataset per day (a CSV of readings)
    plus a gridded rain field, and a rule keeping two copies, settled by ``settle(rule_id)``."""
    lake = client.lake
    for name, site in (("alpha", "A"), ("beta", "B")):
        lake.add_endpoint(name, "file", str(folder / name), attributes={"site": site, "tier": "1"})
    lake.add_dataset(f"{SCOPE}:{COLLECTION}", container=True,
                     meta={"title": "River reach observations", "description": "Gauge readings per day",
                           "license": "CC-BY-4.0", "keywords": ["river", "gauge"]})
    for day in range(days):
        ds = f"{SCOPE}:day-{day}"
        begin = START + timedelta(days=day)
        lake.add_dataset(ds, meta={"gauge": "RR-01", "quality": 10 * day, "title": f"Day {day}"},
                         geometry=REACH if day % 2 == 0 else {"type": "Point", "coordinates": [7.5 + day / 10, 46.5]},
                         start_time=begin.isoformat())
        csv = folder / f"day-{day}.csv"
        csv.write_text("time,level\n" + "".join(f"{begin + timedelta(hours=h):%Y-%m-%dT%H:%M}Z,{1 + h / 10 + day}\n"
                                                for h in range(24)))
        lake.upload(csv, f"{ds}/levels.csv", endpoint="alpha", dataset=ds, media_type="text/csv")
        lake.attach(f"{SCOPE}:{COLLECTION}", [ds])
    nc = folder / "rain.nc"
    rain_field().to_netcdf(nc, engine="h5netcdf")
    lake.add_dataset(f"{SCOPE}:rain", bbox=(7.0, 46.0, 8.5, 47.0), start_time=START.isoformat(),
                     end_time=(START + timedelta(hours=23)).isoformat(), meta={"title": "Rain field"})
    lake.upload(nc, f"{SCOPE}:rain/rain.nc", endpoint="alpha", dataset=f"{SCOPE}:rain",
                media_type="application/x-netcdf")
    lake.attach(f"{SCOPE}:{COLLECTION}", [f"{SCOPE}:rain"])
    rule = lake.add_rule(f"{SCOPE}:{COLLECTION}", copies=2, endpoints="tier=1")
    settle(rule.id)
