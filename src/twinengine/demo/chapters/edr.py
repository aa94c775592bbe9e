"""The data-access chapter: the reach's gridded rainfall lands in the collections, and a DT user asks the
EDR API for the catchment's area-mean rain and the rain over the outlet gauge, as CoverageJSON; the gauge's
readings, kept as a station table (CSV), are served by EDR as a point collection. The rainfall is everyone's
(the engine-wide collections folder); the readings are the twin's: they go to the lake as a dataset of the twin,
read by exactly those who may read the twin, and EDR answers anyone else as if there were no such collection."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from twinengine.demo.chapters.lake import SCOPE, store_result
from twinengine.demo.context import DemoContext
from twinengine.errors import TwinEngineError
from twinengine.figures import save_figure
from twinengine.lake.collections import collection_id

__all__ = ["gauges_collection", "rainfall_field"]

COLLECTION = "river-reach-rain"


def gauges_collection(twin: str) -> str:
    """The collection of the twin's gauge readings: its lake dataset ``river-reach:<twin>-gauges``."""
    return collection_id(SCOPE, f"{twin}-gauges")


def _series(doc: dict[str, Any], name: str) -> np.ndarray:
    rng = doc["ranges"][name]
    flat = np.array([np.nan if v is None else v for v in rng["values"]], dtype=float)
    return flat.reshape(rng.get("shape", [-1]))


def area_mean(doc: dict[str, Any], name: str) -> np.ndarray:
    """Area-weighted (cos latitude) mean over the cells a polygon query kept, per time step."""
    axes = doc["domain"]["axes"]
    data = _series(doc, name)  # (t, x, y) as the API lays grids out; the order is in axisNames
    names = doc["ranges"][name]["axisNames"]
    grid = np.moveaxis(data, [names.index("t"), names.index("y"), names.index("x")], [0, 1, 2])
    weights = np.cos(np.radians(np.asarray(axes["y"]["values"])))[:, None] * np.ones(len(axes["x"]["values"]))
    mask = np.isfinite(grid)
    totals = np.where(mask, grid, 0.0) * weights
    return np.asarray(totals.sum(axis=(1, 2)) / (mask * weights).sum(axis=(1, 2)))


