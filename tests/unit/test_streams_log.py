"""The local stream log and the hub without a server: group commit, torn tails, damaged segments, offsets,
producer sequences (in and out of order), reads by offset and event time, the backend registry."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from twinengine.catalog.manifest import FunctionTrigger, Stream
from twinengine.errors import DataCorrupted, InvalidInput, StreamBackpressure, StreamUnavailable, ValidationFailed
from twinengine.streams import batch, records
from twinengine.streams.backends import get_backend, list_backends
from twinengine.streams.backends.local import LocalLog
from twinengine.streams.backends.memory import MemoryLog
from twinengine.streams.functions import select_calls
from twinengine.streams.hub import StreamHub

STREAM = Stream.model_validate({"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"},
                                           "n": {"type": "integer", "nullable": True}}})


def table(levels: list[float], minute: int = 0) -> pa.Table:
    times = [datetime(2026, 3, 1, 0, minute + i, tzinfo=UTC) for i in range(len(levels))]
    return records.check_records(STREAM, [{"time": t.isoformat(), "level": v} for t, v in zip(times, levels,
                                                                                               strict=True)])


def test_group_commit_from_many_threads_keeps_every_entry(tmp_path: Path) -> None:
    log = LocalLog(tmp_path, segment_bytes=4096)
    futures: list = []
    lock = threading.Lock()

    def produce(k: int) -> None:
        for i in range(50):
            future = log.append(f"tw-1/s{k % 3}", f"{k}:{i}".encode() * 20)
            with lock:
                futures.append(future)

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    numbers = sorted((f.result(5)) for f in futures)
    assert len(numbers) == 300
    for k in range(3):
        entries = log.read(f"tw-1/s{k}", 1, 1000)
        assert [n for n, _ in entries] == list(range(1, 101))
    assert len(list((tmp_path / "tw-1" / "s0").glob("*.seg"))) > 1  # segments rolled at 4 KiB
    assert log.sealed("tw-1/s0")[0][0] == 1
    log.close()
    reopened = LocalLog(tmp_path, segment_bytes=4096)
    assert reopened.last("tw-1/s1") == 100 and reopened.list_keys() == ["tw-1/s0", "tw-1/s1", "tw-1/s2"]
    reopened.close()


def test_a_torn_tail_is_cut_and_a_damaged_closed_segment_is_refused(tmp_path: Path) -> None:
    log = LocalLog(tmp_path, segment_bytes=200)
    for i in range(6):
        log.append("tw-1/s", bytes([i]) * 60).result(5)
    log.close()
    segments = sorted((tmp_path / "tw-1" / "s").glob("*.seg"))
    with segments[-1].open("ab") as fh:
        fh.write(b"\x50\x00\x00\x00garbage")  # a frame header promising more than was written
    reopened = LocalLog(tmp_path, segment_bytes=200)
    assert reopened.last("tw-1/s") == 6
    assert reopened.append("tw-1/s", b"next").result(5) == 7
    reopened.close()
    data = bytearray(segments[0].read_bytes())
    data[20] ^= 0xFF
    segments[0].write_bytes(bytes(data))
    damaged = LocalLog(tmp_path, segment_bytes=200)
    with pytest.raises(DataCorrupted):
        damaged.read("tw-1/s", 1, 10)
    damaged.close()


def test_reopening_reads_only_the_newest_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a crash the log is back without reading its history: closed segments are numbered by their
    names and indexed on their first read."""
    from twinengine.streams.backends import local

    log = LocalLog(tmp_path, segment_bytes=250)
    for i in range(9):
        log.append("tw-1/s", bytes([i]) * 60).result(5)
    log.close()
    segments = sorted((tmp_path / "tw-1" / "s").glob("*.seg"))
    assert len(segments) == 3
    scanned: list[Path] = []
    real_scan = local._scan
    monkeypatch.setattr(local, "_scan", lambda segment, *, repair: (scanned.append(segment.path),
                                                                     real_scan(segment, repair=repair)))
    reopened = LocalLog(tmp_path, segment_bytes=250)
    assert reopened.last("tw-1/s") == 9 and reopened.sealed("tw-1/s") == [(1, 3), (4, 6)]
    assert scanned == [segments[-1]]
    assert reopened.read("tw-1/s", 5, 1) == [(5, bytes([4]) * 60)]  # indexes the middle segment only
    assert scanned == [segments[-1], segments[1]]
    assert reopened.append("tw-1/s", b"next").result(5) == 10
    reopened.close()


