"""The compactor: writes each closed segment of a stream as one Parquet file (zstd, checksummed), records it,
and hands it to the lake's ``SegmentSink``. The segment stays in the log; retention is the lake's call."""

from __future__ import annotations

import logging
import threading

import pyarrow as pa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from twinengine.runtime import Runtime
from twinengine.streams import batch
from twinengine.streams.compaction import ClosedSegment, SegmentSink, write_parquet
from twinengine.streams.hub import _annotate
from twinengine.streams.models import CompactedSegment
from twinengine.twins.models import Twin

__all__ = ["Compactor"]

log = logging.getLogger("twinengine.compactor")
_INTERVAL = 5.0


class Compactor:
    def __init__(self, runtime: Runtime, sink: SegmentSink | None = None) -> None:
        self.runtime = runtime
        self.sink = sink or SegmentSink()
        self.root = (runtime.settings.streams_dir or runtime.data_dir / "streams") / "parquet"

    def run_once(self, session: Session) -> int:
        """Compact every closed segment not compacted yet; returns how many were written."""
        hub = self.runtime.streams
        written = 0
        for key in hub.log.list_keys():
            twin_id, _, stream = key.partition("/")
            if stream.startswith("_") or session.get(Twin, twin_id) is None:
                continue
            done = session.scalar(select(func.max(CompactedSegment.last_entry))
                                  .where(CompactedSegment.twin_id == twin_id, CompactedSegment.stream == stream)) or 0
            for first, last in hub.log.sealed(key):
                if last <= done:
                    continue
                tables = []
                for _seq, payload in hub.log.read(key, first, last - first + 1):
                    header, table = batch.decode(payload)
                    tables.append(_annotate(header, table))
                table = pa.concat_tables(tables)
                first_offset = int(table.column("_offset")[0].as_py())
                last_offset = int(table.column("_offset")[-1].as_py())
                path = self.root / twin_id / stream / f"{first_offset:020d}.parquet"
                sha256, size = write_parquet(table, path)
                segment = ClosedSegment(twin_id, stream, first_offset, last_offset, table.num_rows, path, sha256, size)
                row = CompactedSegment(twin_id=twin_id, stream=stream, first_offset=first_offset,
                                       last_offset=last_offset, last_entry=last, records=table.num_rows,
                                       path=str(path), sha256=sha256, size=size)
                session.add(row)
                session.flush()
                row.dataset_id = self.sink.register(segment)
                written += 1
        return written

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(_INTERVAL):
            try:
                with self.runtime.db.session() as session:
                    self.run_once(session)
            except Exception:
                log.exception("compaction step failed")
