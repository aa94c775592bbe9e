"""Array fields end to end, on both stream logs: arrays in over HTTP (JSON lines, Arrow IPC) and MQTT, and
back (JSON with NaN tokens, Arrow fixed_size_list, load_stream over compacted Parquet plus the log's tail),
refusals naming record, field and sample; functions on arrival get numpy arrays and publish records to other
streams of their own twin, through the worker protocol, and every way of publishing elsewhere fails the call
(in the engine and in ``twin app test``)."""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from helpers import MINIMAL_STATE, Engine, make_app
from streams_fixtures import (  # noqa: F401
    drop_streams,
    eventually,
    require_mqtt,
    stream_backend,
    stream_engine,
    stream_settings,
)
from twinengine.appdev.harness import check_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.daemons.streams_compactor import Compactor
from twinengine.errors import ValidationFailed
from twinengine.streams.compaction import load_stream
from twinengine.streams.models import CompactedSegment
from twinengine.workflows.stream_processes import to_records_dataset

N = 8  # samples per window
STREAMS = {
    "raw": {"fields": {"time": {"type": "timestamp"},
                       "h": {"type": "array", "items": "float", "length": N, "unit": "1"},
                       "aux": {"type": "array", "items": "integer"}}},
    "cleaned": {"fields": {"time": {"type": "timestamp"}, "h": {"type": "array", "items": "float", "length": N},
                           "vetoed": {"type": "boolean"}}},
    "summary": {"fields": {"time": {"type": "timestamp"}, "rms": {"type": "float"}}},
}
FUNCTIONS = '''
import numpy as np

def clean(ctx, records):
    (r,) = records
    if not isinstance(r["h"], np.ndarray) or not isinstance(r["aux"], np.ndarray):
        raise TypeError(f"array fields arrive as numpy arrays, not {type(r['h']).__name__}")
    h = r["h"] - np.nanmean(r["h"])
    ctx.publish("cleaned", {"time": r["time"], "h": h, "vetoed": bool(np.nanmax(np.abs(h)) > 5)})

def summarise(ctx, records):
    kept = [r["h"] for r in records if not r["vetoed"]]
    rms = float(np.sqrt(np.mean(np.concatenate(kept) ** 2))) if kept else float("nan")
    ctx.publish("summary", [{"time": records[-1]["time"], "rms": rms}])
    ctx.update_state(count=len(records))

def own(ctx, records):
    ctx.publish("raw", {"time": records[0]["time"], "h": records[0]["h"], "aux": []})

def undeclared(ctx, records):
    ctx.publish("summary", {"time": records[0]["time"], "rms": 1.0})

def short(ctx, records):
    ctx.publish("cleaned", {"time": records[0]["time"], "h": records[0]["h"][:3], "vetoed": False})
'''
PIPELINE = {
    "clean": {"entrypoint": "strain_app.fns:clean", "stream": "raw", "publishes": ["cleaned"]},
    "summarise": {"entrypoint": "strain_app.fns:summarise", "stream": "cleaned", "publishes": ["summary"],
                  "trigger": {"kind": "count", "count": 2}},
}
ROGUES = {name: {"entrypoint": f"strain_app.fns:{name}", "stream": "raw", "publishes": ["cleaned"], "retries": 0}
          for name in ("own", "undeclared", "short")}


def strain_app(root: Path, functions: dict[str, Any]) -> Path:
    return make_app(root, name="strain-app", manifest={"streams": STREAMS, "state": MINIMAL_STATE,
                                                       "functions": functions},
                    files={"strain_app/fns.py": FUNCTIONS})


def window(i: int, h: list[float] | np.ndarray, aux: list[int] | None = None) -> dict[str, Any]:
    return {"time": f"2026-03-01T00:00:{i:02d}Z", "h": h, "aux": aux if aux is not None else [i, i + 1]}


@pytest.fixture
def settings(tmp_path: Path, stream_backend: str) -> Settings:  # noqa: F811
    return stream_settings(tmp_path / "data", stream_backend, function_backoff=0.05, stream_segment_bytes=4096,
                           stream_segment_entries=3)


@pytest.fixture
def engine(settings: Settings, drop_streams: list[Any]) -> Iterator[Engine]:  # noqa: F811
    with stream_engine(settings, drop_streams) as started:
        yield started


def twin_of(engine: Engine, root: Path, functions: dict[str, Any], *names: str) -> Client:
    engine.as_role("ada", "developer").publish_app(strain_app(root, functions))
    uma = engine.as_role("uma", "user")
    for name in names or ("ifo",):
        uma.create_twin("strain-app@1.0.0", name, {"station": "V1"})
    return uma