def test_hub_offsets_producers_and_reads(tmp_path: Path) -> None:
    hub = StreamHub(LocalLog(tmp_path))
    first = hub.append("tw-1/s", table([1, 2, 3]), time_field="time", producer="p", seq=0)
    assert (first.first_offset, first.count, first.duplicates) == (0, 3, 0)
    later = hub.append("tw-1/s", table([6, 7], minute=5), time_field="time", producer="p", seq=5)  # 3, 4 missing
    late = hub.append("tw-1/s", table([4, 5, 6], minute=3), time_field="time", producer="p", seq=3)
    assert (later.count, late.count, late.duplicates) == (2, 2, 1)  # seq 5 had arrived already
    again = hub.append("tw-1/s", table([1, 2, 3, 4, 5, 6, 7]), time_field="time", producer="p", seq=0)
    assert again.count == 0 and again.duplicates == 7
    assert hub.end("tw-1/s") == 7
    read = hub.read("tw-1/s", start=2, limit=3, time_field="time")
    assert read is not None and read.column("_offset").to_pylist() == [2, 3, 4]
    since = int(datetime(2026, 3, 1, 0, 4, tzinfo=UTC).timestamp() * 1e6)
    window = hub.read("tw-1/s", since_us=since, until_us=since + 60_000_000, time_field="time")
    assert window is not None and window.column("level").to_pylist() == [5.0]
    hub.close()
    recovered = StreamHub(LocalLog(tmp_path))  # after a restart: offsets and producer state from the log
    assert recovered.end("tw-1/s") == 7
    assert recovered.append("tw-1/s", table([7]), time_field="time", producer="p", seq=6).duplicates == 1
    recovered.commit("tw-1/s", "f", 0)
    recovered.max_lag = 5
    with pytest.raises(StreamBackpressure):
        recovered.append("tw-1/s", table([8]), time_field="time")
    recovered.close()


def test_batches_split_to_the_backends_entry_size() -> None:
    log = MemoryLog()
    log.max_entry_bytes = 400
    hub = StreamHub(log)
    result = hub.append("tw-1/s", table([float(i) for i in range(50)]), time_field="time")
    assert result.count == 50 and len(log.entries["tw-1/s"]) > 3
    headers = [batch.decode_header(p) for p in log.entries["tw-1/s"]]
    assert headers[0].base == 0 and all(a.end == b.base for a, b in itertools.pairwise(headers))
    assert ("append", "tw-1/s") in log.calls


def test_json_lines_fast_and_slow_paths() -> None:
    good = b'{"time": "2026-03-01T00:00:00Z", "level": 1}\n{"time": "2026-03-01T01:00:00+01:00", "level": 2.5}\n'
    parsed = records.parse_json_lines(STREAM, good)
    assert parsed.column("level").to_pylist() == [1.0, 2.5]
    assert parsed.column("time")[1].as_py() == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ValidationFailed) as caught:
        records.parse_json_lines(STREAM, good + b'{"time": "2026-03-01T02:00:00Z", "level": null, "n": 1.5}\n')
    assert {p.loc for p in caught.value.problems} == {"records[2].level", "records[2].n"}
    with pytest.raises(InvalidInput):
        records.parse_arrow(STREAM, b"nope")


def test_triggers_split_records_into_calls() -> None:
    rows = [{"level": float(i)} for i in range(7)]
    assert len(select_calls(FunctionTrigger(kind="record"), rows)[0]) == 7
    calls, used = select_calls(FunctionTrigger(kind="count", count=3), rows)
    assert [len(c) for c, _ in calls] == [3, 3] and used == 6
    calls, used = select_calls(FunctionTrigger(kind="condition", field="level", op="ge", value=5), rows)
    assert [c[0]["level"] for c, _ in calls] == [5.0, 6.0] and used == 7
    assert select_calls(FunctionTrigger(kind="time", seconds=1), rows)[0][0][1] == 7


def test_backend_registry_lists_and_refuses_unknown_names() -> None:
    assert {"local", "nats", "memory"} <= set(list_backends())
    assert get_backend("local") is LocalLog
    with pytest.raises(InvalidInput, match=r"installed: .*local"):
        get_backend("kafka")


def test_one_engine_process_per_stream_folder(tmp_path: Path) -> None:
    first = LocalLog(tmp_path)
    with pytest.raises(StreamUnavailable, match="another engine process"):
        LocalLog(tmp_path)
    first.close()
    LocalLog(tmp_path).close()  # free again once closed
