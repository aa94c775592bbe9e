"""Closed segments become checksummed Parquet files handed to the lake's seam, and ``load_stream`` reads the
whole history (Parquet plus the log's open tail) by event time; on both stream logs (local segment files, and
fixed ranges of sequence numbers on the real NATS JetStream server)."""

from __future__ import annotations

import hashlib
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import select

from helpers import RIVER_REACH
from streams_fixtures import drop_streams, gauge, require_nats, stream_backend, stream_settings  # noqa: F401
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.daemons.streams_compactor import Compactor
from twinengine.runtime import Runtime
from twinengine.streams import records
from twinengine.streams.backends.nats import NatsLog, _name
from twinengine.streams.compaction import ClosedSegment, SegmentSink, load_stream
from twinengine.streams.hub import stream_key
from twinengine.streams.models import CompactedSegment
from twinengine.twins import service as twins


class RecordingSink(SegmentSink):
    def __init__(self) -> None:
        super().__init__()
        self.segments: list[ClosedSegment] = []

    def register(self, segment: ClosedSegment) -> str | None:
        self.segments.append(segment)
        return f"stream-{segment.first_offset}"


SEGMENT_ENTRIES = 6  # nats: 6 batches of 20 records per closed segment


def test_closed_segments_are_compacted_and_loaded_back(tmp_path: Path, stream_backend: str,  # noqa: F811
                                                       drop_streams: list[Any]) -> None:  # noqa: F811
    runtime = Runtime.from_settings(stream_settings(tmp_path / "data", stream_backend, stream_segment_bytes=4096,
                                                    stream_segment_entries=SEGMENT_ENTRIES))
    drop_streams.append(runtime)
    runtime.start()
    try:
        with runtime.db.session() as session:
            publish(session, runtime.blobs, principal=SYSTEM, archive=pack(RIVER_REACH), max_archive_bytes=10**8,
                    max_unpacked_bytes=10**8, steps=runtime.publish_steps)
            twin = twins.create_twin(session, principal=Principal("uma", Role.USER), app="river-reach@0.1.0",
                                     name="reach", parameters={"station": "RR-01"})
            twin_id, declared = twin.id, twins.manifest_for(session, twin).streams["gauges"]
        key = stream_key(twin_id, "gauges")
        for start in range(0, 400, 20):
            table = records.check_records(declared, [gauge(i) for i in range(start, start + 20)])
            runtime.streams.append(key, table, time_field="time")
        sink = RecordingSink()
        compactor = Compactor(runtime, sink)
        with runtime.db.session() as session:
            written = compactor.run_once(session)
        with runtime.db.session() as session:
            assert compactor.run_once(session) == 0  # each closed segment once
            rows = list(session.scalars(select(CompactedSegment).order_by(CompactedSegment.first_offset)))
        assert written == len(rows) == len(sink.segments) >= 2
        assert rows[0].first_offset == 0 and rows[0].dataset_id == "stream-0"
        assert all(b.first_offset == a.last_offset + 1 for a, b in itertools.pairwise(rows))
        assert all(b.last_entry > a.last_entry for a, b in itertools.pairwise(rows))
        if stream_backend == "nats":  # fixed ranges of JetStream sequence numbers, full ones only
            assert [row.last_entry for row in rows] == [6, 12, 18]
            assert [row.records for row in rows] == [120, 120, 120]
        for row in rows:
            assert not Path(row.path).is_absolute()  # under the engine's Parquet folder: a data dir can move
            assert hashlib.sha256((runtime.segment_root / row.path).read_bytes()).hexdigest() == row.sha256
            assert pq.read_table(runtime.segment_root / row.path).num_rows == row.records
        with runtime.db.session(readonly=True) as session:
            everything = load_stream(session, runtime.streams, twin_id=twin_id, stream="gauges", time_field="time",
                                     sink=runtime.segment_sink)
            since = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=15 * 390)
            window = load_stream(session, runtime.streams, twin_id=twin_id, stream="gauges", time_field="time",
                                 sink=runtime.segment_sink,
                                 since=since)
        assert everything is not None and everything.column("_offset").to_pylist() == list(range(400))
        assert rows[-1].last_offset < 399  # the tail came from the open segment of the log
        assert window is not None and window.column("_offset").to_pylist() == list(range(390, 400))
        if stream_backend == "nats":  # a changed segment size never compacts an entry twice
            runtime.streams.log.segment_entries = 4  # type: ignore[attr-defined]  # ranges 17-20 straddle 18
            with runtime.db.session() as session:
                assert compactor.run_once(session) == 1
                last = session.scalars(select(CompactedSegment).order_by(CompactedSegment.first_offset.desc())).first()
                again = load_stream(session, runtime.streams, twin_id=twin_id, stream="gauges", time_field="time",
                                    sink=runtime.segment_sink)
            assert last is not None and (last.first_offset, last.last_offset, last.last_entry) == (360, 399, 20)
            assert again is not None and again.column("_offset").to_pylist() == list(range(400))
    finally:
        if stream_backend != "nats":  # drop_streams closes a nats runtime once it dropped the twin's streams
            runtime.close()


def test_nats_closes_fixed_ranges_of_sequence_numbers() -> None:
    log = NatsLog(require_nats(), segment_entries=3)
    key = f"tw-{uuid.uuid4().hex[:12]}/gauges"
    try:
        assert log.sealed(key) == []  # no such stream yet
        for i in range(7):
            log.append(key, f"entry {i}".encode()).result(10)
        assert log.sealed(key) == [(1, 3), (4, 6)]  # 7 is in the open range 7-9
        log._call(log._js.purge_stream(_name(key), seq=4))  # an operator purged messages 1-3
        assert log.sealed(key) == [(4, 6)]  # a range whose messages are gone is not offered
    finally:
        log.drop(key)
        log.close()