def test_arrays_go_in_over_http_and_come_back_whole(engine: Engine, tmp_path: Path) -> None:
    uma = twin_of(engine, tmp_path, {})
    first = np.array([1.0, np.nan, np.inf, -np.inf, 0.5, 1e-21, -2.0, 3.0])
    ack = uma.streams.append("ifo", "raw", [window(0, first), window(1, [float(i) for i in range(N)], [])])
    assert ack.count == 2
    arrow = pa.table({"time": pa.array([datetime(2026, 3, 1, 0, 0, 2, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
                      "h": pa.array([list(range(N))], pa.list_(pa.float32())),
                      "aux": pa.array([[7, 8, 9]], pa.list_(pa.int16()))})
    assert uma.streams.append("ifo", "raw", arrow).count == 1

    page = uma.streams.read("ifo", "raw")
    got = page.items[0]["h"]
    assert got[0] == 1.0 and math.isnan(got[1]) and got[2:4] == [math.inf, -math.inf] and got[5] == 1e-21
    assert [r["aux"] for r in page.items] == [[0, 1], [], [7, 8, 9]]
    table = uma.streams.read_arrow("ifo", "raw")
    assert table.schema.field("h").type == pa.list_(pa.float64(), N)
    assert table.column("h")[2].as_py() == [float(i) for i in range(N)]

    bad = [window(3, [0.0] * N), window(4, [0.0] * (N - 1)), window(5, [0.0] * 3 + ["x"] + [0.0] * 4)]
    with pytest.raises(ValidationFailed) as info:
        uma.streams.append("ifo", "raw", bad)
    found = {p.loc: p.msg for p in info.value.problems}
    assert "has 7 samples; the field holds exactly 8" in found["records[1].h"]
    assert "'x' is not a number" in found["records[2].h[3]"]
    with pytest.raises(ValidationFailed, match=r"records\[0\].aux\[1\]: 1.5 is not a 64-bit integer"):
        uma.streams.append("ifo", "raw", [window(6, [0.0] * N, [1, 1.5])])
    assert uma.streams.read("ifo", "raw").count == 3  # nothing of a refused batch was kept


def test_load_stream_reads_arrays_from_parquet_and_the_tail(engine: Engine, tmp_path: Path) -> None:
    uma = twin_of(engine, tmp_path, {})
    sent = [np.sin(np.arange(N) + i) for i in range(30)]
    for i in range(0, 30, 3):  # small batches: closed segments to compact
        uma.streams.append("ifo", "raw", [window(j, sent[j], list(range(j % 4))) for j in range(i, i + 3)])
    runtime = engine.runtime
    twin_id = uma.get_twin("ifo").id
    with runtime.db.session() as session:
        Compactor(runtime).run_once(session)
    with runtime.db.session(readonly=True) as session:
        segments = list(session.scalars(select(CompactedSegment).where(CompactedSegment.twin_id == twin_id)))
        table = load_stream(session, runtime.streams, twin_id=twin_id, stream="raw", time_field="time",
                            sink=runtime.segment_sink)
    assert segments and max(s.last_offset for s in segments) < 29  # Parquet first, then the log's tail
    assert pq.read_table(runtime.segment_root / segments[0].path).schema.field("h").type == pa.list_(pa.float64(), N)
    ds = to_records_dataset(table, "time")
    assert ds["h"].dims == ("record", "h_sample") and ds["h"].shape == (30, N)
    np.testing.assert_allclose(ds["h"].values, np.stack(sent))
    assert ds["aux"].dims == ("record", "aux_sample") and ds["aux"].shape == (30, 3)
    np.testing.assert_array_equal(ds["aux"].values[3], [0.0, 1.0, 2.0])
    assert np.isnan(ds["aux"].values[0]).all()


def test_a_function_publishes_cleaned_windows_to_its_own_twin_only(engine: Engine, tmp_path: Path) -> None:
    uma = twin_of(engine, tmp_path, PIPELINE, "ifo", "other")
    rng = np.random.default_rng(7)
    windows = [rng.normal(size=N) for _ in range(4)]
    windows[2][5] += 40.0  # a glitch: vetoed
    uma.streams.append("ifo", "raw", [window(i, w) for i, w in enumerate(windows)])

    cleaned = eventually(lambda: (p := uma.streams.read("ifo", "cleaned")).count == 4 and p)
    assert [r["vetoed"] for r in cleaned.items] == [False, False, True, False]
    np.testing.assert_allclose(cleaned.items[0]["h"], windows[0] - windows[0].mean())
    assert uma.streams.read_arrow("ifo", "cleaned").schema.field("h").type == pa.list_(pa.float64(), N)
    # published records wake the functions of the target stream: two windows of two
    summary = eventually(lambda: (p := uma.streams.read("ifo", "summary")).count == 2 and p)
    kept = np.concatenate([windows[i] - windows[i].mean() for i in (3,)])
    assert summary.items[1]["rms"] == pytest.approx(float(np.sqrt(np.mean(kept ** 2))))
    assert eventually(lambda: uma.get_state("ifo").reported.get("count")).value == 2
    assert uma.streams.dead_letters("ifo") == []
    assert uma.streams.read("other", "cleaned").count == 0  # the other twin of the app saw nothing

    def checkpointed() -> dict[str, Any] | None:
        """What a call publishes is appended before the checkpoint that counts the call commits: the records
        published last can be read before both functions' checkpoints are."""
        found = {f.name: f for f in uma.streams.functions("ifo")}
        return found if {name: f.offset for name, f in found.items()} == {"clean": 4, "summarise": 4} else None

    fns = eventually(checkpointed, timeout=60)
    assert fns["clean"].calls == 4 and fns["summarise"].calls == 2 and fns["clean"].publishes == ["cleaned"]


def test_publishing_outside_the_declared_streams_fails_the_call(engine: Engine, tmp_path: Path) -> None:
    uma = twin_of(engine, tmp_path, ROGUES)
    uma.streams.append("ifo", "raw", [window(0, [0.0] * N)])
    dead = eventually(lambda: len(found := uma.streams.dead_letters("ifo")) == 3 and found)
    reasons = {d.function: d.error for d in dead}
    assert "'raw' (the stream it runs on) is not a stream this function publishes to" in reasons["own"]
    assert "'summary' is not a stream this function publishes to (publishes: cleaned)" in reasons["undeclared"]
    assert "publish to 'cleaned': records[0].h: has 3 samples; the field holds exactly 8" in reasons["short"]
    assert uma.streams.read("ifo", "cleaned").count == 0 and uma.streams.read("ifo", "raw").count == 1


def test_twin_app_test_checks_what_a_function_publishes(tmp_path: Path) -> None:
    functions = {**PIPELINE, "short": {**ROGUES["short"], "retries": None}}
    folder = strain_app(tmp_path, functions)
    (folder / "data").mkdir()
    (folder / "data" / "parameters.json").write_text('{"station": "V1"}')
    (folder / "data" / "raw.jsonl").write_text("".join(
        json.dumps(window(i, [float(i + j) for j in range(N)])) + "\n" for i in range(3)))
    found = {item.name: item for item in check_app(folder, run_tests=False, train=False)}
    assert found["function clean"].ok, found["function clean"]
    assert found["function summarise"].skipped  # no sample records of cleaned: what clean publishes is not one
    assert not found["function short"].ok
    assert "publish to 'cleaned': records[0].h: has 3 samples" in str(found["function short"].error)


def test_mqtt_messages_carry_arrays_too(tmp_path: Path, drop_streams: list[Any]) -> None:  # noqa: F811
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    url = require_mqtt()
    topic = f"test/{secrets.token_hex(4)}/raw"
    with stream_engine(stream_settings(tmp_path / "data", "local", mqtt_url=url), drop_streams) as engine:
        uma = twin_of(engine, tmp_path, PIPELINE)
        uma.streams.bind_mqtt("ifo", "raw", topic)
        eventually(lambda: topic in engine.app.state.stream_daemons.mqtt.ready)  # type: ignore[attr-defined]
        host, port = url.removeprefix("mqtt://").split(":")
        pub = mqtt.Client(CallbackAPIVersion.VERSION2)
        pub.connect(host, int(port))
        pub.loop_start()
        infos = [pub.publish(topic, json.dumps(window(0, [0.5 * i for i in range(N)])), qos=1),
                 pub.publish(topic, json.dumps(window(1, [0.0] * 3)), qos=1),  # refused: three samples
                 pub.publish(topic, json.dumps([window(2, [1.0] * N, []), window(3, [-1.0] * N)]), qos=1)]
        for info in infos:
            info.wait_for_publish(10)
        pub.loop_stop()
        page = eventually(lambda: (p := uma.streams.read("ifo", "raw")).count == 3 and p)
        assert [r["h"][1] for r in page.items] == [0.5, 1.0, -1.0] and page.items[1]["aux"] == []
        cleaned = eventually(lambda: (p := uma.streams.read("ifo", "cleaned")).count == 3 and p)
        assert cleaned.items[0]["h"] == [0.5 * i - 1.75 for i in range(N)]


def test_a_page_of_large_records_is_cut_at_its_byte_budget(engine: Engine, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from twinengine.streams import service

    uma = twin_of(engine, tmp_path, {})
    uma.streams.append("ifo", "raw", [window(i, [float(i)] * N) for i in range(6)])
    one = uma.streams.read("ifo", "raw", limit=1).items[0]
    monkeypatch.setattr(service, "PAGE_BYTES", 2 * len(json.dumps(one)))  # about two records' worth
    pages, start = [], 0
    while start < 6:
        page = uma.streams.read("ifo", "raw", start=start, limit=100)
        assert 1 <= page.count < 6 and page.next_offset == page.items[-1]["_offset"] + 1
        pages.append(page.count)
        start = page.next_offset
    assert sum(pages) == 6 and len(pages) >= 2  # read on with next_offset: every record, in order
