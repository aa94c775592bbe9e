"""Records against a stream's declaration: JSON lines, JSON objects and Arrow IPC in, one Arrow table out.

The fast path lets pyarrow parse and type a whole batch in C++; only when it refuses does a record-by-record
check run, so the answer names the record index and field (``records[17].level``, and for an array field
the sample, ``records[3].strain[17]``). Nothing of a refused batch is kept: validation happens before anything
is appended. An array field is an Arrow ``fixed_size_list`` (declared ``length``) or ``list`` of float64 or
int64; its samples are never null, and float samples may be NaN or ±Infinity as float fields may. A field that
declares uncertainty takes ``{"value": 2.1, "uncertainty": {"std": 0.3}}``; the record keeps the value in the
field and the uncertainty in its ``_uncertainty`` column (``streams/uncertainty.py``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from twinengine.catalog.manifest import MAX_ARRAY_LENGTH, FieldType, Stream, StreamField
from twinengine.errors import InvalidInput, Problem, ValidationFailed
from twinengine.streams import uncertainty
from twinengine.streams.arrays import is_array

__all__ = ["MAX_PROBLEMS", "arrow_schema", "arrow_type", "check_records", "parse_arrow", "parse_json_lines",
           "time_range"]

MAX_PROBLEMS = 20
TIME_TYPE = pa.timestamp("us", tz="UTC")
_ARROW = {FieldType.TIMESTAMP: TIME_TYPE, FieldType.FLOAT: pa.float64(), FieldType.INTEGER: pa.int64(),
          FieldType.STRING: pa.string(), FieldType.BOOLEAN: pa.bool_()}


def arrow_type(declared: StreamField) -> pa.DataType:
    """The Arrow type of a declared field (an array: fixed_size_list with a length, else list)."""
    if declared.type is FieldType.ARRAY:
        item = pa.float64() if declared.items == "float" else pa.int64()
        return pa.list_(item, declared.length) if declared.length else pa.list_(item)
    return _ARROW[declared.type]


def _describe(declared: StreamField) -> str:
    if declared.type is FieldType.ARRAY:
        return f"array of {declared.items}" + (f"[{declared.length}]" if declared.length else "")
    return declared.type.value


def _required(stream: Stream) -> list[str]:
    return [n for n, f in stream.fields.items() if not f.nullable or n == stream.time_field]


@lru_cache(maxsize=256)
def _schema_of(stream_json: str) -> pa.Schema:
    stream = Stream.model_validate_json(stream_json)
    return pa.schema([pa.field(name, arrow_type(f)) for name, f in stream.fields.items()])


def arrow_schema(stream: Stream) -> pa.Schema:
    """The canonical Arrow schema of a stream: declared fields in order, timestamps in µs UTC."""
    return _schema_of(stream.model_dump_json())


def parse_json_lines(stream: Stream, data: bytes) -> pa.Table:
    """Parse newline-delimited JSON objects into the stream's canonical table, or raise ValidationFailed."""
    if not data.strip():
        raise ValidationFailed.one("records", "no records in the body")
    schema = arrow_schema(stream)
    # the JSON reader knows variable lists only: a fixed length is checked and cast afterwards
    parsed = pa.schema([pa.field(f.name, pa.list_(f.type.value_type)) if pa.types.is_fixed_size_list(f.type)
                        else f for f in schema])
    try:
        # one block (a batch is at most 64 MiB): Arrow's pool could not split it anyway, and parsing on this
        # thread leaves the table in this core's cache for the quality checks and encoding that follow
        table = pajson.read_json(
            io.BytesIO(data),
            read_options=pajson.ReadOptions(use_threads=False, block_size=max(1 << 20, min(len(data) + 1, 1 << 26))),
            parse_options=pajson.ParseOptions(explicit_schema=parsed, unexpected_field_behavior="error"),
        )
        table = _conform(stream, table.select(schema.names) if _has_all(table, schema) else None)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, _Refused):
        table = None  # e.g. a value with its uncertainty ({"value": .., "uncertainty": ..}): an object, not a number
    if table is not None:
        if not _valid_text(table):  # Arrow's reader keeps a string's bytes as they came
            _refuse_text(data)
        return _with_uncertainty(stream, table, None)
    # The slow path finds the first problems with their places; it is the only one that must be exact.
    records: list[Any] = []
    for i, line in enumerate(data.splitlines()):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode())
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"records: line {i + 1} is not valid UTF-8 text (byte {exc.start + 1}: "
                               f"{exc.reason})") from None
        except (ValueError, RecursionError) as exc:
            raise ValidationFailed.one(f"records[{len(records)}]", f"line {i + 1} is not valid JSON ({exc})") from None
        if b"\\u" in line and _unpaired(record):
            raise InvalidInput(f"records: line {i + 1} holds an unpaired surrogate escape (\\ud800 to \\udfff "
                               "alone), which is no Unicode text") from None
        records.append(record)
    return check_records(stream, records)


