"""The climate-extremes chapter (``twin demo --app climate-extremes``): a region twin's cyclones detected and
tracked against the planted vortices, their centres and a member's weather (netCDF) and station tables (CSV)
kept as the twin's datasets in the lake, so the map and EDR serve them to the twin's readers; then the app's
pathways scenario, each pathway an ensemble of members, with the recovered index trends beside the planted
ones."""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

from twinengine.demo.chapters.lake import keep_for_twin
from twinengine.demo.chapters.lattice import _lake_endpoint
from twinengine.demo.chapters.twins import _free_name
from twinengine.demo.context import DemoContext

__all__ = ["STORMS", "WEATHER", "extremes"]

SCOPE = "climate-extremes"  # the lake scope of the twin's datasets
STORMS, WEATHER, STATIONS = f"{SCOPE}-storms", f"{SCOPE}-weather", f"{SCOPE}-stations"  # their files' names
SCENARIO = "pathways.yaml"
# small enough for a demo: 10 baseline years and (by default) 10 scenario years on 12 x 12 cells
DEMO_PARAMETERS = {"baseline_years": 10, "grid_cells": 12, "storms_per_year": 8}


def _run(ctx: DemoContext, twin: str, workflow: str, parameters: dict[str, Any]) -> Any:
    run = ctx.client("uma").workflows.run(twin, workflow, parameters, sync=True)
    if run.status != "finished":
        raise RuntimeError(f"the {workflow} workflow ended as {run.status}: {run.error}")
    return run


def _collections(ctx: DemoContext, twin: str) -> dict[str, Any]:
    """Member 0's cyclones (scored), weather and stations become collections the map and EDR serve: datasets of
    the twin in the lake, read by those who may read the twin (they come from its runs), nobody else."""
    uma, package = ctx.client("uma"), ctx.app_package
    folder = ctx.runtime.data_dir / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    storms = _run(ctx, twin, "storms", {"member": 0})
    tracks = json.loads(uma.workflows.download(storms.id, storms.assets[0]["name"],
                                               ctx.runtime.data_dir / f"{twin}-storms.geojson").read_text())
    (folder / f"{STORMS}.csv").write_text(package.stations.centres_table(tracks))
    weather = _run(ctx, twin, "weather", {"member": 0})
    nc = uma.workflows.download(weather.id, weather.assets[0]["name"], folder / f"{WEATHER}.nc")
    import xarray as xr

    with xr.open_dataset(nc, engine="h5netcdf") as ds:
        (folder / f"{STATIONS}.csv").write_text(package.stations.station_table(ds.load()))
    ids = {name: keep_for_twin(ctx, path, scope=SCOPE, name=name, twin=twin, title=f"{name} of {twin}")
           for name, path in (("storms", folder / f"{STORMS}.csv"), ("weather", nc),
                              ("stations", folder / f"{STATIONS}.csv"))}
    state = {k: v.value for k, v in uma.get_state(twin).reported.items()}
    centres = uma.edr.locations(ids["storms"])["features"]
    scores = tracks["scores"]
    ctx.say(f"storms of member 0: {state['storm_tracks']} tracks, {scores['detected']} daily centres against "
            f"{scores['planted']} planted; F1 {scores['f1']:.3f}, mean centre error "
            f"{scores['centre_error_cells']:.2f} cells")
    ctx.say(f"collections of {twin}: {ids['storms']} ({len(centres)} centres, a point collection EDR and the map "
            f"serve), {ids['weather']} (CF netCDF, {nc.stat().st_size // 1_000_000} MB) and {ids['stations']} "
            f"(station CSV), read by those who may read {twin}")
    return {"scores": scores, "tracks": state["storm_tracks"], "centres": len(centres), "collections": ids,
            "runs": {"storms": storms.id, "weather": weather.id}}


