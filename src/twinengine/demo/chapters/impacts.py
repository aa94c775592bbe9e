"""The climate-impacts chapter (``twin demo --app climate-impacts``): a region twin's Fire Weather Index system
checked against the cffdrs reference table; four rain scenarios (s = 1, 0.9, 0.8, 0.7), each an ensemble of
members, with the drought frequency against its closed form, the planted droughts against the events found,
and compound drought and fire-danger days rising with the scenario; one member's monthly drought maps kept as
the twin's dataset in the lake, served by EDR to the twin's readers."""

from __future__ import annotations

import time
from typing import Any

import yaml

from twinengine.demo.chapters.lake import keep_for_twin
from twinengine.demo.chapters.lattice import _lake_endpoint
from twinengine.demo.chapters.twins import _free_name
from twinengine.demo.context import DemoContext

__all__ = ["DEMO_PARAMETERS", "drought_and_fire"]

SCOPE = "climate-impacts"  # the lake scope of the twin's datasets
SCENARIO = "rain-scenarios.yaml"
# small enough for a demo: 10 x 10 cells, a 30-year baseline (SPI's calibration) and 20 scenario years
DEMO_PARAMETERS = {"grid_cells": 10, "baseline_years": 30, "years": 20, "droughts": 2}


def _run(ctx: DemoContext, twin: str, workflow: str, parameters: dict[str, Any]) -> Any:
    run = ctx.client("uma").workflows.run(twin, workflow, parameters, sync=True)
    if run.status != "finished":
        raise RuntimeError(f"the {workflow} workflow ended as {run.status}: {run.error}")
    return run


def _fwi_check(ctx: DemoContext, twin: str) -> dict[str, Any]:
    """The app's Fire Weather Index system on Van Wagner and Pickett's 48 days against the cffdrs table."""
    _run(ctx, twin, "fwi_check", {})
    worst = ctx.client("uma").get_state(twin).reported["fwi_max_abs_difference"].value
    ctx.say(f"Fire Weather Index system (climate-indices) on the 48-day test weather, light rain of 0.2 and 0.4 mm "
            f"included: largest difference from the cffdrs reference table {worst:.5f} (bound 0.01)")
    return {"max_abs_difference": worst}


def _scenarios(ctx: DemoContext, twin: str) -> list[dict[str, Any]]:
    """The app's scenario file: one fork per scenario, each an ensemble; its members judged together."""
    uma, package, members = ctx.client("uma"), ctx.app_package, ctx.options.impacts_members
    doc = yaml.safe_load((ctx.app_folder / "scenarios" / SCENARIO).read_text())
    doc["ensemble"]["members"] = members
    started = uma.ensembles.scenario(doc, twin=twin)
    advance = ctx.track(f"scenarios: {len(started.branches)} ensembles of {members}", len(started.branches))
    import importlib

    ensemble = importlib.import_module(f"{package.__name__}.ensemble")
    impacts = importlib.import_module(f"{package.__name__}.impacts")
    generator = importlib.import_module(f"{package.__name__}.generator")
    rows = []
    for branch in started.branches:
        final = uma.ensembles.wait(branch.run_id, poll=0.2, timeout=900)
        if final.status != "finished" or not final.statistics:
            raise RuntimeError(f"scenario {branch.name} ended as {final.status}: {final.error}")
        advance(1)
        stats = final.statistics
        by_name = {k: v["values"] for k, v in stats["member_state"].items()}
        states = [{k: values[i] for k, values in by_name.items()} for i in range(len(by_name["compound_days"]))]
        params = uma.get_twin(branch.fork).parameters
        rows.append({"scenario": branch.name, "fork": branch.fork, "ensemble": final.id,
                     "rain_factor": params["rain_factor"], "warming_k": params["warming_k"],
                     "probability": stats["peak"].get("exceedance"), "member_states": states,
                     # the issue's closed form: the true distribution, before the planted droughts' share
                     "closed_form_natural": impacts.closed_form_frequency(generator.Config.from_parameters(params)),
                     **ensemble.scenario_checks(states)})
    ctx.say(f"scenarios ({members} members each; SPI-1 drought share of cell-months, members' mean [99 % interval "
            f"around the closed form for their calibration]):")
    for r in rows:
        low, high = r["expected_interval"]
        ctx.say(f"  {r['scenario']:<9} rain x {r['rain_factor']:.1f}, {r['warming_k']:+.0f} K: SPI-1 drought "
                f"{r['frequency']:.3f} [{low:.3f}, {high:.3f}] ({'inside' if r['inside'] else 'OUTSIDE'}; true "
                f"distribution {r['closed_form_natural']:.3f}, {r['closed_form']:.3f} with the planted droughts), "
                f"SPI-3 {r['spi3_drought_frequency']:.0%}, SPEI-3 "
                f"{r['spei3_drought_frequency']:.0%}, FWI > 20 {r['fwi_high_days']:.0f} d/yr, compound "
                f"{r['compound_days']:.1f} d/yr; planted droughts found {r['planted_found']} of {r['planted']}")
    return rows


