"""Array fields going out: an Arrow list column as numpy, for what functions and graphs receive.

A function on arrival gets each array value as a 1-d numpy array (a view into one buffer per batch, not a
Python list of floats); ``load_stream`` gets a 2-d (record, sample) array per field.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from twinengine.streams.uncertainty import plain_records

__all__ = ["as_matrix", "is_array", "to_python"]


def is_array(kind: pa.DataType) -> bool:
    return bool(pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind))


def _combined(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def as_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A (records, samples) array: a fixed length keeps its dtype; varying lengths are padded with NaN (and
    so become float64), as are null values."""
    array = _combined(column)
    n = len(array)
    if pa.types.is_fixed_size_list(array.type) and array.null_count == 0:
        return np.asarray(array.flatten().to_numpy(zero_copy_only=False)).reshape(n, array.type.list_size)
    lengths = np.asarray(pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    width = int(lengths.max()) if n else 0
    values = np.asarray(pc.list_flatten(array).to_numpy(zero_copy_only=False))
    if width and (lengths == width).all() and array.null_count == 0:
        return values.reshape(n, width)
    out = np.full((n, width), np.nan, dtype=np.float64)
    out[np.arange(width)[None, :] < lengths[:, None]] = values
    return out


def _rows(column: pa.ChunkedArray | pa.Array) -> list[np.ndarray | None]:
    array = _combined(column)
    if pa.types.is_fixed_size_list(array.type) and array.null_count == 0:
        return list(as_matrix(array))
    lengths = np.asarray(pc.list_value_length(array).fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    values = np.asarray(pc.list_flatten(array).to_numpy(zero_copy_only=False))
    rows: list[np.ndarray | None] = []
    start = 0
    for length in lengths.tolist():
        if length < 0:
            rows.append(None)
            continue
        rows.append(values[start: start + length])
        start += length
    return rows


def to_python(table: pa.Table) -> list[dict[str, Any]]:
    """``table.to_pylist()``, except that array fields are numpy arrays (never lists of Python floats) and a
    record's ``_uncertainty`` is ``{field: {form: ...}}``."""
    arrays = [name for name, kind in zip(table.column_names, table.schema.types, strict=True) if is_array(kind)]
    if not arrays:
        return plain_records(table)
    records: list[dict[str, Any]] = plain_records(table.drop_columns(arrays))
    for name in arrays:
        for record, row in zip(records, _rows(table.column(name)), strict=True):
            record[name] = row
    return records