def _pathways(ctx: DemoContext, twin: str) -> list[dict[str, Any]]:
    """The app's scenario: one fork per pathway, each an ensemble; members' trends against the planted ones."""
    uma, package, members = ctx.client("uma"), ctx.app_package, ctx.options.climate_members
    doc = yaml.safe_load((ctx.app_folder / "scenarios" / SCENARIO).read_text())
    doc["ensemble"]["members"] = members
    started = uma.ensembles.scenario(doc, twin=twin)
    rows = []
    advance = ctx.track(f"pathways: {len(started.branches)} ensembles of {members}", len(started.branches))
    for branch in started.branches:
        final = uma.ensembles.wait(branch.run_id, poll=0.2, timeout=900)
        if final.status != "finished" or not final.statistics:
            raise RuntimeError(f"pathway {branch.name} ended as {final.status}: {final.error}")
        advance(1)
        stats = final.statistics
        params = uma.get_twin(branch.fork).parameters
        planted = package.trends.planted_trends(params)
        row: dict[str, Any] = {"pathway": branch.name, "fork": branch.fork, "ensemble": final.id,
                               "warming_k_per_decade": params["warming_k_per_decade"], "planted": planted,
                               "probability": stats["peak"].get("exceedance"), "tx90p_mean": stats["series"]["mean"],
                               "tx90p_spread": stats["series"]["spread"]}
        for name in ("tx90p_trend", "rx1day_trend", "heat_wave_frequency_trend", "fwi_trend"):
            values = stats["member_state"][name]["values"]
            mean, low, high = package.trends.confidence_interval(values)
            row[name] = {"members": values, "mean": mean, "ci99": [low, high]}
            if name in planted:
                row[name]["planted"] = planted[name]
                row[name]["inside"] = bool(low <= planted[name] <= high)
        rows.append(row)
    ctx.say(f"pathways ({members} members each; trends per decade, 99 % interval of the members' mean):")
    for r in rows:
        tx, rx = r["tx90p_trend"], r["rx1day_trend"]
        ctx.say(f"  {r['pathway']:<7} {r['warming_k_per_decade']:.2f} K/decade: TX90p {tx['mean']:+.1f} d "
                f"[{tx['ci99'][0]:+.1f}, {tx['ci99'][1]:+.1f}] (planted {tx['planted']:+.1f}), Rx1day "
                f"{rx['mean']:+.1f} % [{rx['ci99'][0]:+.1f}, {rx['ci99'][1]:+.1f}] (planted {rx['planted']:+.1f}), "
                f"heat waves {r['heat_wave_frequency_trend']['mean']:+.2f}, "
                f"FWI > 20 days {r['fwi_trend']['mean']:+.1f}; P(a year > 60 TX90p days) {r['probability']:.0%}")
    return rows


def extremes(ctx: DemoContext) -> None:
    uma = ctx.client("uma")
    _lake_endpoint(ctx)
    params = DEMO_PARAMETERS | {"years": ctx.options.climate_years}
    twin = uma.create_twin(ctx.facts["app"], _free_name(uma, "region-1"), params,
                           description="A 12 x 12 degree region under warming pathways (synthetic weather)")
    ctx.facts["twin_name"] = twin.name
    ctx.say(f"uma created twin {twin.name}: {params['grid_cells']}² cells of 1°, {params['baseline_years']} baseline "
            f"+ {params['years']} scenario years")
    started = time.perf_counter()
    storms = _collections(ctx, twin.name)
    rows = _pathways(ctx, twin.name)
    seconds = time.perf_counter() - started
    ctx.facts["climate"] = {"twin": twin.name, "parameters": twin.parameters, "storms": storms, "pathways": rows,
                            "collections": sorted(storms["collections"].values()), "seconds": seconds}
    inside = {r["pathway"]: r["tx90p_trend"]["inside"] and r["rx1day_trend"]["inside"] for r in rows}
    ctx.summary += [
        ("cyclones", f"F1 {storms['scores']['f1']:.3f}, centre error {storms['scores']['centre_error_cells']:.2f} "
                     f"cells, {storms['tracks']} tracks; centres in collection {storms['collections']['storms']}"),
        *[(f"pathway {r['pathway']}", f"TX90p {r['tx90p_trend']['mean']:+.1f} d/decade (planted "
                                      f"{r['planted']['tx90p_trend']:+.1f}), Rx1day {r['rx1day_trend']['mean']:+.1f} "
                                      f"%/decade (planted {r['planted']['rx1day_trend']:+.1f}); planted inside the "
                                      f"members' 99 % interval: {'yes' if inside[r['pathway']] else 'NO'}")
          for r in rows]]