def _maps(ctx: DemoContext, twin: str) -> dict[str, Any]:
    """Member 0's monthly maps become a gridded collection of the twin's (EDR), read by the twin's readers."""
    uma = ctx.client("uma")
    run = _run(ctx, twin, "maps", {"member": 0})
    folder = ctx.runtime.data_dir / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    nc = uma.workflows.download(run.id, run.assets[0]["name"], folder / f"{SCOPE}-maps.nc")
    collection = keep_for_twin(ctx, nc, scope=SCOPE, name="maps", twin=twin,
                               title=f"drought and fire-danger maps of {twin}")
    params = uma.get_twin(twin).parameters
    spi3 = uma.edr.position(collection, f"POINT({params['longitude']} {params['latitude']})",
                            parameter_name="spi3").to_xarray()["spi3"].values.ravel()
    share = float((spi3[spi3 == spi3] <= -1).mean())
    ctx.say(f"collection {collection} (CF netCDF, {nc.stat().st_size // 1000} kB: SPI-1/3/12, SPEI-3, FWI, compound "
            f"days per month), read by those who may read {twin}; EDR at the region's centre: {len(spi3)} months "
            f"of SPI-3, {share:.0%} of them in drought")
    return {"collection": collection, "run": run.id, "edr_months": len(spi3), "edr_drought_share": share}


def drought_and_fire(ctx: DemoContext) -> None:
    uma = ctx.client("uma")
    _lake_endpoint(ctx)
    twin = uma.create_twin(ctx.facts["app"], _free_name(uma, "region-impacts"), DEMO_PARAMETERS,
                           description="A 5 x 5 degree region under rain scenarios (synthetic weather, known truth)")
    ctx.facts["twin_name"] = twin.name
    ctx.say(f"uma created twin {twin.name}: {DEMO_PARAMETERS['grid_cells']}² cells of 0.5°, "
            f"{DEMO_PARAMETERS['baseline_years']} baseline + {DEMO_PARAMETERS['years']} scenario years, "
            f"{DEMO_PARAMETERS['droughts']} planted droughts per member")
    started = time.perf_counter()
    fwi = _fwi_check(ctx, twin.name)
    rows = _scenarios(ctx, twin.name)
    maps = _maps(ctx, twin.name)
    _run(ctx, twin.name, "impacts", {"member": 0})  # the twin's own figures, what its view answers with
    answer = uma.view(twin.name, "impacts").summary_text
    ctx.say(f"the portal's view of {twin.name} answers: {answer}")
    seconds = time.perf_counter() - started
    ctx.facts["impacts"] = {"twin": twin.name, "parameters": twin.parameters, "fwi": fwi, "scenarios": rows,
                            "maps": maps, "answer": answer, "seconds": seconds}
    ctx.summary += [
        ("fire weather index", f"within {fwi['max_abs_difference']:.5f} of the cffdrs reference (48 days)"),
        *[(f"scenario {r['scenario']}",
           f"SPI-1 drought {r['frequency']:.3f}, closed form {r['expected_given_fit']:.3f} "
           f"({'inside' if r['inside'] else 'OUTSIDE'} the 99 % interval); compound {r['compound_days']:.1f} d/yr; "
           f"planted droughts found "
           f"{r['planted_found']} of {r['planted']}") for r in rows],
        ("maps", f"collection {maps['collection']} (EDR)")]
