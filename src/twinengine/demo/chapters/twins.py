"""The foundation's chapters: publish the app, create a twin, let the physical twin report, travel in time,
fork a what-if, plot the history, and read the audit log."""

from __future__ import annotations

import time
from datetime import timedelta

from twinengine.client import Client
from twinengine.demo.context import DemoContext
from twinengine.demo.plot import plot_levels
from twinengine.errors import AppVersionConflict, TwinNameTaken

__all__ = ["audit", "create_twin", "gauges_report", "plot_history", "publish_app", "time_travel", "what_if"]

STATION = "RR-01"
ALERT_THRESHOLD_M = 1.8
WHAT_IF_RUNOFF = 0.7


def publish_app(ctx: DemoContext) -> None:
    try:
        published = ctx.client("ada").publish_app(ctx.app_folder)
    except AppVersionConflict as exc:  # the data dir of an earlier release, whose example app had other code
        raise AppVersionConflict(
            f"{exc}. This data dir ({ctx.runtime.data_dir}) holds the example app as an earlier release of "
            "twinengine published it: run the demo in a new one (twin demo --data-dir NEW_FOLDER) or remove "
            "this one") from None
    app = published.app
    ctx.facts.update(app=f"{app.name}@{app.version}", app_sha256=app.archive_sha256)
    ctx.say(f"ada published {app.name}@{app.version} (sha256 {app.archive_sha256[:16]}…, "
            f"{'new' if published.created else 'identical content already there'})")
    ctx.summary.append(("app", f"{app.name}@{app.version}, sha256 {app.archive_sha256[:16]}…"))


def _free_name(client: Client, base: str) -> str:
    taken = {t.name for t in client.list_twins(limit=500).items}
    n, name = 1, base
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def create_twin(ctx: DemoContext) -> None:
    uma = ctx.client("uma")
    name = _free_name(uma, "demo-reach")
    lon, lat = ctx.app_package.GAUGE  # where the gauge is: the portal's map shows the twin there
    params = {"station": STATION, "longitude": lon, "latitude": lat}
    try:
        twin = uma.create_twin(ctx.facts["app"], name, params, description="River reach at gauge RR-01 (simulated)")
    except TwinNameTaken:  # someone took the name between our look and our create
        twin = uma.create_twin(ctx.facts["app"], f"{name}-{int(time.time())}", params)
    uma.grant(twin.name, "gauge-rr01", "operate")
    uma.desire(twin.name, alert_threshold=ALERT_THRESHOLD_M, message="alert above 1.8 m")
    ctx.facts["twin_name"] = twin.name
    ctx.say(f"uma created twin {twin.name} ({twin.id}), granted the gauges 'operate', desired alert_threshold "
            f"{ALERT_THRESHOLD_M} m")


def gauges_report(ctx: DemoContext) -> None:
    """The physical twin (simulated) reports every step and reads its desired threshold now and then."""
    o, reach, gauge = ctx.options, ctx.app_package, ctx.client("gauge-rr01")
    name = ctx.facts["twin_name"]
    params = ctx.client("uma").get_twin(name).parameters
    simulator = reach.ReachSimulator(
        STATION, reach.Catchment.from_parameters(params),
        reach.RatingCurve(params["rating_a"], params["rating_b"], params["datum_m"]),
        start=o.start, step=timedelta(minutes=o.step_minutes), seed=o.seed)
    steps = round(o.hours * 60 / o.step_minutes)
    advance = ctx.track("gauges reporting", steps)
    threshold, alert_steps, written = ALERT_THRESHOLD_M, 0, 0
    peak = (o.start, float("-inf"))
    started = time.perf_counter()
    for i, reading in enumerate(simulator.readings(o.hours)):
        if i % 4 == 0:
            desired = gauge.get_state(name).desired.get("alert_threshold")
            threshold = float(desired.value) if desired else threshold
        alert = reading.level > threshold
        alert_steps += alert
        if reading.level > peak[1]:
            peak = (reading.time, reading.level)
        gauge.report(name, timestamp=reading.time, rain=reading.rain, level=reading.level,
                     discharge=reading.discharge, storage=reading.storage, alert=alert)
        written += 1
        advance(1)
    seconds = time.perf_counter() - started
    last = ctx.client("uma").get_state(name)
    ctx.facts.update(steps=steps, revisions_written=written, write_seconds=seconds, peak_time=peak[0],
                     peak_level=peak[1], alert_steps=alert_steps, last_state=last.model_dump(mode="json"))
    ctx.say(f"the gauges reported {written} readings: revisions 3..{last.revision}, peak level {peak[1]:.2f} m at "
            f"{peak[0]:%Y-%m-%d %H:%M}, alert on {alert_steps} steps")
    rate = written / seconds if seconds else 0.0
    ctx.summary += [
        ("revisions written", f"{written} gauge reports in {seconds:.2f} s ({rate:.0f}/s)"),
        ("last state", ", ".join(f"{p} {v.value}{' ' + v.unit if v.unit else ''}" for p, v in last.reported.items())),
        ("peak level", f"{peak[1]:.2f} m at {peak[0]:%Y-%m-%d %H:%M} UTC; alert on {alert_steps} of {steps} steps"),
    ]


