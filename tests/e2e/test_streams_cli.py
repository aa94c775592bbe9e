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
    assert sent == {"twin": "reach", "stream": "gauges", "sent": 12, "appended": 12, "duplicates": 0,
                    "producer": "rr01", "next_seq": 12, "already_acknowledged": 0}
    again = live.twin_json("stream", "send", "reach", "gauges", str(source), "--producer", "rr01", "--seq", "0",
                           token=user)
    assert again["appended"] == 0 and again["duplicates"] == 12  # the same numbers again: repeats
    page = live.twin_json("stream", "read", "reach", "gauges", "--start", "10", token=user)
    assert [r["_offset"] for r in page["items"]] == [10, 11]
    shown = live.twin("stream", "read", "reach", "gauges", "--since", "2026-03-01T02:00:00Z", token=user)
    assert "reach/gauges: 4 records" in shown
    tail = live.twin("stream", "tail", "reach", "gauges", "-n", "2", token=user).splitlines()
    assert [json.loads(line)["_offset"] for line in tail] == [10, 11]

    def later() -> None:
        # -n 0 follows from the end the command finds: the record must come after it subscribed, which a
        # loaded machine can take a second to do
        time.sleep(2.0)
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
    assert "line 2, field level" in out and "nothing was appended" in out and "Traceback" not in out
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


def test_a_refused_batch_names_the_file_line_and_how_to_resume(live: LiveEngine, tmp_path: Path) -> None:
    """With --batch 500, a bad record on line 900 of the file (a blank line before it) is named by that
    line, not by its place in the batch; the 500 records before its batch were appended, the message says
    so, and the command it gives appends the rest once the line is fixed (no record twice, none lost)."""
    user = setup(live)
    rows = [json.dumps(gauge(i)) for i in range(1000)]
    rows[898] = json.dumps(gauge(898) | {"level": "high"})  # record 899 of the file
    source = tmp_path / "gauges.jsonl"
    source.write_text("\n".join([*rows[:10], "", *rows[10:]]) + "\n")  # record 899 is on line 900
    out = live.twin("stream", "send", "reach", "gauges", str(source), "--batch", "500", "--producer", "rr01",
                    token=user, expect=1)
    assert "line 900, field level" in out and "records[398]" not in out and "Traceback" not in out
    assert "the 500 records before it were appended" in out
    resume = f"twin stream send reach gauges {source} --skip 500 --producer rr01 --seq 500"
    assert resume in " ".join(out.split())
    assert live.twin_json("stream", "read", "reach", "gauges", "--limit", "2000", token=user)["count"] == 500
    rows[898] = json.dumps(gauge(898))
    source.write_text("\n".join([*rows[:10], "", *rows[10:]]) + "\n")
    done = live.twin_json("stream", "send", "reach", "gauges", str(source), "--batch", "500", "--skip", "500",
                          "--producer", "rr01", "--seq", "500", token=user)
    assert done["sent"] == 500 and done["appended"] == 500 and done["next_seq"] == 1000
    page = live.twin_json("stream", "read", "reach", "gauges", "--limit", "2000", token=user)
    assert [r["level"] for r in page["items"]] == [gauge(i)["level"] for i in range(1000)]


def test_a_producer_resumes_its_sequence_unless_told(live: LiveEngine, tmp_path: Path) -> None:
    """Sending again as the same producer continues after its last sequence number (the engine tells where),
    so new records are appended, not dropped as repeats; --seq still sets the number by hand."""
    user = setup(live)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("".join(json.dumps(gauge(i)) + "\n" for i in range(5)))
    second.write_text("".join(json.dumps(gauge(i)) + "\n" for i in range(5, 12)))
    assert live.twin_json("stream", "send", "reach", "gauges", str(first), "--producer", "rr01",
                          token=user)["next_seq"] == 5
    with live.client(user) as uma:
        position = uma.streams.producer("reach", "gauges", "rr01")
        assert position.last_seq == 4 and position.next_seq == 5
        assert uma.streams.producer("reach", "gauges", "never-sent").next_seq == 0
    more = live.twin_json("stream", "send", "reach", "gauges", str(second), "--producer", "rr01", token=user)
    assert more["appended"] == 7 and more["duplicates"] == 0 and more["next_seq"] == 12
    shown = live.twin("stream", "send", "reach", "gauges", str(first), "--producer", "rr01", "--seq", "0",
                      token=user)
    assert "appended 0 of 5 records" in shown and "5 duplicates dropped" in shown
    assert live.twin_json("stream", "read", "reach", "gauges", token=user)["count"] == 12


def test_a_file_sent_again_by_its_producer_is_recognised_and_not_appended_twice(live: LiveEngine,
                                                                               tmp_path: Path) -> None:
    """The same file sent again as the same producer appends nothing and says so; a file that grew since
    appends only its new records; an Arrow file likewise; the stream holds each record once."""
    user = setup(live)
    source = tmp_path / "gauges.jsonl"
    source.write_text("".join(json.dumps(gauge(i)) + "\n" for i in range(6)))
    assert live.twin_json("stream", "send", "reach", "gauges", str(source), "--producer", "rr01",
                          token=user)["appended"] == 6
    again = live.twin("stream", "send", "reach", "gauges", str(source), "--producer", "rr01", token=user)
    assert "6 records were already acknowledged, skipped" in again and "appended 0 of 0 records" in again
    source.write_text("".join(json.dumps(gauge(i)) + "\n" for i in range(9)))  # the logger wrote three more
    grown = live.twin_json("stream", "send", "reach", "gauges", str(source), "--producer", "rr01", token=user)
    assert grown["appended"] == 3 and grown["already_acknowledged"] == 6 and grown["next_seq"] == 9
    arrow = tmp_path / "late.arrow"
    rows = [gauge(8), gauge(9)]  # one held already, one new
    table = pa.table({"time": pa.array([r["time"] for r in rows]).cast(pa.timestamp("us", tz="UTC")),
                      "station": [r["station"] for r in rows], "rain": [r["rain"] for r in rows],
                      "level": [r["level"] for r in rows]})
    with pa.OSFile(str(arrow), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    late = live.twin_json("stream", "send", "reach", "gauges", str(arrow), "--producer", "rr01", token=user)
    assert late["appended"] == 1 and late["already_acknowledged"] == 1
    page = live.twin_json("stream", "read", "reach", "gauges", "--limit", "100", token=user)
    assert [r["level"] for r in page["items"]] == [gauge(i)["level"] for i in range(10)]
    changed = gauge(0) | {"level": gauge(0)["level"] + 1}  # the same time, another value: a new record
    source.write_text(json.dumps(changed) + "\n")
    assert live.twin_json("stream", "send", "reach", "gauges", str(source), "--producer", "rr01",
                          token=user)["appended"] == 1
