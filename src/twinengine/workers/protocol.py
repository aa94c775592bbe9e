"""The framed protocol between the engine and a worker, over the worker's stdin and stdout pipes.

A message is a JSON header and zero or more binary blobs: ``>II`` (header length, blob count), the header,
then each blob as ``>Q`` length and bytes. What a worker sends back is decoded by ``decode`` alone, which
knows JSON, datetimes, npy arrays (never with pickles inside), xarray objects built from those and Arrow
IPC tables: nothing a worker sends can run code in the engine. The engine may pickle what it sends (a
worker trusts its engine), which keeps the call path short.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
from datetime import date, datetime, timedelta
from typing import IO, Any

__all__ = ["MAX_MESSAGE_BYTES", "PART_CALLS", "Message", "ProtocolError", "decode", "encode", "pickled", "read_message",
           "unpickled", "write_message"]

_HEAD = struct.Struct(">II")
_BLOB = struct.Struct(">Q")
TAG = "$twin"
PART_CALLS = 32  # function calls sent to a worker, and their effects sent back, in one part of a batch
MAX_MESSAGE_BYTES = 1 << 34  # 16 GiB: a length beyond this is a broken or hostile stream, not data


class ProtocolError(Exception):
    """Raised when a frame is malformed or a value cannot be sent (its type is not one the protocol knows)."""


Message = tuple[dict[str, Any], list[bytes]]


def write_message(stream: IO[bytes], header: dict[str, Any], blobs: list[bytes] | None = None) -> None:
    head = json.dumps(header, separators=(",", ":")).encode()
    parts = [_HEAD.pack(len(head), len(blobs or ())), head]
    for blob in blobs or ():
        parts += [_BLOB.pack(len(blob)), blob]
    if sum(map(len, parts)) < (1 << 20):
        stream.write(b"".join(parts))
    else:  # large blobs: no joined copy
        for part in parts:
            stream.write(part)
    stream.flush()


def _exact(stream: IO[bytes], size: int) -> bytes:
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"a frame of {size} bytes is larger than the protocol allows")
    data = stream.read(size)
    if data is None or len(data) != size:
        raise EOFError("the other side closed the pipe")
    return bytes(data)


def read_message(stream: IO[bytes]) -> Message:
    head_len, count = _HEAD.unpack(_exact(stream, _HEAD.size))
    if count > 1 << 20:
        raise ProtocolError(f"a message with {count} blobs is more than the protocol allows")
    try:
        header = json.loads(_exact(stream, head_len))
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"the header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("the header is not a JSON object")
    blobs = [_exact(stream, _BLOB.unpack(_exact(stream, _BLOB.size))[0]) for _ in range(count)]
    return header, blobs


def pickled(value: Any) -> bytes:
    """Engine to worker only: the worker trusts what its engine sends."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def unpickled(blob: bytes) -> Any:
    """Worker side only: the engine never calls this on what a worker sent."""
    return pickle.loads(blob)


# -- safe values: what a worker may send back ------------------------------------------------------------

