"""The flood chapter: the question a council asks of the gauge, answered by the twin people are sent to. Will
the river at RR-01 exceed the alert level in the next 24 h, how sure are we, and how good have these forecasts
been? uma marks the demo's flood twin as the official one at its gauge (tag ``official``), and the chapter reads
its flood view as the portal shows it (``client.view``): the state revision its official forecast started from,
the chance of exceeding the alert level within 6, 12, 24 and 48 h with the ensemble's spread, and the skill of
its past forecasts at those leads. Then the live twin's forecast starts from its assimilated storage: each
member from a member of the analysis, so the forecast's first hour carries the analysis' uncertainty."""

from __future__ import annotations

import time
from typing import Any

from twinengine.demo.chapters.twins import ALERT_THRESHOLD_M
from twinengine.demo.context import DemoContext
from twinengine.workflows.schemas import StartRead

__all__ = ["flood_answer", "started_words"]

MEMBERS = 16
COLLECTION = "rain-forecast"  # the rain forecast the workflows chapter brought (chapters.workflows.COLLECTION)


def started_words(start: StartRead | None) -> str:
    """``started from revision 100 (storage 13.8 mm at 2026-03-04 00:00 UTC)``, as the flood view says it."""
    return start.text if start is not None else "started from the graph's defaults (its workflow maps no state)"


def flood_answer(ctx: DemoContext) -> None:
    uma, name = ctx.client("uma"), ctx.facts["twin_name"]
    twin = uma.get_twin(name)
    if "official" not in twin.tags:  # of the twins at RR-01 (forks, the live twin), the one people are sent to
        uma.update_twin(name, tags=[*twin.tags, "official"])
    started = time.perf_counter()
    answered = uma.view(name, "flood")
    seconds = time.perf_counter() - started
    forecast, ahead, official = answered.forecast, answered.outlook, answered.official
    if forecast is None or ahead is None:
        ctx.say(f"flood view of {name}: no forecast with a threshold to answer from yet")
        return
    ctx.say(f"{official.text if official is not None and official.text else name} Its flood view answers (in "
            f"{seconds:.2f} s):")
    ctx.say(f"  the official forecast ({'ensemble' if forecast.members else 'run'} {forecast.run_id}"
            f"{f' of {forecast.members} members' if forecast.members else ''}) "
            f"{forecast.start.text if forecast.start else 'recorded no start'}")
    ctx.say(f"  {ahead.text}")
    ctx.say(f"  {ahead.skill_text}")
    facts: dict[str, Any] = {
        "twin": name, "official": bool(official and official.official), "run": forecast.run_id,
        "members": forecast.members, "start_revision": forecast.start.revision if forecast.start else None,
        "start_time": forecast.start.time.isoformat() if forecast.start and forecast.start.time else None,
        "start_text": forecast.start.text if forecast.start else None, "threshold": ahead.threshold,
        "outlook": {row.key: {"probability": row.probability, "at": row.probability_at, "spread": row.spread,
                              "low": row.low, "high": row.high, "mean": row.mean,
                              "skill": row.skill.model_dump() if row.skill else None} for row in ahead.leads},
        "text": ahead.text, "skill_text": ahead.skill_text, "summary": answered.summary_text, "seconds": seconds}
    facts["live"] = _live_from_analysis(ctx)
    ctx.facts["flood"] = facts
    chances = ", ".join(f"{r.label} {r.probability:.0%}" for r in ahead.leads if r.probability is not None)
    revision = f"started from revision {facts['start_revision']}; " if facts["start_revision"] is not None else ""
    ctx.summary.append(("flood outlook", f"{name} (official at its gauge): {revision}P(level > "
                                         f"{ahead.threshold:g} m) within {chances}; {ahead.skill_text}"))


def _live_from_analysis(ctx: DemoContext) -> dict[str, Any] | None:
    """The live twin's forecast ensemble from its assimilated storage: each member starts from a member of the
    analysis (the engine draws them), and its first hour is set beside the gauge's last level."""
    live = ctx.facts.get("streams", {}).get("twin")
    if live is None or "assimilation" not in ctx.facts:
        return None
    uma = ctx.client("uma")
    run = uma.ensembles.run(live, "forecast", members=MEMBERS, seed=ctx.options.seed,
                            parameters={"collection": COLLECTION, "alert_level": ALERT_THRESHOLD_M})
    final = uma.ensembles.wait(run.id, poll=0.1, timeout=600)
    if final.status != "finished":
        raise RuntimeError(f"the live twin's forecast ensemble ended as {final.status}: {final.error}")
    issued = max(uma.verification.forecasts(live, "level", limit=5, values=True),
                 key=lambda f: (f.issued_at, f.run_id == final.id))
    first = (issued.values or [])[0]
    low, high = (first.quantiles or {}).get("0.05"), (first.quantiles or {}).get("0.95")
    observed = uma.get_state(live).reported["level"]
    storage = [float(m.parameters["storage_mm"]) for m in final.members if "storage_mm" in m.parameters]
    start = final.start
    entry = start.parameters.get("storage_mm") if start else None
    ctx.say(f"  {live}'s forecast {started_words(start)}: its {MEMBERS} members start from "
            f"the analysis' members ({min(storage):.3g} to {max(storage):.3g} mm); first hour {first.value:.2f} m "
            f"(5-95 % {low:.2f} to {high:.2f}), the gauge's last level {observed.value:.2f} m"
            if storage and low is not None and high is not None else
            f"  {live}'s forecast {started_words(start)}")
    return {"twin": live, "run": final.id, "start_revision": start.revision if start else None,
            "storage_mm": entry.value if entry else None,
            "storage_std": (entry.uncertainty or {}).get("std") if entry else None,
            "member_storage_mm": storage, "first_level_m": first.value, "first_low_m": low, "first_high_m": high,
            "first_members": first.members, "observed_level_m": observed.value,
            "observed_at": observed.timestamp.isoformat()}