def time_travel(ctx: DemoContext) -> None:
    """Six hours before the peak: the state as of a time and as of the matching revision, and a diff."""
    uma, name, o = ctx.client("uma"), ctx.facts["twin_name"], ctx.options
    when = max(ctx.facts["peak_time"] - timedelta(hours=6), o.start + timedelta(minutes=o.step_minutes))
    past = uma.get_state(name, at=when).reported["level"]
    if uma.get_state(name, revision=past.revision).reported["level"].value != past.value:
        raise RuntimeError("the state as of a time and as of the matching revision disagree")
    changes = len(uma.diff(name, past.revision).changes)
    ctx.facts["time_travel"] = {"at": when.isoformat(), "level_m": past.value, "revision": past.revision,
                                "changes_since": changes, "timestamp": past.timestamp}
    ctx.say(f"time travel: at {when:%Y-%m-%d %H:%M} the level was {past.value:.2f} m (revision {past.revision}); "
            f"{changes} properties changed since")
    ctx.summary.append(("time travel", f"at {when:%Y-%m-%d %H:%M} UTC: level {past.value:.2f} m (revision "
                                       f"{past.revision}); {changes} properties changed since"))


def what_if(ctx: DemoContext) -> None:
    """Fork at the time-travel revision with wetter soils; replay the observed rain through the app's model."""
    uma, name, reach = ctx.client("uma"), ctx.facts["twin_name"], ctx.app_package
    travel = ctx.facts["time_travel"]
    head = uma.get_twin(name).head_revision
    fork = uma.fork_twin(name, f"{name}-wetter", at_revision=travel["revision"],
                         parameters={"runoff_coefficient": WHAT_IF_RUNOFF},
                         description="What if the soils had been saturated?")
    catchment = reach.Catchment.from_parameters(fork.parameters)
    catchment.storage_mm = float(uma.get_state(fork.name).reported["storage"].value)
    p = fork.parameters
    rating = reach.RatingCurve(p["rating_a"], p["rating_b"], p["datum_m"])
    rain = uma.history(name, "rain", since=travel["timestamp"] + timedelta(seconds=1), limit=100_000).items
    step_h = ctx.options.step_minutes / 60
    times, levels = [], []
    for value in rain:
        level = rating.level(catchment.step(float(value.value), step_h))
        uma.report(fork.name, timestamp=value.timestamp, rain=value.value, level=round(level, 4),
                   discharge=round(catchment.discharge(), 3), storage=round(catchment.storage_mm, 3),
                   message="what-if replay")
        times.append(value.timestamp)
        levels.append(level)
    untouched = uma.get_twin(name).head_revision == head
    if not untouched:
        raise RuntimeError("writing to the fork changed the origin")
    observed = max((v.value for v in uma.history(name, "level", limit=100_000).items
                    if v.timestamp > travel["timestamp"]), default=0.0)
    fork_peak = max(levels, default=float("nan"))
    ctx.facts["what_if"] = {"fork": fork.name, "revision": travel["revision"], "peak_level_m": fork_peak,
                            "observed_peak_level_m": observed, "origin_untouched": untouched,
                            "times": times, "levels": levels}
    ctx.say(f"what-if fork {fork.name} from revision {travel['revision']} (runoff {WHAT_IF_RUNOFF}): peak "
            f"{fork_peak:.2f} m vs {observed:.2f} m observed; origin untouched")
    ctx.summary.append(("what-if fork", f"{fork.name} from revision {travel['revision']}: peak {fork_peak:.2f} m vs "
                                        f"{observed:.2f} m observed; origin untouched: {untouched}"))


def plot_history(ctx: DemoContext) -> None:
    uma, name = ctx.client("uma"), ctx.facts["twin_name"]
    levels = uma.history(name, "level", limit=100_000).items
    rain = uma.history(name, "rain", limit=100_000).items
    what = ctx.facts["what_if"]
    path = ctx.options.plot or (ctx.runtime.data_dir / "river-reach-level.png")
    plot_levels(path, times=[v.timestamp for v in levels], levels=[v.value for v in levels],
                rain=[v.value for v in rain], threshold=ALERT_THRESHOLD_M, fork_times=what["times"],
                fork_levels=what["levels"], fork_label=f"what-if: runoff {WHAT_IF_RUNOFF} ({what['fork']})",
                title=f"{name}: level history read back from the twin's state log")
    ctx.facts["plot"] = str(path)
    ctx.summary.append(("plot", str(path)))


def audit(ctx: DemoContext) -> None:
    total = ctx.client("admin").audit(limit=1).total
    ctx.facts["audit_events"] = total
    ctx.summary.append(("audit log", f"{total} events, every write attempt with who, what, when and outcome"))