def encode(value: Any, blobs: list[bytes]) -> Any:
    """A JSON tree for ``value``; arrays and tables go to ``blobs`` (npy without pickles, Arrow IPC)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else \
            {TAG: "float", "v": repr(value)}
    if isinstance(value, list | tuple):
        return [encode(v, blobs) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: encode(v, blobs) for k, v in value.items()}
        return {TAG: "dict", "items": [[encode(k, blobs), encode(v, blobs)] for k, v in value.items()]}
    if isinstance(value, date | timedelta):
        return _encode_time(value)
    return _encode_rich(value, blobs)


def _encode_time(value: date | timedelta) -> dict[str, Any]:
    """Datetimes, dates and durations, tagged (datetime before date: it is one)."""
    if isinstance(value, datetime):
        return {TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {TAG: "date", "v": value.isoformat()}
    return {TAG: "timedelta", "v": value.total_seconds()}


def _encode_rich(value: Any, blobs: list[bytes]) -> Any:
    module = type(value).__module__.split(".")[0]
    if module == "numpy":
        import numpy as np

        if isinstance(value, np.generic) and value.dtype.kind not in "OV":
            if value.dtype.kind in "Mm":
                return {TAG: "ndarray", "blob": _npy(np.asarray(value), blobs), "scalar": True}
            return encode(value.item(), blobs)
        if isinstance(value, np.ndarray):
            return {TAG: "ndarray", "blob": _npy(value, blobs)}
    if module == "xarray":
        import xarray as xr

        if isinstance(value, xr.DataArray):
            return {TAG: "DataArray", "name": encode(value.name, blobs), "dims": list(map(str, value.dims)),
                    "data": _npy(value.values, blobs), "attrs": encode(dict(value.attrs), blobs),
                    "coords": {str(k): _variable(c, blobs) for k, c in value.coords.items()}}
        if isinstance(value, xr.Dataset):
            return {TAG: "Dataset", "attrs": encode(dict(value.attrs), blobs),
                    "data_vars": {str(k): _variable(v, blobs) for k, v in value.data_vars.items()},
                    "coords": {str(k): _variable(c, blobs) for k, c in value.coords.items()}}
    if module == "pyarrow":
        import pyarrow as pa

        if isinstance(value, pa.Table):
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, value.schema) as writer:
                writer.write_table(value)
            blobs.append(sink.getvalue().to_pybytes())
            return {TAG: "arrow", "blob": len(blobs) - 1}
    if module == "pandas":
        import pandas as pd

        if isinstance(value, pd.Series):
            return encode(value.tolist(), blobs)
    raise ProtocolError(f"a {type(value).__module__}.{type(value).__qualname__} cannot be sent back to the engine "
                        "(send JSON values, numpy arrays, xarray objects or Arrow tables)")


def _npy(array: Any, blobs: list[bytes]) -> int:
    import numpy as np

    array = np.asarray(array)
    if array.dtype.kind == "O" and all(isinstance(v, str) for v in array.flat):
        array = array.astype(str)  # labels (band names) held as objects: plain unicode
    if array.dtype.kind in "OV":
        raise ProtocolError(f"an array of dtype {array.dtype} cannot be sent back to the engine (no objects)")
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    blobs.append(buffer.getvalue())
    return len(blobs) - 1


def _variable(variable: Any, blobs: list[bytes]) -> dict[str, Any]:
    return {"dims": list(map(str, variable.dims)), "data": _npy(variable.values, blobs),
            "attrs": encode(dict(variable.attrs), blobs)}


def decode(tree: Any, blobs: list[bytes]) -> Any:
    """The value ``encode`` described; refuses anything else (this is the engine's side of the boundary)."""
    if tree is None or isinstance(tree, bool | int | float | str):
        return tree
    if isinstance(tree, list):
        return [decode(v, blobs) for v in tree]
    if not isinstance(tree, dict):
        raise ProtocolError(f"unexpected {type(tree).__name__} in a worker's answer")
    tag = tree.get(TAG)
    if tag is None:
        return {k: decode(v, blobs) for k, v in tree.items()}
    if tag == "float":
        return float(str(tree["v"]))
    if tag == "dict":
        return {_hashable(decode(k, blobs)): decode(v, blobs) for k, v in tree["items"]}
    if tag == "datetime":
        return datetime.fromisoformat(str(tree["v"]))
    if tag == "date":
        return date.fromisoformat(str(tree["v"]))
    if tag == "timedelta":
        return timedelta(seconds=float(tree["v"]))
    if tag == "ndarray":
        array = _array(tree["blob"], blobs)
        return array[()] if tree.get("scalar") else array
    if tag == "DataArray":
        import xarray as xr

        return xr.DataArray(_array(tree["data"], blobs), dims=_names(tree["dims"]), name=decode(tree["name"], blobs),
                            attrs=decode(tree["attrs"], blobs), coords=_coords(tree["coords"], blobs))
    if tag == "Dataset":
        import xarray as xr

        return xr.Dataset({str(k): _var(v, blobs) for k, v in dict(tree["data_vars"]).items()},
                          coords=_coords(tree["coords"], blobs), attrs=decode(tree["attrs"], blobs))
    if tag == "arrow":
        import pyarrow as pa

        with pa.ipc.open_stream(_blob(tree["blob"], blobs)) as reader:
            return reader.read_all()
    raise ProtocolError(f"unknown value tag {tag!r} in a worker's answer")


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    if isinstance(key, dict):
        raise ProtocolError("a dict cannot be a key")
    return key


def _blob(index: Any, blobs: list[bytes]) -> bytes:
    if not isinstance(index, int) or not 0 <= index < len(blobs):
        raise ProtocolError(f"blob {index!r} is not in the message")
    return blobs[index]


def _array(index: Any, blobs: list[bytes]) -> Any:
    import numpy as np

    try:
        return np.load(io.BytesIO(_blob(index, blobs)), allow_pickle=False)
    except ValueError as exc:
        raise ProtocolError(f"an array in a worker's answer is not plain npy: {exc}") from None


def _names(dims: Any) -> tuple[str, ...]:
    if not isinstance(dims, list) or not all(isinstance(d, str) for d in dims):
        raise ProtocolError("dims must be a list of names")
    return tuple(dims)


def _var(tree: Any, blobs: list[bytes]) -> Any:
    import xarray as xr

    return xr.Variable(_names(tree["dims"]), _array(tree["data"], blobs), attrs=decode(tree["attrs"], blobs))


def _coords(tree: Any, blobs: list[bytes]) -> dict[str, Any]:
    if not isinstance(tree, dict):
        raise ProtocolError("coords must be an object")
    return {str(k): _var(v, blobs) for k, v in tree.items()}


# -- plain values, fast: JSON with tagged times (effects of function calls: ``twinengine.workers.effects``) --

def _plain(value: Any) -> Any:
    if isinstance(value, date | timedelta):
        return _encode_time(value)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist") and getattr(value, "dtype", None) is not None \
            and value.dtype.kind not in "OV":
        return value.tolist()
    raise ProtocolError(f"a {type(value).__module__}.{type(value).__qualname__} cannot be sent back to the engine "
                        "(send JSON values, datetimes or numbers)")


def _tagged(tree: dict[str, Any]) -> Any:
    tag = tree.get(TAG)
    if tag is None:
        return tree
    if tag == "datetime":
        return datetime.fromisoformat(str(tree["v"]))
    if tag == "date":
        return date.fromisoformat(str(tree["v"]))
    if tag == "timedelta":
        return timedelta(seconds=float(tree["v"]))
    if tag == "int":  # an integer beyond 64 bits (function effects)
        return int(str(tree["v"]))
    raise ProtocolError(f"unknown value tag {tag!r} in a worker's answer")
