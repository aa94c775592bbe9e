"""Closed segments of a stream as Parquet, and ``load_stream`` over Parquet plus the log's open tail.

``SegmentSink`` is the seam to the data lake: the compactor hands it every Parquet file it wrote (path,
checksum, offsets); the lake registers it as a dataset and returns its id. Until a lake is connected the
default sink keeps the files where they are and registers nothing; with ``TWIN_LAKE_ENDPOINT`` set the runtime
uses ``twinengine.lake.stream_history.LakeSegmentSink``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.streams.hub import OFFSET, StreamHub, stream_key
from twinengine.streams.models import CompactedSegment

__all__ = ["ClosedSegment", "SegmentSink", "load_stream", "segment_file", "write_parquet"]


@dataclass(frozen=True)
class ClosedSegment:
    twin_id: str
    stream: str
    first_offset: int
    last_offset: int
    records: int
    path: Path
    sha256: str
    size: int
    start: datetime | None = None  # event time of the first and last record (the dataset's time extent)
    end: datetime | None = None


class SegmentSink:
    """Where compacted segments go. ``register`` returns a dataset id, or None when nothing took it;
    ``read`` gives a compacted segment back (from where the sink keeps it).

    A segment's file is recorded relative to ``root`` (the engine's Parquet folder of stream history), so a
    data dir moved or restored elsewhere still finds it; a path recorded absolute (before) is read as it is."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root

    def register(self, segment: ClosedSegment) -> str | None:
        return None

    def path_of(self, row: CompactedSegment) -> Path:
        return segment_file(self.root, row)

    def read(self, row: CompactedSegment) -> pa.Table:
        return pq.read_table(self.path_of(row))


def segment_file(root: Path | None, row: CompactedSegment) -> Path:
    """Where a compacted segment's file is: its recorded path under ``root`` (recorded absolute before data
    dirs could move: as it is)."""
    path = Path(row.path)
    return path if path.is_absolute() or root is None else root / path


def write_parquet(table: pa.Table, path: Path) -> tuple[str, int]:
    """Write durably (temp file, fsync, rename); returns (sha256, size) of the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, compression="zstd")
    digest = hashlib.sha256()
    with tmp.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return digest.hexdigest(), path.stat().st_size


def load_stream(session: Session, hub: StreamHub, *, twin_id: str, stream: str, time_field: str,
                since: datetime | None = None, until: datetime | None = None,
                sink: SegmentSink) -> pa.Table | None:
    """A stream's whole history in a time range: compacted Parquet segments (read through ``sink``: from the
    lake once it registered them), then the log after them."""
    rows = list(session.scalars(select(CompactedSegment).where(CompactedSegment.twin_id == twin_id,
                                                               CompactedSegment.stream == stream)
                                .order_by(CompactedSegment.first_offset)))
    parts: list[pa.Table] = []
    for row in rows:
        table = sink.read(row)
        mask = None
        kind = table.schema.field(time_field).type
        if since is not None:
            mask = pc.greater_equal(table.column(time_field), pa.scalar(since, type=kind))
        if until is not None:
            upper = pc.less(table.column(time_field), pa.scalar(until, type=kind))
            mask = upper if mask is None else pc.and_(mask, upper)
        parts.append(table.filter(mask) if mask is not None else table)
    start = rows[-1].last_offset + 1 if rows else 0
    since_us = int(since.timestamp() * 1e6) if since else None
    until_us = int(until.timestamp() * 1e6) if until else None
    tail = hub.read(stream_key(twin_id, stream), start=start, since_us=since_us, until_us=until_us, limit=10**12,
                    time_field=time_field)
    if tail is not None:
        parts.append(tail)
    parts = [p for p in parts if p.num_rows]
    if not parts:
        return None
    table = pa.concat_tables(parts, promote_options="default")
    return table.sort_by(OFFSET)