def _valid_text(table: pa.Table) -> bool:
    """Do the table's string columns hold UTF-8 only (what every reader of the stream decodes)?"""
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            try:
                column.validate(full=True)
            except pa.ArrowInvalid:
                return False
    return True


def _refuse_text(data: bytes) -> None:
    """Raise InvalidInput naming the first line of ``data`` that is not UTF-8."""
    try:
        data.decode()
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InvalidInput(f"records: line {line} is not valid UTF-8 text (byte {column}: {exc.reason})") from None
    raise InvalidInput("records: a string is not valid UTF-8 text")


def _unpaired(value: Any) -> bool:
    """Does a parsed JSON value hold a lone surrogate (``"\\ud83d"`` escaped alone), in a key or a string?"""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


def _text_problem(value: str) -> str | None:
    """Why a string is not Unicode text (a lone surrogate cannot be stored or sent as UTF-8), or None."""
    if value.isascii():
        return None
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        return f"character {exc.start} is an unpaired surrogate ({value[exc.start]!a}), which is no Unicode text"
    return None


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
    for name, declared in stream.fields.items():
        if declared.type is FieldType.ARRAY:
            column = table.column(name)
            if _array_problem(declared, column) is not None:
                raise _Refused
            target = arrow_type(declared)
            if column.type != target:
                table = table.set_column(table.schema.get_field_index(name), name, column.cast(target))
    return table


def _array_problem(declared: StreamField, column: pa.ChunkedArray | pa.Array) -> tuple[int, str, str] | None:
    """The first record whose array value breaks the declaration: (record index, loc suffix, message)."""
    if (pa.types.is_fixed_size_list(column.type) and column.type.list_size == declared.length
            and pc.list_flatten(column).null_count == 0):
        return None  # the type holds the length: only null samples could be wrong (the common Arrow case)
    lengths = pc.list_value_length(column).fill_null(0)
    wrong = (pc.not_equal(lengths, declared.length) if declared.length is not None
             else pc.greater(lengths, MAX_ARRAY_LENGTH))
    bad_length = pc.index(wrong, True).as_py()
    values = pc.list_flatten(column)
    bad_value = -1
    if values.null_count:
        flat = pc.index(pc.is_null(values), True).as_py()
        bad_value = pc.list_parent_indices(column)[flat].as_py() if flat >= 0 else -1
    if bad_length >= 0 and (bad_value < 0 or bad_length <= bad_value):
        n = lengths[bad_length].as_py()
        limit = f"exactly {declared.length}" if declared.length is not None else f"at most {MAX_ARRAY_LENGTH}"
        return bad_length, "", f"has {n} samples; the field holds {limit}"
    if bad_value >= 0:
        sample = pc.index(pc.is_null(pc.list_flatten(column.slice(bad_value, 1))), True).as_py()
        return bad_value, f"[{sample}]", "null is not a number (a missing float sample is NaN)"
    return None


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, str):
        stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        raise ValueError("not a time")
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


