"""Records against a stream's declaration: JSON lines, JSON objects and Arrow IPC in, one Arrow table out.

The fast path lets pyarrow parse and type a whole batch in C++; only when it refuses does a record-by-record
check run, so the answer names the record index and field (``records[17].level``). Nothing of a refused
batch is kept: validation happens before anything is appended.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from twinengine.catalog.manifest import FieldType, Stream
from twinengine.errors import InvalidInput, Problem, ValidationFailed

__all__ = ["MAX_PROBLEMS", "arrow_schema", "check_records", "parse_arrow", "parse_json_lines", "time_range"]

MAX_PROBLEMS = 20
TIME_TYPE = pa.timestamp("us", tz="UTC")
_ARROW = {FieldType.TIMESTAMP: TIME_TYPE, FieldType.FLOAT: pa.float64(), FieldType.INTEGER: pa.int64(),
          FieldType.STRING: pa.string(), FieldType.BOOLEAN: pa.bool_()}


def _required(stream: Stream) -> list[str]:
    return [n for n, f in stream.fields.items() if not f.nullable or n == stream.time_field]


@lru_cache(maxsize=256)
def _schema_of(stream_json: str) -> pa.Schema:
    stream = Stream.model_validate_json(stream_json)
    return pa.schema([pa.field(name, _ARROW[f.type]) for name, f in stream.fields.items()])


def arrow_schema(stream: Stream) -> pa.Schema:
    """The canonical Arrow schema of a stream: declared fields in order, timestamps in µs UTC."""
    return _schema_of(stream.model_dump_json())


def parse_json_lines(stream: Stream, data: bytes) -> pa.Table:
    """Parse newline-delimited JSON objects into the stream's canonical table, or raise ValidationFailed."""
    if not data.strip():
        raise ValidationFailed.one("records", "no records in the body")
    schema = arrow_schema(stream)
    try:
        table = pajson.read_json(
            io.BytesIO(data),
            read_options=pajson.ReadOptions(use_threads=True, block_size=max(1 << 20, min(len(data) + 1, 1 << 26))),
            parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"),
        )
        table = _conform(stream, table.select(schema.names) if _has_all(table, schema) else None)
    except (pa.ArrowInvalid, pa.ArrowTypeError, _Refused):
        table = None
    if table is not None:
        return table
    # The slow path finds the first problems with their places; it is the only one that must be exact.
    records: list[Any] = []
    for i, line in enumerate(data.splitlines()):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            raise ValidationFailed.one(f"records[{len(records)}]", f"line {i + 1} is not valid JSON ({exc})") from None
    return check_records(stream, records)


class _Refused(Exception):
    pass


def _has_all(table: pa.Table, schema: pa.Schema) -> bool:
    return all(name in table.column_names for name in schema.names)


def _conform(stream: Stream, table: pa.Table | None) -> pa.Table:
    """Refuse nulls in required fields (the slow path then says where)."""
    if table is None:
        raise _Refused
    for name in _required(stream):
        if table.column(name).null_count:
            raise _Refused
    return table


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, str):
        stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        raise ValueError("not a time")
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _check_value(kind: FieldType, value: Any) -> tuple[Any, str | None]:
    if kind is FieldType.TIMESTAMP:
        try:
            return _parse_time(value), None
        except ValueError:
            return None, f"{value!r} is not an ISO 8601 time (e.g. 2026-03-01T06:00:00Z)"
    if kind is FieldType.FLOAT:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return (float(value), None) if ok else (None, f"{value!r} is not a number")
    if kind is FieldType.INTEGER:
        ok = isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
        return (value, None) if ok else (None, f"{value!r} is not a 64-bit integer")
    if kind is FieldType.STRING:
        return (value, None) if isinstance(value, str) else (None, f"{value!r} is not a string")
    return (value, None) if isinstance(value, bool) else (None, f"{value!r} is not true or false")


def check_records(stream: Stream, records: Sequence[Any], *, loc: str = "records") -> pa.Table:
    """Check records (mappings) one by one; raise ValidationFailed listing the first problems found."""
    if not records:
        raise ValidationFailed.one(loc, "no records given")
    problems: list[Problem] = []
    columns: dict[str, list[Any]] = {name: [] for name in stream.fields}
    required = set(_required(stream))
    for i, record in enumerate(records):
        if len(problems) >= MAX_PROBLEMS:
            break
        where = f"{loc}[{i}]"
        if not isinstance(record, dict):
            problems.append(Problem(where, f"a record is a JSON object, not {type(record).__name__}"))
            continue
        for key in record:
            if key not in stream.fields:
                known = ", ".join(stream.fields)
                problems.append(Problem(f"{where}.{key}", f"not a field of this stream (fields: {known})"))
        for name, declared in stream.fields.items():
            value = record.get(name)
            if value is None:
                if name in required:
                    problems.append(Problem(f"{where}.{name}", "required"))
                columns[name].append(None)
                continue
            checked, error = _check_value(declared.type, value)
            if error:
                problems.append(Problem(f"{where}.{name}", error))
            columns[name].append(checked)
    if problems:
        raise ValidationFailed(problems[:MAX_PROBLEMS])
    schema = arrow_schema(stream)
    return pa.Table.from_arrays([pa.array(columns[f.name], type=f.type) for f in schema], schema=schema)


def _read_ipc(data: bytes) -> pa.Table:
    try:
        return pa.ipc.open_stream(data).read_all()
    except (pa.ArrowInvalid, OSError):
        pass
    try:
        return pa.ipc.open_file(pa.BufferReader(data)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"body: not an Arrow IPC stream or file ({exc})") from None


def parse_arrow(stream: Stream, data: bytes) -> pa.Table:
    """Arrow IPC (stream or file format) to the canonical table: columns matched by name, cast safely."""
    table = _read_ipc(data)
    if table.num_rows == 0:
        raise ValidationFailed.one("records", "no records in the body")
    schema = arrow_schema(stream)
    problems = [Problem(f"columns.{name}", "not a field of this stream") for name in table.column_names
                if name not in stream.fields]
    required = set(_required(stream))
    arrays = []
    for target in schema:
        if target.name not in table.column_names:
            if target.name in required:
                problems.append(Problem(f"columns.{target.name}", "required column is missing"))
            arrays.append(pa.nulls(table.num_rows, target.type))
            continue
        column = table.column(target.name)
        try:
            if pa.types.is_timestamp(target.type) and pa.types.is_timestamp(column.type) and column.type.tz is None:
                column = pc.assume_timezone(column, "UTC")
            column = column.cast(target.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            problems.append(Problem(f"columns.{target.name}", f"type {column.type} cannot be read as "
                                                              f"{stream.fields[target.name].type.value}"))
            arrays.append(pa.nulls(table.num_rows, target.type))
            continue
        if target.name in required and column.null_count:
            first = pc.index(pc.is_null(column), True).as_py()
            problems.append(Problem(f"records[{first}].{target.name}", "required"))
        arrays.append(column)
    if problems:
        raise ValidationFailed(problems[:MAX_PROBLEMS])
    return pa.Table.from_arrays(arrays, schema=schema)


def time_range(table: pa.Table, time_field: str) -> tuple[int, int]:
    """Smallest and largest event time of a batch, as µs since the epoch."""
    bounds = pc.min_max(table.column(time_field).cast(pa.int64()))
    return int(bounds["min"].as_py()), int(bounds["max"].as_py())
