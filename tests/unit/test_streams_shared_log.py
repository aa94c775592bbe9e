"""Two engine processes on one shared stream log (two hubs on views of one in-memory log, as two processes on
one NATS server): every record gets one offset, none twice, none skipped, whoever appends and however the
appends interleave; each hub reads and counts the other's records, and a producer's retry through the
other process is dropped as a duplicate."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from twinengine.catalog.manifest import Stream
from twinengine.streams import batch, records
from twinengine.streams.backends.memory import MemoryLog
from twinengine.streams.hub import StreamHub

STREAM = Stream.model_validate({"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"}}})
KEY = "tw-1/gauges"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def table(levels: list[float]) -> pa.Table:
    return records.check_records(STREAM, [{"time": (T0 + timedelta(seconds=v)).isoformat(), "level": v}
                                          for v in levels])


def two_processes() -> tuple[MemoryLog, StreamHub, StreamHub]:
    log = MemoryLog()
    other = log.process()  # both views are shared from now on
    return log, StreamHub(log), StreamHub(other)


def offsets_in_log(log: MemoryLog) -> list[tuple[int, int]]:
    headers = [batch.decode_header(p) for p in log.entries[KEY]]
    return [(h.base, h.end) for h in headers]


def test_each_hub_numbers_after_the_others_records() -> None:
    log, a, b = two_processes()
    assert a.append(KEY, table([0, 1, 2]), time_field="time").first_offset == 0
    assert b.end(KEY) == 3  # told by the log, read from its headers
    assert b.append(KEY, table([3, 4]), time_field="time").first_offset == 3
    assert a.append(KEY, table([5]), time_field="time").first_offset == 5
    assert offsets_in_log(log) == [(0, 3), (3, 5), (5, 6)]
    read = b.read(KEY, limit=100, time_field="time")
    assert read is not None and read.column("level").to_pylist() == [0, 1, 2, 3, 4, 5]
    assert read.column("_offset").to_pylist() == list(range(6))


def test_an_append_outrun_by_the_other_process_is_numbered_again() -> None:
    log, a, b = two_processes()
    a.append(KEY, table([0]), time_field="time")
    b.end(KEY)  # b knows one entry
    b.log.watch(lambda key: None)  # b misses the next notice (as across a lost connection)
    a.append(KEY, table([1, 2]), time_field="time")
    result = b.append(KEY, table([3]), time_field="time")  # numbered 1 first: refused, then 3
    assert ("conflict", KEY) in b.log.calls
    assert result.first_offset == 3 and result.next_offset == 4
    assert offsets_in_log(log) == [(0, 1), (1, 3), (3, 4)]


def test_a_producers_retry_through_the_other_process_is_a_duplicate() -> None:
    _log, a, b = two_processes()
    first = a.append(KEY, table([0, 1, 2, 3]), time_field="time", producer="gauge-7", seq=10)
    again = b.append(KEY, table([2, 3, 4]), time_field="time", producer="gauge-7", seq=12)
    assert (first.count, again.count, again.duplicates) == (4, 1, 2)
    assert b.end(KEY) == a.end(KEY) == 5


def test_the_other_process_wakes_readers_of_the_stream() -> None:
    _log, a, b = two_processes()
    seen = b.appended_since(0)[1]
    a.append(KEY, table([0]), time_field="time")
    keys, _now = b.appended_since(seen)
    assert keys == {KEY}


def test_interleaved_appends_from_two_processes_keep_every_record_once() -> None:
    log, a, b = two_processes()
    log.max_entry_bytes = 600  # larger batches split into several entries, which may interleave
    rng = random.Random(7)
    plans = [[(hub, [float(1000 * t + 100 * i + k) for k in range(rng.randint(1, 40))]) for i in range(25)]
             for t, hub in enumerate([a, b, a, b])]

    def run(plan: list[tuple[StreamHub, list[float]]]) -> None:
        for hub, levels in plan:
            hub.append(KEY, table(levels), time_field="time")

    threads = [threading.Thread(target=run, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = sorted(v for plan in plans for _, levels in plan for v in levels)
    spans = offsets_in_log(log)
    assert spans[0][0] == 0 and all(x[1] == y[0] for x, y in itertools.pairwise(spans))  # gap-free
    for hub in (a, b):
        read = hub.read(KEY, limit=100_000, time_field="time")
        assert read is not None
        assert read.column("_offset").to_pylist() == list(range(len(sent)))
        assert sorted(read.column("level").to_pylist()) == sent  # each record once



class LogOnItsThread(MemoryLog):
    """A shared log whose reads and notices run on one thread of its own, as NATS's event loop does."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = True
        self.thread = ThreadPoolExecutor(1)
        self.watcher: Callable[[str | None], None] | None = None

    def watch(self, appended: Callable[[str | None], None]) -> None:
        self.watcher = appended

    def last(self, key: str) -> int:
        return self.thread.submit(MemoryLog.last, self, key).result()

    def read(self, key: str, first: int, max_entries: int) -> list[tuple[int, bytes]]:
        return self.thread.submit(MemoryLog.read, self, key, first, max_entries).result()


def test_a_notice_on_the_logs_thread_never_waits_for_a_reader_waiting_for_that_thread() -> None:
    log = LogOnItsThread()
    hub = StreamHub(log)
    gate = threading.Event()
    log.thread.submit(gate.wait)  # the log's thread is busy; a notice and a reader's request queue behind it
    assert log.watcher is not None
    log.thread.submit(log.watcher, "tw-2/other")
    reader = ThreadPoolExecutor(1).submit(hub.end, KEY)  # first use: reads the log, through its thread
    time.sleep(0.2)
    gate.set()
    assert reader.result(timeout=10) == 0  # the notice ran first, and took nothing the reader held
    log.thread.shutdown()
