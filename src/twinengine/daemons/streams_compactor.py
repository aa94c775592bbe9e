"""The compactor: writes each closed segment of a stream as one Parquet file (zstd, checksummed), records it,
and hands it to the lake's ``SegmentSink``. Closed segments come from the backend (``StreamLog.sealed``): segment
files of the local log, fixed ranges of sequence numbers on NATS JetStream. The segment stays in the log (no
backend deletes what was compacted); retention is the lake's call."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from twinengine.daemons.engine_parts import EngineParts
from twinengine.streams import batch
from twinengine.streams.compaction import ClosedSegment, SegmentSink, segment_file, write_parquet
from twinengine.streams.hub import _annotate
from twinengine.streams.models import CompactedSegment
from twinengine.twins import service as twins
from twinengine.twins.models import Twin

__all__ = ["Compactor"]

log = logging.getLogger("twinengine.compactor")
INTERVAL = 5.0
_PASS = threading.Lock()  # one pass at a time in a process (the daemon's, or one asked for, as the demo does)


class Compactor:
    def __init__(self, runtime: EngineParts, sink: SegmentSink | None = None) -> None:
        self.runtime = runtime
        self.sink = sink or runtime.segment_sink
        self.root = runtime.segment_root

    def run_once(self, session: Session | None = None) -> int:
        """Compact every closed segment not compacted yet; returns how many were written.

        The store is touched in short units of work (``session``'s transactions when given, else sessions of
        its own); Parquet writing and the sink's upload happen between them, so no writer waits on those."""
        with _PASS:
            return self._pass(session)

    @contextmanager
    def _unit(self, session: Session | None) -> Iterator[Session]:
        if session is not None:
            yield session
            session.commit()
        else:
            with self.runtime.db.session() as own:
                yield own

    def _pass(self, session: Session | None) -> int:
        hub = self.runtime.streams
        if session is not None:
            session.commit()
        self._register_missing(session)
        work: list[tuple[str, str, str, str | None, int]] = []
        with self._unit(session) as unit:
            for key in hub.log.list_keys():
                twin_id, _, stream = key.partition("/")
                twin = unit.get(Twin, twin_id)
                if stream.startswith("_") or twin is None:
                    continue
                declared = twins.manifest_for(unit, twin).streams.get(stream)
                done = unit.scalar(select(func.max(CompactedSegment.last_entry))
                                   .where(CompactedSegment.twin_id == twin_id, CompactedSegment.stream == stream))
                work.append((key, twin_id, stream, declared.time_field if declared is not None else None, done or 0))
        written = 0
        for key, twin_id, stream, time_field, done in work:
            for first, last in hub.log.sealed(key):
                if last <= done:
                    continue
                first = max(first, done + 1)  # a range that moved (nats segment size changed) is not written twice
                tables = []
                for _seq, payload in hub.log.read(key, first, last - first + 1):
                    header, table = batch.decode(payload)
                    tables.append(_annotate(header, table))
                table = pa.concat_tables(tables, promote_options="default")  # _uncertainty may come later
                first_offset = int(table.column("_offset")[0].as_py())
                last_offset = int(table.column("_offset")[-1].as_py())
                path = self.root / twin_id / stream / f"{first_offset:020d}.parquet"
                sha256, size = write_parquet(table, path)
                start, end = _extent(table, time_field)
                segment = ClosedSegment(twin_id, stream, first_offset, last_offset, table.num_rows, path, sha256, size,
                                        start, end)
                dataset_id = self._register(segment)
                with self._unit(session) as unit:
                    unit.add(CompactedSegment(twin_id=twin_id, stream=stream, first_offset=first_offset,
                                              last_offset=last_offset, last_entry=last, records=table.num_rows,
                                              path=str(path.relative_to(self.root)), sha256=sha256, size=size,
                                              dataset_id=dataset_id))
                written += 1
        return written

    def _register(self, segment: ClosedSegment) -> str | None:
        try:
            return self.sink.register(segment)
        except Exception as exc:  # the lake is down or refuses: the segment stays local, retried next pass
            log.warning("segment %s/%s@%d not registered: %s", segment.twin_id, segment.stream,
                        segment.first_offset, exc)
            return None

    def _register_missing(self, session: Session | None) -> None:
        """Segments compacted while the sink could not take them are registered now."""
        if type(self.sink) is SegmentSink:
            return
        pending: list[tuple[int, ClosedSegment]] = []
        with self._unit(session) as unit:
            for row in unit.scalars(select(CompactedSegment).where(CompactedSegment.dataset_id.is_(None))):
                twin = unit.get(Twin, row.twin_id)
                declared = twins.manifest_for(unit, twin).streams.get(row.stream) if twin is not None else None
                start = end = None
                path = segment_file(self.root, row)
                if declared is not None and path.exists():
                    start, end = _extent(pq.read_table(path, columns=[declared.time_field]), declared.time_field)
                pending.append((row.id, ClosedSegment(row.twin_id, row.stream, row.first_offset, row.last_offset,
                                                      row.records, path, row.sha256, row.size, start, end)))
        for row_id, segment in pending:  # no transaction of ours open while the lake writes
            dataset_id = self._register(segment)
            if dataset_id is not None:
                with self._unit(session) as unit:
                    unit.get_one(CompactedSegment, row_id).dataset_id = dataset_id


def _extent(table: pa.Table, time_field: str | None) -> tuple[datetime | None, datetime | None]:
    """Earliest and latest event time of a segment (late records make them differ from the first and last)."""
    if time_field is None or time_field not in table.column_names:
        return None, None
    bounds = pc.min_max(table.column(time_field))
    return bounds["min"].as_py(), bounds["max"].as_py()