_FLOAT_MAX = 2**1024  # an integer at least this large has no float64


def _as_float(v: Any) -> bool:
    """Is ``v`` a number a float64 holds (an int beyond its range is not; bool is no number)?"""
    if type(v) is float or isinstance(v, np.floating):
        return True
    return (type(v) is int or isinstance(v, np.integer)) and -_FLOAT_MAX < int(v) < _FLOAT_MAX


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_array(declared: StreamField, value: Any) -> tuple[Any, str | None, str]:
    """An array value: a list (or a 1-d numpy array) of numbers of the declared length."""
    floats = declared.items == "float"
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or value.dtype.kind not in ("fiu" if floats else "iu"):
            return None, f"a numpy array of shape {value.shape} and dtype {value.dtype} is not an array of " \
                         f"{declared.items}", ""
        items: Sequence[Any] | np.ndarray = value
    elif isinstance(value, list | tuple):
        items = value
    else:
        return None, f"{_short(value)} is not an array of {declared.items} (a JSON list of numbers)", ""
    n = len(items)
    if (declared.length is not None and n != declared.length) or n > MAX_ARRAY_LENGTH:
        limit = f"exactly {declared.length}" if declared.length is not None else f"at most {MAX_ARRAY_LENGTH}"
        return None, f"has {n} samples; the field holds {limit}", ""
    if isinstance(items, np.ndarray):
        if not floats and items.dtype.kind == "u" and items.size and int(items.max()) >= 2**63:
            at = int(np.argmax(items >= 2**63))
            return None, f"{int(items[at])} is not a 64-bit integer", f"[{at}]"
        return items, None, ""
    if floats:
        if all(type(v) is float for v in items) or all(_as_float(v) for v in items):
            return items, None, ""
        for j, v in enumerate(items):
            if v is None:
                return None, "null is not a number (a missing float sample is NaN)", f"[{j}]"
            if not _as_float(v):
                number = type(v) is int or isinstance(v, np.integer)
                return None, f"{_short(v)} is {'beyond float64' if number else 'not a number'}", f"[{j}]"
        return items, None, ""
    for j, v in enumerate(items):
        ok = (type(v) is int or isinstance(v, np.integer)) and -(2**63) <= int(v) < 2**63
        if not ok:
            return None, f"{_short(int(v) if isinstance(v, np.integer) else v)} is not a 64-bit integer", f"[{j}]"
    return items, None, ""


def _check_value(declared: StreamField, value: Any) -> tuple[Any, str | None, str]:
    kind = declared.type
    if kind is FieldType.ARRAY:
        return _check_array(declared, value)
    checked, error = _check_scalar(kind, value)
    return checked, error, ""


def _check_scalar(kind: FieldType, value: Any) -> tuple[Any, str | None]:
    if kind is FieldType.TIMESTAMP:
        try:
            return _parse_time(value), None
        except ValueError:
            return None, f"{_short(value)} is not an ISO 8601 time (e.g. 2026-03-01T06:00:00Z)"
    if kind is FieldType.FLOAT:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not _as_float(value):
            return None, f"{_short(value)} is beyond float64"
        return (float(value), None) if ok else (None, f"{_short(value)} is not a number")
    if kind is FieldType.INTEGER:
        ok = isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
        return (value, None) if ok else (None, f"{_short(value)} is not a 64-bit integer")
    if kind is FieldType.STRING:
        if not isinstance(value, str):
            return None, f"{_short(value)} is not a string"
        problem = _text_problem(value)
        return (None, problem) if problem else (value, None)
    return (value, None) if isinstance(value, bool) else (None, f"{_short(value)} is not true or false")


