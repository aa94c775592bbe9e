"""Numeric columns kept compactly inside a cycle record's JSON: an array as its little-endian bytes in base64
(``{"dtype": "f8", "shape": [20, 40], "b64": "..."}``), about half the size of its numbers as text, written
and read without formatting or parsing a number. Records written before keep plain lists, which read the same.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

__all__ = ["array_of", "is_packed", "list_of", "pack"]

_TYPES = {"f8": "<f8", "i8": "<i8"}


def pack(array: np.ndarray) -> dict[str, Any]:
    """``array`` (floats, or integers) in its packed form."""
    kind = "i8" if array.dtype.kind in "iu" else "f8"
    data = np.ascontiguousarray(array, dtype=_TYPES[kind])
    return {"dtype": kind, "shape": list(data.shape), "b64": base64.b64encode(data.tobytes()).decode("ascii")}


def is_packed(value: Any) -> bool:
    return isinstance(value, dict) and "b64" in value and "dtype" in value


def array_of(value: Any, dtype: type = float) -> np.ndarray:
    """The array of a column kept packed, or as a (nested) list by older records."""
    if is_packed(value):
        kind = _TYPES.get(str(value["dtype"]))
        if kind is None:
            raise ValueError(f"a packed column of unknown dtype {value['dtype']!r}")
        data = np.frombuffer(base64.b64decode(value["b64"]), dtype=kind)
        return np.asarray(data.reshape([int(s) for s in value["shape"]]), dtype=dtype)
    return np.asarray(value, dtype=dtype)


def list_of(value: Any) -> list[Any]:
    """A column as a plain list (the API's form), packed or not."""
    if not is_packed(value):
        return list(value)
    out: list[Any] = array_of(value, int if value["dtype"] == "i8" else float).tolist()
    return out
