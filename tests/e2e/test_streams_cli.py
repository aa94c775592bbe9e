"""``twin stream`` and ``twin buffer`` against a live engine: send a file, read, tail (and follow), see the
function's progress, bind MQTT, buffers; bad input is a message naming the record, never a traceback."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pyarrow as pa

from helpers import RIVER_REACH, LiveEngine
from streams_fixtures import T0, eventually, gauge


def setup(live: LiveEngine) -> str:
    with live.client() as admin:
        dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    live.twin("create", "river-reach@0.1.0", "--name", "reach", "--param", "station=RR-01", token=user)
    return user


def test_send_read_tail_and_functions(live: LiveEngine, tmp_path: Path) -> None:
    user = setup(live)
    source = tmp_path / "gauges.jsonl"
    source.write_text("".join(json.dumps(gauge(i)) + "\n" for i in range(12)))
    sent = live.twin_json("stream", "send", "reach", "gauges", str(source), "--batch", "5", "--producer", "rr01",
                          token=user)
    assert sent == {"twin": "reach", "stream": "gauges", "sent": 12, "appended": 12, "duplicates": 0}
    again = live.twin_json("stream", "send", "reach", "gauges", str(source), "--producer", "rr01", token=user)
    assert again["appended"] == 0 and again["duplicates"] == 12
    page = live.twin_json("stream", "read", "reach", "gauges", "--start", "10", token=user)
    assert [r["_offset"] for r in page["items"]] == [10, 11]
    shown = live.twin("stream", "read", "reach", "gauges", "--since", "2026-03-01T02:00:00Z", token=user)
    assert "reach/gauges: 4 records" in shown
    tail = live.twin("stream", "tail", "reach", "gauges", "-n", "2", token=user).splitlines()
    assert [json.loads(line)["_offset"] for line in tail] == [10, 11]

    def later() -> None:
        time.sleep(0.5)
        with live.client(user) as uma:
            uma.streams.append("reach", "gauges", [gauge(12)])

    threading.Thread(target=later).start()
    followed = live.twin("stream", "tail", "reach", "gauges", "-n", "0", "-f", "--count", "1", token=user)
    assert json.loads(followed)["_offset"] == 12
    arrow = tmp_path / "more.arrow"
    more = pa.table({"time": pa.array([T0], type=pa.timestamp("us", tz="UTC")), "station": ["RR-01"],
                     "rain": [0.0], "level": [2.5]})
    with pa.OSFile(str(arrow), "wb") as sink, pa.ipc.new_file(sink, more.schema) as writer:
        writer.write_table(more)
    assert live.twin_json("stream", "send", "reach", "gauges", str(arrow), token=user)["appended"] == 1
    functions = eventually(lambda: (f := live.twin_json("stream", "functions", "reach", token=user))
                           and f[0]["offset"] == 14 and f)
    assert functions[0]["name"] == "gauge_to_state" and functions[0]["calls"] == 14
    listed = live.twin("stream", "list", "reach", token=user)
    assert "gauges" in listed and "station" in listed
    assert live.twin_json("stream", "events", "reach", token=user) == []  # gauge_to_state emits none
    assert live.twin_json("stream", "dead-letters", "reach", token=user) == []


def test_bad_files_and_buffers(live: LiveEngine, tmp_path: Path) -> None:
    user = setup(live)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(gauge(0)) + "\n" + json.dumps(gauge(1) | {"level": "high"}) + "\n")
    out = live.twin("stream", "send", "reach", "gauges", str(bad), token=user, expect=1)
    assert "records[1].level" in out and "Traceback" not in out
    live.twin("stream", "bind", "reach", "gauges", "sites/rr01/gauges", token=user)
    assert "sites/rr01/gauges" in live.twin("stream", "list", "reach", token=user)
    assert "reach/gauges unbound" in live.twin("stream", "unbind", "reach", "gauges", token=user)
    assert "sites/rr01/gauges" not in live.twin("stream", "list", "reach", token=user)
    again = live.twin("stream", "unbind", "reach", "gauges", token=user, expect=1)
    assert "NotFound" in again and "no MQTT binding" in again
    live.twin("stream", "bind", "reach", "gauges", "sites/rr01/gauges", token=user)
    created = live.twin_json("buffer", "create", "reach", "retrain", "--stream", "gauges", "--policy", "external",
                             token=user)
    assert created["policy"] == "external" and created["discard_after"] is True
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(gauge(i)) + "\n" for i in range(3)))
    live.twin("stream", "send", "reach", "gauges", str(good), token=user)
    sealed = live.twin("buffer", "seal", "reach", "retrain", token=user)
    assert "3 records" in sealed
    assert "retrain" in live.twin("buffer", "list", "reach", token=user)
    out = live.twin("buffer", "create", "reach", "x", "--stream", "gauges", "--policy", "count", token=user, expect=1)
    assert "records" in out
