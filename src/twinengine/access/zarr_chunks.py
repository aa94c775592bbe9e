"""Zarr arrays behind dataset variables, and reading their chunks straight from a local store.

zarr-python decodes through an asyncio pipeline whose fixed cost per call (about 1 ms) is as large as
decoding a small chunk. For the chain most scientific zarr stores use (native-endian bytes, then at most
one compressor: zstd, blosc, gzip), a chunk is its file's bytes run through that compressor, so
``direct_decoder`` does exactly that with the array's own numcodecs codec, on the calling thread.
numcodecs releases the GIL while decompressing, so a thread pool decodes chunks in parallel. Files are
read into a per-thread scratch buffer and uncompressed or zstd chunks decoded into spare buffers (see
``buffers``): fresh memory would cost as much in page faults as the decompression. Any other chain
(sharding, filters, transposes, checksums codecs, big-endian data) or store (S3, HTTP, zip) keeps going
through zarr.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from twinengine.access.buffers import ScratchBuffers, SpareBuffers

__all__ = ["direct_decoder", "encoded_size", "zarr_array"]

Block = tuple[int, ...]

# Chunk files are read here before decoding: one buffer per thread for every array, not one per array
# (a reader is kept per dataset variable, so per-array buffers would grow with the collections served).
_SCRATCH = ScratchBuffers()


def zarr_array(ds: xr.Dataset, name: str) -> Any | None:
    """The zarr array behind a variable, when the dataset was opened from a local or fsspec zarr store."""
    source = ds.encoding.get("source")
    encoding = ds[name].encoding
    if not source or "preferred_chunks" not in encoding or not ({"serializer", "compressors"} & set(encoding)):
        return None
    import zarr

    try:
        group = zarr.open_group(str(source), mode="r")
        array: Any = group[name]
    except Exception:  # not a zarr store after all (or unreadable): fall back to dask blocks
        return None
    return array if tuple(array.shape) == tuple(ds[name].shape) else None


def _chunk_root(array: Any) -> Path | None:
    """The folder of a local array's chunk files, or None for any other kind of store."""
    from zarr.storage import LocalStore

    if not isinstance(array.store, LocalStore):
        return None
    return Path(str(array.store.root)) / str(array.path)


def encoded_size(array: Any) -> Callable[[Block], int]:
    """Bytes a chunk occupies in the store (0 for an absent chunk, which is the fill value and costs no read)."""
    base = _chunk_root(array)
    if base is None:
        return lambda block: 0
    key = array.metadata.encode_chunk_key

    def size(block: Block) -> int:
        try:
            return int((base / key(block)).stat().st_size)
        except OSError:
            return 0

    return size


class _Unsupported:
    """A codec chain that does more than decompress."""


UNSUPPORTED = _Unsupported()


def _compressor(array: Any) -> Any:
    """The numcodecs codec that is the whole of the array's chain after plain bytes; None when there is no
    compressor; ``UNSUPPORTED`` when the chain does anything else (the array is then read through zarr)."""
    import numcodecs
    from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

    metadata = array.metadata
    if metadata.zarr_format == 2:
        if metadata.filters or metadata.order != "C":
            return UNSUPPORTED
        return metadata.compressor
    codecs = list(metadata.codecs)
    if not codecs or not isinstance(codecs[0], BytesCodec):
        return UNSUPPORTED
    rest = codecs[1:]
    if not rest:
        return None
    if len(rest) > 1:
        return UNSUPPORTED
    codec = rest[0]
    if isinstance(codec, ZstdCodec):
        return numcodecs.Zstd(level=codec.level, checksum=codec.checksum)
    if isinstance(codec, BloscCodec):
        return numcodecs.Blosc()  # the blosc header says how the chunk was compressed
    if isinstance(codec, GzipCodec):
        return numcodecs.GZip(level=codec.level)
    return UNSUPPORTED


def _zstd_content_size(frame: memoryview) -> int | None:
    """The decompressed size a zstd frame header declares (RFC 8878, 3.1.1.1), or None when it declares
    none (or this is no zstd frame): numcodecs checks a buffer is large enough, not that it is filled."""
    if len(frame) < 6 or bytes(frame[:4]) != b"\x28\xb5\x2f\xfd":
        return None
    descriptor = frame[4]
    single_segment = (descriptor >> 5) & 1
    start = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 3]
    width = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
    if width == 0 or len(frame) < start + width:
        return None
    return int.from_bytes(frame[start:start + width], "little") + (256 if width == 2 else 0)


def _read_into(fd: int, view: memoryview) -> int:
    """Fill ``view`` from ``fd``; the number of bytes read (fewer only at the end of the file)."""
    done = 0
    while done < len(view):
        count = os.readv(fd, [view[done:]])
        if count == 0:
            break
        done += count
    return done


def direct_decoder(array: Any, spare: SpareBuffers | None = None) -> Callable[[Block], np.ndarray] | None:
    """``decode(block)``: the chunk at ``block``, decoded from its file and cut to the array's bounds (edge
    chunks are stored whole), or None when this array must be read through zarr. Uncompressed and zstd
    chunks are decoded into ``spare`` buffers when given (see ``buffers``)."""
    import numcodecs

    base = _chunk_root(array)
    dtype = np.dtype(array.dtype)
    if base is None or not dtype.isnative or dtype.hasobject:
        return None
    compressor = _compressor(array)
    if compressor is UNSUPPORTED:
        return None
    shape = tuple(int(s) for s in array.shape)
    chunks = tuple(int(c) for c in array.chunks)
    key = array.metadata.encode_chunk_key
    fill = array.metadata.fill_value
    nbytes = int(np.prod(chunks)) * dtype.itemsize
    # gzip decodes into a buffer of its own; blosc's size check is private to numcodecs
    into = spare if compressor is None or isinstance(compressor, numcodecs.Zstd) else None

    def new(size: int) -> np.ndarray:
        return into.take(size) if into is not None else np.empty(size, dtype=np.uint8)

    def wrong_size(name: str, decoded: int) -> ValueError:
        return ValueError(f"chunk {name} of {array.path!r} decodes to {decoded} bytes, not {nbytes}")

    def decoded(fd: int, name: str) -> np.ndarray:
        size = os.fstat(fd).st_size
        if compressor is None:
            out = new(nbytes)
            if size != nbytes or _read_into(fd, out.data) != nbytes:
                raise ValueError(f"chunk {name} of {array.path!r} holds {size} bytes, not {nbytes}")
            return out
        raw = _SCRATCH.get(size)
        if _read_into(fd, raw) != size:
            raise ValueError(f"chunk {name} of {array.path!r} changed while it was read")
        declared = _zstd_content_size(raw) if into is not None else None
        if declared is None:
            data = np.frombuffer(compressor.decode(raw), dtype=np.uint8)
            if data.nbytes != nbytes:
                raise wrong_size(name, data.nbytes)
            return data
        if declared != nbytes:
            raise wrong_size(name, declared)
        return np.asarray(compressor.decode(raw, out=new(nbytes)))

    def decode(block: Block) -> np.ndarray:
        valid = tuple(slice(0, min(c, s - b * c)) for b, c, s in zip(block, chunks, shape, strict=True))
        name = key(block)
        try:
            fd = os.open(base / name, os.O_RDONLY)
        except FileNotFoundError:
            return np.full(tuple(v.stop for v in valid), fill, dtype=dtype)
        try:
            out: np.ndarray = decoded(fd, name).view(dtype).reshape(chunks)
        finally:
            os.close(fd)
        return out if all(v.stop == c for v, c in zip(valid, chunks, strict=True)) else out[valid]

    return decode
