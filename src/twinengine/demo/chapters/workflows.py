"""The workflows chapter: a rain forecast arrives over the catchment, the twin's forecast workflow runs
through the engine (openEO graph on Dask with the app's catchment model) from the twin's own state (the storage
it reports: the app maps it to the graph's ``storage_mm``), its progress is shown, and the forecast peak lands in
the twin's state; a second run comes from the cache."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import numpy as np
import xarray as xr

from twinengine.demo.chapters.flood import started_words
from twinengine.demo.context import DemoContext

__all__ = ["forecast"]

COLLECTION = "rain-forecast"
FORECAST_HOURS = 48


def rain_forecast(ctx: DemoContext) -> xr.Dataset:
    """A seeded storm crossing the catchment, hourly on a small grid around it: the grid holds the reach's gauge
    (8.262°E 46.081°N) and the forecast workflow's catchment box (7.7-8.3°E, 46.0-46.4°N)."""
    start = np.datetime64((ctx.options.start + timedelta(hours=ctx.options.hours)).replace(tzinfo=None), "h")
    time_axis = start + np.arange(FORECAST_HOURS) * np.timedelta64(1, "h")
    lat, lon = np.round(np.linspace(45.7, 46.7, 21), 4), np.round(np.linspace(7.4, 8.6, 25), 4)
    rng = np.random.default_rng(ctx.options.seed)
    hours = np.arange(FORECAST_HOURS)[:, None, None]
    centre = 6 + 24 * rng.random()
    peak = 6 + 10 * rng.random()
    storm = peak * np.exp(-((hours - centre) / 4.0) ** 2)
    spatial = np.exp(-((lat[None, :, None] - 46.2) ** 2 + (lon[None, None, :] - 8.0) ** 2) / 0.18)
    rain = (storm * spatial * (1 + 0.1 * rng.standard_normal((FORECAST_HOURS, lat.size, lon.size)))).clip(0)
    return xr.Dataset({"rain": (("time", "lat", "lon"), rain.astype("float32"),
                                {"units": "mm h-1", "long_name": "forecast rain rate"})},
                      coords={"time": time_axis, "lat": lat, "lon": lon},
                      attrs={"title": "Rain forecast over the river-reach catchment (simulated)"})


def forecast(ctx: DemoContext) -> None:
    uma, name = ctx.client("uma"), ctx.facts["twin_name"]
    folder = ctx.runtime.settings.collections_dir or ctx.runtime.data_dir / "collections"
    folder.mkdir(parents=True, exist_ok=True)
    head_before = uma.get_twin(name).head_revision
    trigger = next(t for t in uma.workflows.triggers(name) if t.kind == "dataset")  # the app's manifest trigger
    rain_forecast(ctx).chunk({"time": 12}).to_zarr(folder / f"{COLLECTION}.zarr", mode="w", consolidated=False)
    ctx.say(f"a {FORECAST_HOURS} h rain forecast arrived as collection {COLLECTION}; the twin's trigger "
            f"{trigger.name} ({trigger.kind}) reacts")
    run = None
    deadline = time.monotonic() + 30
    while run is None and time.monotonic() < deadline:
        run = next((r for r in uma.workflows.runs(twin=name).items if r.trigger_id == trigger.id), None)
        time.sleep(0.1)
    if run is None:
        raise RuntimeError(f"the trigger {trigger.name} started no run within 30 s")
    advance = ctx.track(f"forecast workflow ({run.id})", 100)
    shown = [0.0]

    def progress(read: object) -> None:
        value = float(getattr(read, "progress", 0.0))
        if value > shown[0]:
            advance(int(value) - int(shown[0]))
            shown[0] = value

    started = time.perf_counter()
    final = uma.workflows.wait(run.id, poll=0.1, timeout=600, on_progress=progress)
    seconds = time.perf_counter() - started
    if final.status != "finished":
        raise RuntimeError(f"the forecast run ended as {final.status}: {final.error}")
    levels = final.value or []
    state = uma.get_state(name).reported
    again = uma.workflows.run(name, "forecast", {"collection": COLLECTION}, sync=True)  # what the trigger ran
    cached = [n.node_id for n in again.nodes if n.status == "cached"]
    evaluated_by = _evaluated_by(ctx, again.id)  # a synchronous run goes to a sync process, not the engine
    peak = float(state["forecast_peak_level"].value)
    observed = state["level"]
    ctx.facts["workflow"] = {"run": final.id, "trigger": trigger.name, "status": final.status.value, "seconds": seconds,
                             "nodes": {n.node_id: n.status for n in final.nodes}, "peak_level_m": peak,
                             "alert": state["forecast_alert"].value, "steps": len(levels),
                             "rerun": again.id, "rerun_cached": cached, "assets": final.assets,
                             "rerun_process": evaluated_by, "engine_process": os.getpid(),
                             "revisions": uma.get_twin(name).head_revision - head_before,
                             "start": final.start.model_dump(mode="json") if final.start else None,
                             "storage_mm": final.parameters.get("storage_mm"),
                             "first_level_m": levels[0] if levels else None, "observed_level_m": observed.value,
                             "observed_at": observed.timestamp.isoformat()}
    ctx.say(f"forecast run {final.id} finished in {seconds:.2f} s: {len(final.nodes)} nodes, peak {peak:.2f} m "
            f"(alert {'on' if state['forecast_alert'].value else 'off'}), written to the twin's state")
    ctx.say(f"  it {started_words(final.start)}: its first hour {levels[0]:.2f} m, the gauge's "
            f"last level {observed.value:.2f} m" if levels else "  it forecast nothing")
    ctx.summary.append(("forecast workflow", f"run {final.id}: peak {peak:.2f} m in the next {FORECAST_HOURS} h, "
                                             f"{seconds:.2f} s; rerun served from the cache ({', '.join(cached)})"))
    if evaluated_by is not None and evaluated_by != os.getpid():
        ctx.say(f"the synchronous rerun was evaluated in sync process {evaluated_by}, not in the engine's own "
                f"process {os.getpid()}: it is killed at its sync_timeout and bounded by sync_memory_bytes")
    ctx.summary.append(("provenance", f"/api/v1/runs/{final.id}/provenance (W3C PROV-JSON)"))
    kept = [a for a in final.assets if a.get("did")]
    ctx.facts["workflow"]["lake_assets"] = [a["did"] for a in kept]
    if kept:
        ctx.summary.append(("forecast in the lake", f"{', '.join(a['did'] for a in kept)} (sha256 "
                                                    f"{kept[0]['sha256'][:12]}…) on site-a: {ctx.url}/stac/"
                                                    f"collections/workflow-results/items/{final.id}"))


def _evaluated_by(ctx: DemoContext, run_id: str) -> int | None:
    """The process that claimed a run (its worker id is host:pid:suffix)."""
    from twinengine.workflows.models import WorkflowRun

    with ctx.runtime.db.session(readonly=True) as session:
        row = session.get(WorkflowRun, run_id)
        worker = row.worker if row is not None else None
    parts = (worker or "").split(":")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