def _plot(path: Path, times: list[str], mean: np.ndarray, point: np.ndarray, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stamps = np.array([t.rstrip("Z") for t in times], dtype="datetime64[s]")
    fig, ax = plt.subplots(figsize=(10, 3.6), layout="constrained")
    ax.bar(stamps, mean, width=np.timedelta64(50, "m"), color="#4a90d9", label="catchment area mean (EDR area)")
    ax.plot(stamps, point, color="#1b3a5c", lw=1.3, label="at the outlet gauge (EDR position)")
    ax.set_ylabel("rain (mm/h)")
    ax.set_title(title, loc="left")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return save_figure(fig, path)


def rainfall_field(ctx: DemoContext) -> None:
    reach, o = ctx.app_package, ctx.options
    hours = max(1, round(o.hours))
    field = reach.rain_field(o.start, hours, seed=o.seed)
    folder = ctx.runtime.settings.collections_dir or ctx.runtime.data_dir / "collections"
    folder.mkdir(parents=True, exist_ok=True)
    field.to_zarr(folder / f"{COLLECTION}.zarr", mode="w", encoding={"rain": {"chunks": (24, 8, 8)}},
                  consolidated=False)
    cells = field.sizes["lat"] * field.sizes["lon"]
    ctx.say(f"the reach's gridded rainfall ({hours} h x {field.sizes['lat']} x {field.sizes['lon']} cells of "
            f"0.02°) is in the collections as {COLLECTION}")
    edr = ctx.client("uma").edr
    when = f"{o.start:%Y-%m-%dT%H:%M:%SZ}/{o.start + timedelta(hours=hours):%Y-%m-%dT%H:%M:%SZ}"
    started = time.perf_counter()
    area = edr.area(COLLECTION, reach.catchment_wkt(), datetime=when, parameter_name="rain")
    gauge = edr.position(COLLECTION, f"POINT({reach.GAUGE[0]} {reach.GAUGE[1]})", datetime=when,
                         parameter_name="rain")
    seconds = time.perf_counter() - started
    mean = area_mean(area, "rain")
    point = _series(gauge, "rain").reshape(-1)
    times = gauge["domain"]["axes"]["t"]["values"]
    kept = int(np.isfinite(_series(area, "rain")[0]).sum())
    peak = int(np.nanargmax(mean))
    gx, gy = gauge["domain"]["axes"]["x"]["values"][0], gauge["domain"]["axes"]["y"]["values"][0]
    ctx.say(f"EDR area query (catchment polygon): {kept} of {cells} cells inside; area-mean rain peaks at "
            f"{mean[peak]:.2f} mm/h at {times[peak]}, {float(np.nansum(mean)):.1f} mm in total")
    ctx.say(f"EDR position query (gauge RR-01, nearest cell {gx:.2f}°E {gy:.2f}°N): {len(point)} hourly values, "
            f"max {float(np.nanmax(point)):.2f} mm/h, {float(np.nansum(point)):.1f} mm in total")
    width = max(1, len(times) // 12)
    for i in range(0, len(times), width):
        ctx.say(f"  {times[i]}  area mean {mean[i]:6.2f} mm/h   gauge {point[i]:6.2f} mm/h")
    plot = _plot(ctx.runtime.data_dir / "river-reach-rainfall.png", times, mean, point,
                 f"{COLLECTION}: catchment mean and gauge rain, read back through /edr")
    ctx.facts["edr"] = {"collection": COLLECTION, "cells_inside": kept, "times": times,
                        "area_mean": [round(float(v), 4) for v in mean], "gauge": [float(v) for v in point],
                        "gauge_cell": [gx, gy], "seconds": seconds, "plot": str(plot)}
    _station_table(ctx, when)
    total, gauge_total = float(np.nansum(mean)), float(np.nansum(point))
    ctx.summary.append(("EDR rainfall", f"{COLLECTION}: catchment mean peak {mean[peak]:.2f} mm/h at {times[peak]}, "
                                        f"{total:.1f} mm; gauge total {gauge_total:.1f} mm ({seconds * 1000:.0f} ms "
                                        f"for both queries); plot {plot}"))


def _station_table(ctx: DemoContext, when: str) -> None:
    """The twin's reported levels and rain as a CSV of gauge readings, kept in the lake as a dataset of the twin
    (its readers read it, nobody else); EDR lists the station and answers its series, which must equal what the
    twin reported. ada, who holds no grant on the twin, is answered as for a collection that does not exist."""
    uma, name, reach = ctx.client("uma"), ctx.facts["twin_name"], ctx.app_package
    level = uma.history(name, "level", limit=100_000).items
    rain = {v.timestamp: v.value for v in uma.history(name, "rain", limit=100_000).items}
    rows = ["station,lon,lat,time,level [m],rain [mm/h]"]
    rows += [f"RR-01,{reach.GAUGE[0]},{reach.GAUGE[1]},{v.timestamp.isoformat()},{v.value},{rain.get(v.timestamp, '')}"
             for v in level]
    path = ctx.runtime.data_dir / "exports" / f"{name}-gauges.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")
    did = store_result(ctx, path, name=f"{name}-gauges", start=level[0].timestamp, end=level[-1].timestamp,
                       meta={"kind": "station table", "rows": len(level)}, title=f"Gauge readings of {name}")
    gauges = gauges_collection(name)
    edr = uma.edr
    stations = [f["id"] for f in edr.locations(gauges)["features"]]
    series = edr.location(gauges, "RR-01", datetime=when, parameter_name="level")
    got = [v for v in series["ranges"]["level"]["values"] if v is not None]
    if len(got) != len(level):
        raise RuntimeError(f"EDR answered {len(got)} levels of {gauges}, the twin reported {len(level)}")
    ada = ctx.client("ada").edr
    try:
        ada.location(gauges, "RR-01", datetime=when, parameter_name="level")
        refused = 200
    except TwinEngineError as exc:
        refused = exc.status
    listed = gauges in {c["id"] for c in ada.collections()}
    if refused != 404 or listed:
        raise RuntimeError(f"ada, without a grant on {name}, was answered {refused} for {gauges} (listed: {listed})")
    ctx.say(f"the gauge's readings as a station table of {name} in the lake ({did}, {len(level)} rows): EDR lists "
            f"stations {', '.join(stations)} of {gauges} and answers RR-01's level series, max {max(got):.2f} m; "
            f"ada, without a grant on {name}, gets 404 there and no such collection in her listing")
    ctx.facts["edr"]["stations"] = {"collection": gauges, "did": did, "stations": stations, "levels": len(got),
                                    "max_level": max(got), "without_grant": {"status": refused, "listed": listed}}
