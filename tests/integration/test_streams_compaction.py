"""Closed segments become checksummed Parquet files handed to the lake's seam, and ``load_stream`` reads the
whole history (Parquet plus the log's open tail) by event time."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy import select

from helpers import RIVER_REACH
from streams_fixtures import gauge, stream_settings
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.daemons.streams_compactor import Compactor
from twinengine.runtime import Runtime
from twinengine.streams import records
from twinengine.streams.compaction import ClosedSegment, SegmentSink, load_stream
from twinengine.streams.hub import stream_key
from twinengine.streams.models import CompactedSegment
from twinengine.twins import service as twins


class RecordingSink(SegmentSink):
    def __init__(self) -> None:
        self.segments: list[ClosedSegment] = []

    def register(self, segment: ClosedSegment) -> str | None:
        self.segments.append(segment)
        return f"stream-{segment.first_offset}"


def test_closed_segments_are_compacted_and_loaded_back(tmp_path: Path) -> None:
    runtime = Runtime.from_settings(stream_settings(tmp_path / "data", "local", stream_segment_bytes=4096))
    runtime.start()
    try:
        with runtime.db.session() as session:
            publish(session, runtime.blobs, principal=SYSTEM, archive=pack(RIVER_REACH), max_archive_bytes=10**8,
                    max_unpacked_bytes=10**8)
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
        for row in rows:
            assert hashlib.sha256(Path(row.path).read_bytes()).hexdigest() == row.sha256
            assert pq.read_table(row.path).num_rows == row.records
        with runtime.db.session(readonly=True) as session:
            everything = load_stream(session, runtime.streams, twin_id=twin_id, stream="gauges", time_field="time")
            since = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=15 * 390)
            window = load_stream(session, runtime.streams, twin_id=twin_id, stream="gauges", time_field="time",
                                 since=since)
        assert everything is not None and everything.column("_offset").to_pylist() == list(range(400))
        assert rows[-1].last_offset < 399  # the tail came from the open segment of the log
        assert window is not None and window.column("_offset").to_pylist() == list(range(390, 400))
    finally:
        runtime.close()