def check_records(stream: Stream, records: Sequence[Any], *, loc: str = "records") -> pa.Table:
    """Check records (mappings) one by one; raise ValidationFailed listing the first problems found."""
    if not records:
        raise ValidationFailed.one(loc, "no records given")
    problems: list[Problem] = []
    columns: dict[str, list[Any]] = {name: [] for name in stream.fields}
    required = set(_required(stream))
    carried: list[dict[str, dict[str, Any]] | None] = []
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
                shown = key if not isinstance(key, str) or _text_problem(key) is None else ascii(key)[1:-1]
                problems.append(Problem(f"{where}.{shown}", f"not a field of this stream (fields: {known})"))
        forms: dict[str, dict[str, Any]] = {}
        for name, declared in stream.fields.items():
            value = record.get(name)
            if isinstance(value, dict) and declared.type is not FieldType.ARRAY:
                value, carries, found = uncertainty.split(f"{where}.{name}", name, declared, value)
                problems += found
                if found:
                    columns[name].append(None)
                    continue
                if carries is not None:
                    forms[name] = carries
            if value is None:
                if name in required:
                    problems.append(Problem(f"{where}.{name}", "required"))
                columns[name].append(None)
                continue
            checked, error, sub = _check_value(declared, value)
            if error:
                problems.append(Problem(f"{where}.{name}{sub}", error))
            columns[name].append(checked)
        carried.append(forms or None)
    if problems:
        raise ValidationFailed(problems[:MAX_PROBLEMS])
    schema = arrow_schema(stream)
    table = pa.Table.from_arrays([pa.array(columns[f.name], type=f.type) for f in schema], schema=schema)
    return _with_uncertainty(stream, table, carried)


def _with_uncertainty(stream: Stream, table: pa.Table,
                      carried: Sequence[dict[str, dict[str, Any]] | None] | pa.Array | None) -> pa.Table:
    """A stream whose fields declare uncertainty keeps it in one more column (null for a record with none)."""
    if not uncertainty.declares(stream):
        return table
    column = carried if isinstance(carried, pa.Array) else uncertainty.column_of(carried or [None] * table.num_rows)
    return table.append_column(pa.field(uncertainty.UNCERTAINTY, uncertainty.UNCERTAINTY_TYPE), column)


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
    carried: pa.Array | None = None
    problems: list[Problem] = []
    if uncertainty.UNCERTAINTY in table.column_names and uncertainty.declares(stream):
        carried, problems = uncertainty.check_column(stream, table.column(uncertainty.UNCERTAINTY))
        table = table.drop_columns([uncertainty.UNCERTAINTY])
    problems += [Problem(f"columns.{name}", "not a field of this stream") for name in table.column_names
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
        declared = stream.fields[target.name]
        if declared.type is FieldType.ARRAY and is_array(column.type):
            found = _array_problem(declared, column)
            if found is not None:
                index, sub, message = found
                problems.append(Problem(f"records[{index}].{target.name}{sub}", message))
                arrays.append(pa.nulls(table.num_rows, target.type))
                continue
        try:
            if pa.types.is_timestamp(target.type) and pa.types.is_timestamp(column.type) and column.type.tz is None:
                column = pc.assume_timezone(column, "UTC")
            column = column.cast(target.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            problems.append(Problem(f"columns.{target.name}", f"type {column.type} cannot be read as "
                                                              f"{_describe(declared)}"))
            arrays.append(pa.nulls(table.num_rows, target.type))
            continue
        if pa.types.is_string(target.type) and not _valid_text(pa.table({target.name: column})):
            problems.append(Problem(f"columns.{target.name}", "holds bytes that are not valid UTF-8 text"))
        if target.name in required and column.null_count:
            first = pc.index(pc.is_null(column), True).as_py()
            problems.append(Problem(f"records[{first}].{target.name}", "required"))
        arrays.append(column)
    if problems:
        raise ValidationFailed(problems[:MAX_PROBLEMS])
    return _with_uncertainty(stream, pa.Table.from_arrays(arrays, schema=schema), carried)


def time_range(table: pa.Table, time_field: str) -> tuple[int, int]:
    """Smallest and largest event time of a batch, as µs since the epoch."""
    bounds = pc.min_max(table.column(time_field).cast(pa.int64()))
    return int(bounds["min"].as_py()), int(bounds["max"].as_py())
