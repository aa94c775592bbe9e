"""The streams chapter: the simulated gauges of a second twin publish live (MQTT when the engine has a broker,
HTTP otherwise), the app's function turns each reading into state, and the summary shows rate and lag. On a
long enough run the gauges misbehave (a level spike, a stuck sensor, a gap): the app's quality checks flag
those readings, the function leaves the bad ones out, and the summary shows the stream's input quality."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from twinengine.demo.chapters.twins import ALERT_THRESHOLD_M, STATION, _free_name
from twinengine.demo.context import DemoContext
from twinengine.demo.plot import plot_levels

__all__ = ["live_gauges"]

BATCH = 4  # an hour of 15-minute readings per message, as a gauge's data logger would send them
FAULTS_FROM = 64  # readings: shorter runs stream clean gauges


def _quality(ctx: DemoContext, twin: str, faults: Any) -> None:
    """The stream's input quality as the app's checks saw it, and its plot."""
    from twinengine.quality.plot import plot_quality

    started = time.perf_counter()
    report = ctx.client("uma").streams.quality(twin, "gauges")
    total = report.total
    path = plot_quality(ctx.runtime.data_dir / "river-reach-quality.png", [report],
                        title=f"{twin}: input quality of the gauges")
    failed = ", ".join(f"{name} {n}" for name, n in sorted(total.checks.items())) or "none"
    ctx.facts["quality"] = {"twin": twin, "records": total.records, "good": total.good, "suspect": total.suspect,
                            "bad": total.bad, "checks": total.checks, "completeness": total.completeness,
                            "faults": None if faults is None else vars(faults), "plot": str(path),
                            "seconds": time.perf_counter() - started}
    injected = "" if faults is None else (f" (the gauges sent a level spike at reading {faults.spike_at}, a stuck "
                                          f"level from {faults.stuck_at} and skipped {faults.gap_for} readings)")
    ctx.say(f"input quality of {twin}/gauges{injected}: {total.good} good, {total.suspect} suspect, {total.bad} "
            f"bad; failed checks: {failed}; completeness {total.completeness or 0:.1%}")
    # pedigree: a level gauge_to_state wrote from a suspect reading says so in the twin's state
    doubtful = [v for v in ctx.client("uma").history(twin, "level", limit=100_000).items if v.quality is not None]
    ctx.facts["quality"]["doubtful_levels"] = len(doubtful)
    if doubtful:
        first = doubtful[0].quality
        ctx.say(f"  {len(doubtful)} levels in the twin's state came from suspect readings and say so "
                f"(quality {first.flag if first else '-'}, function {first.function if first else '-'}): pedigree")
    # the state's own gap check on level: the value after the gauges' silence, and staleness as of now
    gapped = [v for v in doubtful if v.quality is not None and "gap:level" in (v.quality.checks or [])]
    now = ctx.client("uma").get_state(twin)
    level = now.reported.get("level")
    ctx.facts["quality"]["state_gaps"] = len(gapped)
    ctx.facts["quality"]["level_stale_since"] = (level.stale_since.isoformat() if level is not None and level.stale
                                                 and level.stale_since else None)
    if gapped:
        ctx.say(f"  {len(gapped)} level(s) came after a silence in the level (a bad reading left out, the "
                f"logger's gap) and failed the state's own gap check (gap:level, first at "
                f"{gapped[0].timestamp:%Y-%m-%d %H:%M})")
    if level is not None and level.stale:
        ctx.say(f"  read now, level is stale (no report since {level.timestamp:%Y-%m-%d %H:%M}; stale since "
                f"{level.stale_since:%Y-%m-%d %H:%M}): `twin state show {twin}` marks it")
    ctx.summary += [("input quality", f"{twin}/gauges: {total.good} good, {total.suspect} suspect, {total.bad} bad "
                                      f"({failed}); completeness {total.completeness or 0:.1%}; `twin quality "
                                      f"{twin}` for the windows"),
                    ("quality plot", str(path))]


def _publish_mqtt(url: str, topic: str, messages: list[dict[str, Any]]) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, _, port = url.split("://", 1)[-1].partition(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(host, int(port or 1883))
    client.loop_start()
    try:
        infos = [client.publish(topic, json.dumps(m), qos=1) for m in messages]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.loop_stop()
        client.disconnect()


def _history_in_lake(ctx: DemoContext, twin_id: str) -> dict[str, Any]:
    """Run the compactor's pass now (rather than at its next tick) and find its datasets through STAC."""
    from pystac_client import Client as StacClient
    from sqlalchemy import select

    from twinengine.daemons.streams_compactor import Compactor
    from twinengine.streams.models import CompactedSegment

    Compactor(ctx.runtime).run_once()
    with ctx.runtime.db.session(readonly=True) as session:
        rows = list(session.scalars(select(CompactedSegment).where(CompactedSegment.twin_id == twin_id,
                                                                   CompactedSegment.dataset_id.is_not(None))))
    collection = f"{twin_id}-gauges"
    stac = StacClient.open(f"{ctx.url}/stac/", headers={"Authorization": f"Bearer {ctx.tokens['uma']}"})
    items = list(stac.search(collections=[collection], max_items=1000).items()) if rows else []
    return {"collection": collection, "segments": len(items), "records": sum(r.records for r in rows),
            "datasets": sorted(r.dataset_id for r in rows if r.dataset_id)}


