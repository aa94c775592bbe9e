"""Functions on joined streams: the manifest's ``join`` checked with errors naming the field, and the join
itself on a hub: partners nearest in time within the tolerance, a bounded wait for late ones, what happens to
a record whose partner never comes (called flagged, or left out), and streams that moved past a record."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from helpers import make_app
from twinengine.catalog.manifest import FunctionTrigger, Manifest
from twinengine.catalog.validate import check_app_dir
from twinengine.streams import records as stream_records
from twinengine.streams.arrays import to_python
from twinengine.streams.backends.memory import MemoryLog
from twinengine.streams.functions import select_kept_calls
from twinengine.streams.hub import StreamHub, stream_key
from twinengine.streams.join import MISSING, Joiner

T0 = datetime(2026, 3, 1, tzinfo=UTC)
STREAMS: dict[str, Any] = {
    "strain": {"fields": {"time": {"type": "timestamp"}, "h": {"type": "float"}}},
    "seis": {"fields": {"time": {"type": "timestamp"}, "x": {"type": "float"}}},
    "mag": {"time_field": "t", "fields": {"t": {"type": "timestamp"}, "x": {"type": "float"}}},
    "stations": {"key": "station", "fields": {"time": {"type": "timestamp"}, "station": {"type": "string"},
                                             "x": {"type": "float"}}},
    "out": {"fields": {"time": {"type": "timestamp"}, "y": {"type": "float"}}},
}


def _fn(**join: Any) -> dict[str, Any]:
    return {"entrypoint": "test_app.fns:a", "stream": "strain", "join": join}


def _problems(tmp_path: Path, functions: dict[str, Any], streams: dict[str, Any] | None = None) -> dict[str, str]:
    _manifest, problems = check_app_dir(make_app(tmp_path, manifest={"streams": streams or STREAMS,
                                                                       "functions": functions}))
    assert problems
    return {p.loc: p.msg for p in problems}


def test_a_join_is_declared_and_read() -> None:
    manifest = Manifest.model_validate({
        "name": "a", "version": "1.0.0", "title": "t", "domain": "d", "authors": [{"name": "n"}],
        "license": "MIT", "streams": STREAMS,
        "functions": {"veto": _fn(streams=["seis", "mag"], tolerance="1ms", wait="2s", incomplete="skip")}})
    fn = manifest.functions["veto"]
    assert fn.join is not None and fn.inputs == ["strain", "seis", "mag"]
    assert fn.join.tolerance == timedelta(milliseconds=1) and fn.join.wait == timedelta(seconds=2)
    assert fn.join.incomplete == "skip"
    default = Manifest.model_validate({**manifest.model_dump(), "functions": {"v": _fn(streams=["seis"])}})
    join = default.functions["v"].join
    assert join is not None and (join.tolerance, join.wait, join.incomplete) == (timedelta(0), timedelta(seconds=10),
                                                                               "call")


def test_a_bad_join_is_refused_naming_the_field(tmp_path: Path) -> None:
    found = _problems(tmp_path / "a", {"a": _fn(streams=["seis", "ghost", "strain", "seis", "stations"])})
    assert "'ghost' is not declared" in found["functions.a.join.streams[1]"]
    assert "the stream the function runs on" in found["functions.a.join.streams[2]"]
    assert "joined twice" in found["functions.a.join.streams[3]"]
    assert "tells sources apart by 'station'" in found["functions.a.join.streams[4]"]
    found = _problems(tmp_path / "b", {  # the declaration's own shape
        "b": _fn(streams=["mag"], tolerance="soon"),
        "c": _fn(streams=["mag"], wait="2h", incomplete="drop"),
        "d": _fn(streams=[]),
    })
    assert "not a duration" in found["functions.b.join.tolerance"]
    assert "between 0 and 1h" in found["functions.c.join.wait"]
    assert "functions.c.join.incomplete" in found
    assert "functions.d.join.streams" in found


def test_a_joined_stream_is_not_a_field_of_the_own_stream_nor_a_target(tmp_path: Path) -> None:
    streams = {**STREAMS, "h": STREAMS["seis"]}
    found = _problems(tmp_path, {"a": {**_fn(streams=["h", "seis"]), "publishes": ["seis", "out"]}}, streams)
    assert "is a field of 'strain'" in found["functions.a.join.streams[0]"]
    assert "a stream it joins" in found["functions.a.publishes[0]"]
    assert "functions.a.publishes[1]" not in found


def test_a_cycle_through_a_joined_stream_is_refused(tmp_path: Path) -> None:
    found = _problems(tmp_path, {
        "a": {**_fn(streams=["seis"]), "publishes": ["out"]},
        "b": {"entrypoint": "test_app.fns:b", "stream": "out", "publishes": ["seis"]}})
    assert any("functions publish in a cycle" in msg for msg in found.values())


# -- the join on a hub ---------------------------------------------------------------------------------------

def _manifest(**join: Any) -> Manifest:
    return Manifest.model_validate({
        "name": "a", "version": "1.0.0", "title": "t", "domain": "d", "authors": [{"name": "n"}],
        "license": "MIT", "streams": STREAMS, "functions": {"veto": _fn(streams=["seis", "mag"], **join)}})


def _append(hub: StreamHub, manifest: Manifest, stream: str, rows: list[dict[str, Any]],
            quality: Any = None) -> None:
    declared = manifest.streams[stream]
    hub.append(stream_key("tw", stream), stream_records.check_records(declared, rows),
               time_field=declared.time_field, quality=quality)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _join(hub: StreamHub, manifest: Manifest, joiner: Joiner, now: float) -> tuple[Any, list[dict[str, Any]]]:
    table = hub.read(stream_key("tw", "strain"), start=0, limit=100, time_field="time")
    records = to_python(table) if table is not None else []
    return joiner(hub, "tw", table, records, now=now), records


def test_partners_are_the_nearest_records_within_the_tolerance() -> None:
    manifest = _manifest(tolerance="10ms")
    hub = StreamHub(MemoryLog())
    _append(hub, manifest, "strain", [{"time": _at(s), "h": s} for s in (0, 1, 2)])
    _append(hub, manifest, "seis", [{"time": _at(s), "x": 10 + s} for s in (0.004, 0.995, 1.003, 2.02)])
    _append(hub, manifest, "mag", [{"t": _at(s), "x": 20 + s} for s in (0, 1, 2)])
    joined, _ = _join(hub, manifest, Joiner(manifest, "strain", manifest.functions["veto"].join), now=math.inf)
    first, second, third = joined.records
    assert first["h"] == 0 and first["seis"]["x"] == 10.004 and first["mag"]["x"] == 20 and first[MISSING] == []
    assert second["seis"]["x"] == 11.003  # 3 ms beats 5 ms
    assert third["seis"] is None and third[MISSING] == ["seis"]  # 20 ms is beyond the tolerance
    assert third["mag"]["t"] == _at(2) and joined.incomplete == 1 and joined.skipped == []


def test_a_record_waits_for_late_partners_then_runs_with_what_arrived() -> None:
    manifest = _manifest(wait="5s")
    hub = StreamHub(MemoryLog())
    joiner = Joiner(manifest, "strain", manifest.functions["veto"].join)
    _append(hub, manifest, "strain", [{"time": _at(s), "h": s} for s in (0, 1, 2)])
    _append(hub, manifest, "seis", [{"time": _at(s), "x": s} for s in (0, 1, 2)])
    _append(hub, manifest, "mag", [{"t": _at(0), "x": 0.0}])
    joined, records = _join(hub, manifest, joiner, now=0)  # long before anything's wait ran out
    arrival = records[1]["_arrival"].timestamp()
    assert [r["h"] for r in joined.records] == [0]  # the second record waits, and holds back the third
    assert joined.wait_until == pytest.approx(arrival + 5)
    _append(hub, manifest, "mag", [{"t": _at(1), "x": 1.0}])  # the partner came: the record joins
    joined, _ = _join(hub, manifest, joiner, now=0)
    assert [r["h"] for r in joined.records] == [0, 1] and joined.records[1]["mag"]["x"] == 1.0
    joined, _ = _join(hub, manifest, joiner, now=arrival + 5)  # the third's wait has run out
    assert [r["h"] for r in joined.records] == [0, 1, 2] and joined.records[2][MISSING] == ["mag"]
    assert joined.records[2]["mag"] is None and joined.records[2]["seis"]["x"] == 2 and joined.wait_until is None


def test_a_record_without_partners_can_be_left_out() -> None:
    manifest = _manifest(wait="1s", incomplete="skip")
    hub = StreamHub(MemoryLog())
    joiner = Joiner(manifest, "strain", manifest.functions["veto"].join)
    _append(hub, manifest, "strain", [{"time": _at(s), "h": s} for s in (0, 1)])
    _append(hub, manifest, "seis", [{"time": _at(s), "x": s} for s in (0, 1)])
    _append(hub, manifest, "mag", [{"t": _at(1), "x": 1.0}])
    joined, _ = _join(hub, manifest, joiner, now=math.inf)
    assert joined.skipped == [0] and joined.incomplete == 1 and len(joined.records) == 2
    calls, used = select_kept_calls(FunctionTrigger(kind="record"), joined.records, (), joined.skipped)
    assert [c[0][0]["h"] for c in calls] == [1] and [c[1] for c in calls] == [2] and used == 2
    windows, used = select_kept_calls(FunctionTrigger(kind="count", count=2), joined.records, (), joined.skipped)
    assert windows == [] and used == 1  # the left-out record is consumed; the window waits for one more


def test_a_stream_that_moved_past_a_record_is_not_waited_for() -> None:
    manifest = _manifest(wait="1h")
    hub = StreamHub(MemoryLog())
    joiner = Joiner(manifest, "strain", manifest.functions["veto"].join)
    _append(hub, manifest, "strain", [{"time": _at(s), "h": s} for s in (0, 1)])
    _append(hub, manifest, "seis", [{"time": _at(s), "x": s} for s in (0, 1)])
    _append(hub, manifest, "mag", [{"t": _at(0), "x": 0.0}, {"t": _at(2), "x": 2.0}])  # its second is lost
    joined, _ = _join(hub, manifest, joiner, now=0)
    assert [r[MISSING] for r in joined.records] == [[], ["mag"]] and joined.wait_until is None


def test_partners_that_arrive_while_the_join_reads_are_not_taken_for_lost() -> None:
    """A joined stream's records (its partner and a later one) are appended after the join read the stream and
    before it looked at the stream's newest time: the stream then seems to have moved past the record without
    its partner. The newest time is looked at first, so the record waits for its partner instead of being
    called without it (on NATS this happened between two requests of one test)."""
    manifest = _manifest(wait="1h")
    hub = StreamHub(MemoryLog())
    joiner = Joiner(manifest, "strain", manifest.functions["veto"].join)
    _append(hub, manifest, "strain", [{"time": _at(0), "h": 0.0}])
    _append(hub, manifest, "seis", [{"time": _at(0), "x": 0.0}])
    read = hub.read
    arrived: list[str] = []

    def read_then_mag_arrives(key: str, **kwargs: Any) -> Any:
        found = read(key, **kwargs)
        if key == stream_key("tw", "mag") and not arrived:
            arrived.append(key)
            _append(hub, manifest, "mag", [{"t": _at(0), "x": 0.0}, {"t": _at(5), "x": 5.0}])
        return found

    hub.read = read_then_mag_arrives  # type: ignore[method-assign]
    joined, _ = _join(hub, manifest, joiner, now=0)
    assert arrived and joined.records == [] and joined.wait_until is not None  # it waits: the partner is there
    joined, _ = _join(hub, manifest, joiner, now=0)
    assert [r[MISSING] for r in joined.records] == [[]] and joined.records[0]["mag"]["x"] == 0.0


def test_a_partner_left_out_by_quality_is_missing_without_a_wait() -> None:
    from twinengine.streams.service import quality_plan

    streams = {**STREAMS, "seis": {"fields": {"time": {"type": "timestamp"}, "x": {"type": "float"}},
                                   "quality": [{"check": "range", "field": "x", "min": 0, "max": 10}]}}
    manifest = Manifest.model_validate({**_manifest().model_dump(), "streams": streams})
    hub = StreamHub(MemoryLog())
    joiner = Joiner(manifest, "strain", manifest.functions["veto"].join)
    _append(hub, manifest, "strain", [{"time": _at(0), "h": 0.0}])
    _append(hub, manifest, "seis", [{"time": _at(0), "x": 99.0}], quality=quality_plan(manifest.streams["seis"]))
    _append(hub, manifest, "mag", [{"t": _at(0), "x": 0.0}])
    table = hub.read(stream_key("tw", "strain"), start=0, limit=10, time_field="time")
    assert table is not None
    joined = joiner(hub, "tw", table, to_python(table), now=0, exclude={"bad"})
    (record,) = joined.records
    assert record["seis"] is None and record[MISSING] == ["seis"] and record["mag"]["x"] == 0.0


def test_the_hub_finds_where_a_time_begins_and_its_newest_time() -> None:
    manifest = _manifest()
    hub = StreamHub(MemoryLog())
    key = stream_key("tw", "seis")
    assert hub.latest_time(key) is None and hub.offset_at(key, 0) == 0
    for batch in ((0, 1), (2, 3), (4, 5)):
        _append(hub, manifest, "seis", [{"time": _at(s), "x": s} for s in batch])
    micros = int(_at(2.5).timestamp() * 1e6)
    assert hub.offset_at(key, micros) == 2  # the batch holding 2 s and 3 s
    assert hub.offset_at(key, micros, start=3) == 3
    assert hub.offset_at(key, int(_at(9).timestamp() * 1e6)) == 6  # nothing yet: the end
    assert hub.latest_time(key) == int(_at(5).timestamp() * 1e6)


# -- keyed streams: a sensor network joined to its reference station -------------------------------------------

KEYED: dict[str, Any] = {
    "pm": {"key": "sensor", "fields": {"time": {"type": "timestamp"}, "sensor": {"type": "string"},
                                       "pm25": {"type": "float"}}},
    "reference": {"fields": {"time": {"type": "timestamp"}, "pm25": {"type": "float"}}},
    "humidity": {"key": "sensor", "fields": {"time": {"type": "timestamp"}, "sensor": {"type": "string"},
                                             "rh": {"type": "float"}}},
    "counts": {"key": "sensor", "fields": {"time": {"type": "timestamp"}, "sensor": {"type": "integer"},
                                           "n": {"type": "float"}}},
}


def _keyed(**join: Any) -> Manifest:
    return Manifest.model_validate({
        "name": "a", "version": "1.0.0", "title": "t", "domain": "d", "authors": [{"name": "n"}],
        "license": "MIT", "streams": KEYED,
        "functions": {"calibrate": {"entrypoint": "test_app.fns:a", "stream": "pm", "join": join}}})


def _keyed_join(hub: StreamHub, manifest: Manifest, now: float) -> Any:
    join = manifest.functions["calibrate"].join
    assert join is not None
    table = hub.read(stream_key("tw", "pm"), start=0, limit=100, time_field="time")
    return Joiner(manifest, "pm", join)(hub, "tw", table, to_python(table) if table is not None else [], now=now)


def test_a_keyed_stream_joins_per_key_and_is_refused_where_keys_cannot_match(tmp_path: Path) -> None:
    function = {"entrypoint": "test_app.fns:a", "stream": "pm"}
    _manifest_ok, problems = check_app_dir(make_app(tmp_path / "ok", manifest={"streams": KEYED, "functions": {
        "calibrate": {**function, "join": {"streams": ["reference", "humidity"]}}}},
        files={"test_app/fns.py": "def a(ctx, records):\n    pass\n"}))
    assert problems == []  # a keyed stream joined to an unkeyed one and to one keyed alike
    found = _problems(tmp_path / "bad", {
        "a": {**function, "join": {"streams": ["counts"]}},  # keyed by an integer, pm by a string
        "b": {**function, "stream": "reference", "join": {"streams": ["humidity"]}}}, KEYED)
    assert "the keys must be of one type" in found["functions.a.join.streams[0]"]
    assert "'reference' has no key" in found["functions.b.join.streams[0]"]


def test_every_key_joins_the_reference_record_at_its_time() -> None:
    manifest = _keyed(streams=["reference"], tolerance="30s")
    hub = StreamHub(MemoryLog())
    _append(hub, manifest, "pm", [{"time": _at(60 * m), "sensor": s, "pm25": 10.0 * m + i}
                                  for m in (0, 1) for i, s in enumerate(("s1", "s2", "s3"))])
    _append(hub, manifest, "reference", [{"time": _at(60 * m + 5), "pm25": 100.0 + m} for m in (0, 1)])
    joined = _keyed_join(hub, manifest, now=math.inf)
    assert [(r["sensor"], r["reference"]["pm25"]) for r in joined.records] == [
        ("s1", 100.0), ("s2", 100.0), ("s3", 100.0), ("s1", 101.0), ("s2", 101.0), ("s3", 101.0)]
    assert joined.incomplete == 0


def test_a_keyed_partner_is_the_same_keys_record_and_waits_for_that_key_alone() -> None:
    manifest = _keyed(streams=["humidity"], tolerance="30s", wait="1h")
    hub = StreamHub(MemoryLog())
    _append(hub, manifest, "pm", [{"time": _at(0), "sensor": s, "pm25": 1.0} for s in ("s1", "s2")])
    # s2's humidity at a later minute: the stream has moved past the minute-0 records, but not for s1
    _append(hub, manifest, "humidity", [{"time": _at(0), "sensor": "s2", "rh": 52.0},
                                        {"time": _at(60), "sensor": "s2", "rh": 53.0}])
    joined = _keyed_join(hub, manifest, now=0)
    assert joined.records == [] and joined.wait_until is not None  # s1 waits for its own humidity
    _append(hub, manifest, "humidity", [{"time": _at(1), "sensor": "s1", "rh": 40.0}])
    joined = _keyed_join(hub, manifest, now=0)
    assert [(r["sensor"], r["humidity"]["rh"]) for r in joined.records] == [("s1", 40.0), ("s2", 52.0)]
    # a key whose stream moved past its record is not waited for: s1's next humidity is a minute and more on
    _append(hub, manifest, "pm", [{"time": _at(40), "sensor": "s1", "pm25": 2.0},
                                  {"time": _at(150), "sensor": "s1", "pm25": 3.0}])
    _append(hub, manifest, "humidity", [{"time": _at(120), "sensor": "s1", "rh": 41.0}])
    joined = _keyed_join(hub, manifest, now=0)
    assert [r[MISSING] for r in joined.records] == [[], [], ["humidity"], []] and joined.wait_until is None
    assert joined.records[3]["humidity"]["rh"] == 41.0
