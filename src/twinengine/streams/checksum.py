"""The SHA-256 of a stream's records, defined on what the records hold and not on how a log entry or a Parquet
segment keeps them, so the same records give the same checksum on any engine, store or backend, and after a
restart or a compaction (docs/reproducibility.md, "Checksum of a stream's records", says how to recompute it).

Each record becomes one line of canonical JSON: its fields and its offset (``_offset``) as an object with sorted
keys, no spaces, UTF-8; fields that are null left out (a field a record lacks and a field it has as null are the
same record); times as UTC ISO 8601 with microseconds and ``Z``; floats as the shortest text that reads back as
the same double (``NaN``, ``Infinity``, ``-Infinity`` as strings); the engine's notes on a record (its arrival
time, quality flag and the checks that set it) left out. The checksum is the SHA-256 of the lines, each ended by
``\\n``, in offset order; no records give the SHA-256 of nothing. Records are read and hashed in bounded parts."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.quality.plan import CHECKS, QUALITY
from twinengine.quality.spec import FLAGS
from twinengine.streams.compaction import SegmentSink
from twinengine.streams.hub import ARRIVAL, OFFSET, StreamHub, stream_key
from twinengine.streams.models import CompactedSegment

__all__ = ["NOTES", "RecordsChecksum", "RecordsDigest", "canonical_line", "records_checksum", "stream_checksum",
           "stream_records"]

NOTES = (ARRIVAL, QUALITY, CHECKS)  # what the engine notes of a record, not what the record holds
CHUNK = 4096  # records read and hashed at once
PART_BYTES = 32 << 20  # about as many bytes of records turned into Python values at once


@dataclass(frozen=True)
class RecordsChecksum:
    """The SHA-256 of some records (see the module docstring), how many there were and the bytes hashed."""

    sha256: str
    records: int
    bytes: int


def _value(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return value if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dict):
        return {str(k): _value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return {str(k): _value(v) for k, v in value if v is not None}  # an Arrow map: key → value
    if isinstance(value, list | tuple):
        return [_value(v) for v in value]
    return value


def canonical_line(record: dict[str, Any]) -> bytes:
    """One record as its line of canonical JSON, ``\\n`` included (the engine's notes left out)."""
    return _encoded({k: _value(v) for k, v in record.items() if v is not None and k not in NOTES})


def _encoded(plain: dict[str, Any]) -> bytes:
    """The line of a record whose values are JSON's already: keys sorted, no spaces, UTF-8, a newline."""
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode() + b"\n"


def _times_in_microseconds(table: pa.Table) -> pa.Table:
    """Timestamps of any unit as UTC microseconds (one form, whatever unit a store kept them in)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type != pa.timestamp("us", tz="UTC"):
            column = table.column(i)
            if field.type.tz is None:
                column = pc.assume_timezone(column, "UTC")
            table = table.set_column(i, field.name, pc.cast(column, pa.timestamp("us", tz="UTC"), safe=False))
    return table


def _prepared(table: pa.Table) -> tuple[pa.Table, list[str]]:
    """The table with its times already as ``_value`` writes them (by Arrow, a column at once), and the columns
    whose values still need ``_value`` one by one (nested ones, and floats with a value that is not finite): the
    same lines as ``canonical_line``, about three times faster (``tests/unit/test_stream_checksums.py`` holds
    the two equal)."""
    generic = []
    for i, field in enumerate(table.schema):
        kind = field.type
        if pa.types.is_timestamp(kind):
            table = table.set_column(i, field.name, pc.strftime(table.column(i), format="%Y-%m-%dT%H:%M:%SZ"))
        elif pa.types.is_floating(kind):
            finite = pc.is_finite(table.column(i))
            if not pc.all(pc.fill_null(finite, True)).as_py():
                generic.append(field.name)
        elif pa.types.is_nested(kind) or pa.types.is_dictionary(kind):
            generic.append(field.name)
    return table, generic


class RecordsDigest:
    """The checksum of records fed in offset order, part by part."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.records = 0
        self.bytes = 0

    def update(self, table: pa.Table | None) -> None:
        if table is None or table.num_rows == 0:
            return
        table, generic = _prepared(_times_in_microseconds(table.drop_columns([c for c in NOTES
                                                                               if c in table.column_names])))
        rows = max(1, min(CHUNK, PART_BYTES // max(table.nbytes // table.num_rows, 1)))
        update = self._hash.update
        for batch in table.to_batches(max_chunksize=rows):
            for record in batch.to_pylist():
                plain = {k: v for k, v in record.items() if v is not None}
                for k in generic:
                    if k in plain:
                        plain[k] = _value(plain[k])
                line = _encoded(plain)
                update(line)
                self.records += 1
                self.bytes += len(line)

    def result(self) -> RecordsChecksum:
        return RecordsChecksum(sha256=self._hash.hexdigest(), records=self.records, bytes=self.bytes)


def records_checksum(tables: pa.Table | Iterable[pa.Table] | None) -> RecordsChecksum:
    """The checksum of records a run holds (one table, or parts in offset order); a table not in offset order is
    sorted first."""
    digest = RecordsDigest()
    if isinstance(tables, pa.Table):
        ordered = tables.column(OFFSET).to_numpy() if OFFSET in tables.column_names else None
        if ordered is not None and len(ordered) > 1 and (ordered[1:] < ordered[:-1]).any():
            tables = tables.sort_by(OFFSET)
        tables = [tables]
    for table in tables or []:
        digest.update(table)
    return digest.result()


def _window(table: pa.Table, start: int, end: int | None, since: datetime | None, until: datetime | None,
            time_field: str | None, quality: Collection[str] | None) -> pa.Table:
    offsets = table.column(OFFSET)
    mask = pc.greater_equal(offsets, start)
    if end is not None:
        mask = pc.and_(mask, pc.less(offsets, end))
    if time_field is not None and time_field in table.column_names:
        kind = table.schema.field(time_field).type
        if since is not None:
            mask = pc.and_(mask, pc.greater_equal(table.column(time_field), pa.scalar(since, type=kind)))
        if until is not None:
            mask = pc.and_(mask, pc.less(table.column(time_field), pa.scalar(until, type=kind)))
    if quality is not None and QUALITY in table.column_names:
        column = table.column(QUALITY)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        kept = ([code for code, flag in enumerate(FLAGS) if flag.value in quality] if pa.types.is_integer(column.type)
                else sorted(quality))
        mask = pc.and_(mask, pc.fill_null(pc.is_in(column, value_set=pa.array(kept, type=column.type)), True))
    return table.filter(mask)


def stream_records(session: Session, hub: StreamHub, sink: SegmentSink, *, twin_id: str, stream: str,
                   start: int = 0, end: int | None = None, since: datetime | None = None,
                   until: datetime | None = None, time_field: str | None = None,
                   quality: Collection[str] | None = None) -> Iterator[pa.Table]:
    """A stream's records with offsets in [start, end) (and event times in [since, until), flags in ``quality``,
    where given), in offset order and in parts of at most ``CHUNK`` records: its compacted segments first, then
    the log after them, as ``streams.compaction.load_stream`` reads its history."""
    after = 0
    query = select(CompactedSegment).where(CompactedSegment.twin_id == twin_id, CompactedSegment.stream == stream)
    for row in session.scalars(query.order_by(CompactedSegment.first_offset)):
        after = max(after, row.last_offset + 1)
        if row.last_offset < start or (end is not None and row.first_offset >= end):
            continue
        part = _window(sink.read(row), start, end, since, until, time_field, quality)
        for at in range(0, part.num_rows, CHUNK):
            yield part.slice(at, CHUNK)
    at, key = max(start, after), stream_key(twin_id, stream)
    since_us = None if since is None else int(since.timestamp() * 1e6)
    until_us = None if until is None else int(until.timestamp() * 1e6)
    while end is None or at < end:
        part = hub.read(key, start=at, stop=end, since_us=since_us, until_us=until_us, limit=CHUNK,
                        time_field=time_field if since_us is not None or until_us is not None else None,
                        quality=quality, max_bytes=PART_BYTES)
        if part is None or part.num_rows == 0:
            return
        yield part
        at = int(part.column(OFFSET)[-1].as_py()) + 1


def stream_checksum(session: Session, hub: StreamHub, sink: SegmentSink, *, twin_id: str, stream: str,
                    start: int = 0, end: int | None = None, since: datetime | None = None,
                    until: datetime | None = None, time_field: str | None = None,
                    quality: Collection[str] | None = None) -> RecordsChecksum:
    """The checksum of the records ``stream_records`` reads, hashed part by part (never all held at once)."""
    digest = RecordsDigest()
    for part in stream_records(session, hub, sink, twin_id=twin_id, stream=stream, start=start, end=end,
                               since=since, until=until, time_field=time_field, quality=quality):
        digest.update(part)
    return digest.result()
