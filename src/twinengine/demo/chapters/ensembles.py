"""The ensembles chapter: the forecast again as an ensemble (the rain forecast's error and the runoff
coefficient perturbed as river-reach declares, every member starting from the twin's state), the probability of
exceeding the alert level in the twin's state, a plot of the spread, and the wetter-soils scenario's branches
side by side."""

from __future__ import annotations

import time
from typing import Any

import yaml

from twinengine.demo.chapters.flood import started_words
from twinengine.demo.chapters.twins import ALERT_THRESHOLD_M
from twinengine.demo.chapters.workflows import COLLECTION
from twinengine.demo.context import DemoContext
from twinengine.ensembles.plot import plot_ensemble
from twinengine.quality.uncertainty import describe

__all__ = ["forecast_ensemble"]

MEMBERS = 16
SCENARIO = "wetter-soils.yaml"
SCENARIO_MEMBERS = 4


def forecast_ensemble(ctx: DemoContext) -> None:
    uma, name = ctx.client("uma"), ctx.facts["twin_name"]
    head = uma.get_twin(name).head_revision
    started = time.perf_counter()
    run = uma.ensembles.run(name, "forecast", members=MEMBERS, seed=ctx.options.seed,
                            parameters={"collection": COLLECTION, "alert_level": ALERT_THRESHOLD_M})
    advance = ctx.track(f"forecast ensemble of {MEMBERS} ({run.id})", 100)
    shown = [0]

    def progress(read: object) -> None:
        value = int(getattr(read, "progress", 0.0))
        if value > shown[0]:
            advance(value - shown[0])
            shown[0] = value

    final = uma.ensembles.wait(run.id, poll=0.1, timeout=600, on_progress=progress)
    seconds = time.perf_counter() - started
    if final.status != "finished" or not final.statistics:
        raise RuntimeError(f"the forecast ensemble ended as {final.status}: {final.error}")
    stats = final.statistics
    chance = float(stats["peak"]["exceedance"])
    state = uma.get_state(name).reported
    if abs(float(state["forecast_exceedance_probability"].value) - chance) > 1e-9:
        raise RuntimeError("the ensemble's probability did not reach the twin's state")
    peak = stats["peak"]
    ctx.say(f"forecast ensemble {final.id}: {MEMBERS} members in {seconds:.2f} s (load shared); peak "
            f"{peak['mean']:.2f} m ± {peak['spread']:.2f}; P(level > alert {ALERT_THRESHOLD_M} m) = {chance:.0%}")
    ctx.say(f"  its members {started_words(final.start)}")
    level = state["forecast_peak_level"]
    if level.uncertainty is None or level.uncertainty.std is None:
        raise RuntimeError("the ensemble's peak did not reach the twin's state with its uncertainty")
    ctx.say(f"  state forecast_peak_level = {level.value:.2f} {level.unit} with its uncertainty: "
            f"{describe(level.uncertainty)} (revision {level.revision})")
    members = [uma.workflows.get(m.run_id).value for m in final.members]
    path = plot_ensemble(ctx.runtime.data_dir / "river-reach-ensemble.png", members, stats,
                         title=f"{name}: forecast ensemble of {MEMBERS} members", unit="level (m)")
    ctx.facts["ensemble"] = {"run": final.id, "members": MEMBERS, "seconds": seconds, "probability": chance,
                             "peak": peak, "member_runs": [m.run_id for m in final.members], "plot": str(path),
                             "revisions": uma.get_twin(name).head_revision - head,
                             "start": final.start.model_dump(mode="json") if final.start else None,
                             "lake_assets": [a["did"] for a in final.assets if a.get("did")]}
    ctx.summary.append(("forecast ensemble", f"{final.id}: P(level > {ALERT_THRESHOLD_M} m) = {chance:.0%} over "
                                             f"{MEMBERS} members, peak {peak['mean']:.2f} ± {peak['spread']:.2f} m; "
                                             f"{seconds:.2f} s; plot {path}"))
    started = time.perf_counter()
    ctx.facts["ensemble"]["scenario"] = _scenario(ctx, name)
    ctx.facts["ensemble"]["scenario_seconds"] = time.perf_counter() - started


def _scenario(ctx: DemoContext, name: str) -> list[dict[str, Any]]:
    """The app's wetter-soils scenario from this twin: fork, run, and compare its branches."""
    uma = ctx.client("uma")
    doc = yaml.safe_load((ctx.app_folder / "scenarios" / SCENARIO).read_text())
    doc["ensemble"]["members"] = SCENARIO_MEMBERS  # fewer than the file's, to keep the demo short
    started = uma.ensembles.scenario(doc, twin=name)
    for branch in started.branches:
        done = uma.workflows.wait(branch.run_id, poll=0.1, timeout=600)
        if done.status != "finished":
            raise RuntimeError(f"scenario branch {branch.name} ended as {done.status}: {done.error}")
    comparison = uma.ensembles.compare([b.fork for b in started.branches], properties=started.compare)
    rows: list[dict[str, Any]] = []
    for twin in comparison.twins:
        series = twin.series
        rows.append({"twin": twin.name, "changed": twin.changed,
                     "peak_m": max((v for v in series.values if v is not None), default=None) if series else None,
                     "probability": series.exceedance if series else None})
    ctx.say("scenario wetter-soils, branches side by side:")
    ctx.say(f"  {'branch':<28} {'changed':<28} {'mean peak (m)':>13} {'P(> alert)':>10}")
    for row in rows:
        changed = ", ".join(f"{k}={v}" for k, v in row["changed"].items()) or "-"
        peak, chance = row["peak_m"], row["probability"]
        ctx.say(f"  {row['twin']!s:<28} {changed:<28} {peak if peak is None else f'{peak:.2f}':>13} "
                f"{'-' if chance is None else f'{chance:.0%}':>10}")
    ctx.summary.append(("scenario", "wetter-soils: " + "; ".join(
        f"{r['twin']} P(> alert) {'-' if r['probability'] is None else format(r['probability'], '.0%')}"
        for r in rows)))
    return rows