def live_gauges(ctx: DemoContext) -> None:
    o, reach = ctx.options, ctx.app_package
    uma, gauge = ctx.client("uma"), ctx.client("gauge-rr01")
    twin = uma.create_twin(ctx.facts["app"], _free_name(uma, "demo-reach-live"), {"station": STATION},
                           description="River reach fed live by its gauges")
    uma.grant(twin.name, "gauge-rr01", "operate")
    uma.desire(twin.name, alert_threshold=ALERT_THRESHOLD_M)
    params = twin.parameters
    simulator = reach.ReachSimulator(
        STATION, reach.Catchment.from_parameters(params),
        reach.RatingCurve(params["rating_a"], params["rating_b"], params["datum_m"]),
        start=o.start, step=timedelta(minutes=o.step_minutes), seed=o.seed + 1)
    readings = list(simulator.readings(o.hours))
    faults = None
    if len(readings) >= FAULTS_FROM:
        readings, faults = reach.with_faults(readings)
    records = [{"time": r.time.isoformat(), "station": r.station, "rain": r.rain, "level": r.level}
               for r in readings]
    batches = [records[i: i + BATCH] for i in range(0, len(records), BATCH)]
    mqtt_url = ctx.runtime.settings.mqtt_url
    advance = ctx.track("gauges streaming" + (" (MQTT)" if mqtt_url else " (HTTP)"), len(records))
    if mqtt_url:
        topic = f"twinengine/demo/{twin.name}/gauges"
        uma.streams.bind_mqtt(twin.name, "gauges", topic)
        time.sleep(1.5)  # the bridge picks up new bindings within a second
    started = time.perf_counter()
    if mqtt_url:
        messages = [{"producer": "rr01", "seq": i * BATCH, "records": b} for i, b in enumerate(batches)]
        for _attempt in range(3):  # published before the bridge subscribed? Send again: repeats are dropped
            _publish_mqtt(mqtt_url, topic, messages)
            deadline = time.monotonic() + 10
            while uma.streams.list(twin.name)[0].end_offset < len(records) and time.monotonic() < deadline:
                time.sleep(0.01)  # acknowledged by the broker; now wait until the engine has them durable
            if uma.streams.list(twin.name)[0].end_offset >= len(records):
                break
        advance(len(records))
    else:
        for i, part in enumerate(batches):
            gauge.streams.append(twin.name, "gauges", part, producer="rr01", seq=i * BATCH)
            advance(len(part))
    published = time.perf_counter() - started
    deadline, max_lag = time.monotonic() + 120, 0
    while time.monotonic() < deadline:
        function = uma.streams.functions(twin.name)[0]
        max_lag = max(max_lag, function.lag)
        if function.offset >= len(records):
            break
        time.sleep(0.05)
    caught_up = time.perf_counter() - started - published
    state = uma.get_state(twin.name)
    transport = "MQTT" if mqtt_url else "HTTP"
    rate = len(records) / published if published else 0.0
    ctx.facts["streams"] = {"twin": twin.name, "transport": transport, "records": len(records),
                            "function_offset": function.offset, "function_calls": function.calls,
                            "ingest_seconds": published, "ingest_rate": rate, "catch_up_seconds": caught_up,
                            "max_lag": max_lag, "head_revision": state.revision,
                            "level": state.reported["level"].value if "level" in state.reported else None}
    ctx.say(f"the gauges of {twin.name} streamed {len(records)} readings over {transport} ({rate:.0f} records/s); "
            f"gauge_to_state turned them into {function.calls} revisions, caught up {caught_up * 1000:.0f} ms "
            f"after the last acknowledgement")
    stream = uma.streams.read_arrow(twin.name, "gauges")
    alerts = uma.history(twin.name, "alert", limit=100_000).items
    path = ctx.runtime.data_dir / "river-reach-live.png"
    plot_levels(path, times=stream.column("time").to_pylist(), levels=stream.column("level").to_pylist(),
                rain=stream.column("rain").to_pylist(), threshold=ALERT_THRESHOLD_M,
                title=f"{twin.name}: gauge records read back from the stream log ({transport}); the function "
                      f"set alert on {sum(bool(a.value) for a in alerts)} readings")
    ctx.facts["streams"]["plot"] = str(path)
    _quality(ctx, twin.name, faults)
    history = _history_in_lake(ctx, uma.get_twin(twin.name).id)
    ctx.facts["streams"]["lake"] = history
    ctx.say(f"the compactor wrote {history['segments']} closed segments ({history['records']} records) as Parquet "
            f"and registered them in the lake: STAC collection {history['collection']} on site-a")
    ctx.summary += [
        ("stream history in the lake", f"{history['segments']} segments, {history['records']} records, checksummed "
                                       f"on site-a: {ctx.url}/stac/collections/{history['collection']}/items"),
        ("live plot", str(path)),
        ("live stream", f"{len(records)} gauge readings over {transport} into {twin.name}: {rate:.0f} records/s "
                        f"acknowledged durable"),
        ("function on arrival", f"gauge_to_state: {function.calls} calls, lag at most {max_lag} records, caught up "
                                f"{caught_up * 1000:.0f} ms after the last ack; level now "
                                f"{ctx.facts['streams']['level']} m (revision {state.revision})"),
    ]
