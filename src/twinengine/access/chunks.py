"""Reading exactly the chunks a selection touches, through a bounded cache of decoded chunks.

A ``BlockReader`` serves one variable: it knows the chunk grid, fetches missing chunks concurrently
(zarr directly when the dataset is a zarr store, else the variable's dask blocks), keeps decoded chunks
in a shared ``ChunkCache`` (least recently used out first, bounded in bytes) and assembles the requested
orthogonal selection chunk by chunk, so memory holds the answer plus the chunks of one batch.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["BlockReader", "ChunkCache", "ReadStats", "Selection", "reader_for"]

# One orthogonal index per dimension: a slice (step 1) or a sorted array of distinct integer indices.
Index = slice | np.ndarray
Selection = tuple[Index, ...]


@dataclass
class ReadStats:
    """What reads cost: chunks served from the cache, chunks decoded, their encoded bytes."""

    hits: int = 0
    misses: int = 0
    bytes_read: int = 0
    bytes_decoded: int = 0

    def add(self, other: ReadStats) -> None:
        self.hits += other.hits
        self.misses += other.misses
        self.bytes_read += other.bytes_read
        self.bytes_decoded += other.bytes_decoded


class ChunkCache:
    """Decoded chunks, least recently used evicted first, never more than ``capacity`` bytes in total."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._items: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> np.ndarray | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[Any, ...], value: np.ndarray) -> None:
        if value.nbytes > self.capacity:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.size -= old.nbytes
            self._items[key] = value
            self.size += value.nbytes
            while self.size > self.capacity:
                _, evicted = self._items.popitem(last=False)
                self.size -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.size = 0

    def __len__(self) -> int:
        return len(self._items)


def _index_array(index: Index, length: int) -> np.ndarray:
    if isinstance(index, slice):
        start, stop, _ = index.indices(length)
        return np.arange(start, stop)
    return np.asarray(index, dtype=np.int64)


@dataclass
class BlockReader:
    """Reads orthogonal selections of one variable chunk by chunk. ``fetch(block)`` decodes one chunk."""

    key: tuple[Any, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype[Any]
    fetch: Callable[[tuple[int, ...]], np.ndarray]
    encoded_size: Callable[[tuple[int, ...]], int]
    cache: ChunkCache
    pool: ThreadPoolExecutor
    stats: ReadStats = field(default_factory=ReadStats)
    fetch_run: Callable[[tuple[slice, ...]], np.ndarray] | None = None  # decode a box of whole chunks at once

    def blocks_touched(self, selection: Selection) -> list[tuple[int, ...]]:
        """The chunk indices a selection needs, and nothing else."""
        per_dim = [np.unique(_index_array(ix, n) // c) for ix, n, c in zip(selection, self.shape, self.chunks,
                                                                              strict=True)]
        return [tuple(int(b) for b in combo) for combo in itertools.product(*per_dim)]

    def decoded_bytes(self, selection: Selection) -> int:
        """Decoded bytes of the chunks a selection touches (the work a cold read does)."""
        return len(self.blocks_touched(selection)) * int(np.prod(self.chunks)) * self.dtype.itemsize

    def _keep(self, block: tuple[int, ...], data: np.ndarray, stats: ReadStats) -> np.ndarray:
        """Account for a decoded chunk and cache it (on the calling thread: stats are not shared)."""
        stats.misses += 1
        stats.bytes_read += self.encoded_size(block)
        stats.bytes_decoded += data.nbytes
        self.cache.put((*self.key, block), data)
        return data

    def _each_block(self, blocks: list[tuple[int, ...]], stats: ReadStats
                    ) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
        """Yield (block, decoded chunk): cached ones first, then the missing ones fetched a batch at a time,
        so memory holds one batch of chunks, not every chunk the selection touches."""
        missing: list[tuple[int, ...]] = []
        for block in blocks:
            cached = self.cache.get((*self.key, block))
            if cached is None:
                missing.append(block)
            else:
                stats.hits += 1
                yield block, cached
        batch = max(2, 2 * (self.pool._max_workers or 1))
        for start in range(0, len(missing), batch):
            part = missing[start:start + batch]
            decoded = self._fetch_batch(part)
            for block, data in zip(part, decoded, strict=True):
                yield block, self._keep(block, data, stats)

    def _fetch_batch(self, part: list[tuple[int, ...]]) -> list[np.ndarray]:
        """Decode a batch of chunks: one call for a full box of chunks when the store can (zarr decodes
        them concurrently), else one call per chunk on the thread pool."""
        if len(part) == 1:
            return [self.fetch(part[0])]
        lo = [min(b[d] for b in part) for d in range(len(self.chunks))]
        hi = [max(b[d] for b in part) for d in range(len(self.chunks))]
        if self.fetch_run is None or len(part) != int(np.prod([h - lo_ + 1 for lo_, h in zip(lo, hi, strict=True)])):
            return list(self.pool.map(self.fetch, part))
        box = self.fetch_run(tuple(slice(a, b + 1) for a, b in zip(lo, hi, strict=True)))
        out = []
        for block in part:
            where = tuple(slice((b - a) * c, (b - a + 1) * c) for b, a, c in zip(block, lo, self.chunks, strict=True))
            out.append(np.ascontiguousarray(box[where]))  # own copy: the cache accounts chunk by chunk
        return out

    def read(self, selection: Selection, *, keep: Callable[[tuple[int, ...]], bool] | None = None,
             fill: float = np.nan) -> np.ndarray:
        """The values at the outer product of ``selection``'s indices, as a new array. Chunks for which
        ``keep(block)`` is false are not read (their positions stay ``fill``): masks use it."""
        indices = [_index_array(ix, n) for ix, n in zip(selection, self.shape, strict=True)]
        out = np.full(tuple(len(i) for i in indices), fill, dtype=self.out_dtype)
        if out.size == 0:
            return out
        block_of = [i // c for i, c in zip(indices, self.chunks, strict=True)]
        blocks = [b for b in self.blocks_touched(selection) if keep is None or keep(b)]
        stats = ReadStats()
        for block, data in self._each_block(blocks, stats):
            positions = [_compact(np.flatnonzero(b == n)) for b, n in zip(block_of, block, strict=True)]
            local = [_compact(_take(indices[d], positions[d]) - block[d] * self.chunks[d]) for d in range(len(block))]
            out[_grid(positions)] = data[_grid(local)]
        self.stats.add(stats)
        return out

    def read_points(self, index: Sequence[np.ndarray]) -> np.ndarray:
        """Pointwise (vectorised) selection: ``index`` holds one integer array per dimension, broadcast
        together; the answer has their broadcast shape. Reads only the chunks holding those points."""
        arrays = np.broadcast_arrays(*[np.asarray(i, dtype=np.int64) for i in index])
        out = np.full(arrays[0].shape, np.nan, dtype=self.out_dtype)
        if out.size == 0:
            return out
        flat = [a.ravel() for a in arrays]
        block_ids = np.stack([f // c for f, c in zip(flat, self.chunks, strict=True)], axis=1)
        unique, inverse = np.unique(block_ids, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(unique) + 1))
        where = {tuple(int(v) for v in row): order[bounds[k]:bounds[k + 1]] for k, row in enumerate(unique)}
        stats = ReadStats()
        result = out.reshape(-1)
        for block, data in self._each_block(list(where), stats):
            members = where[block]
            local = tuple(f[members] - b * c for f, b, c in zip(flat, block, self.chunks, strict=True))
            result[members] = data[local]
        self.stats.add(stats)
        return out

    @property
    def out_dtype(self) -> np.dtype[Any]:
        """Integers come back as floats so that missing values can be NaN."""
        return np.dtype(np.float64) if self.dtype.kind in "iub" else self.dtype


def _take(values: np.ndarray, where: np.ndarray | slice) -> np.ndarray:
    return values[where]


def _compact(index: np.ndarray) -> np.ndarray | slice:
    """A run of consecutive integers as a slice (basic indexing is much cheaper than fancy indexing)."""
    if index.size and int(index[-1]) - int(index[0]) == index.size - 1:
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


def _grid(parts: Sequence[np.ndarray | slice]) -> tuple[Any, ...]:
    """Index an outer product: slices stay slices; arrays are turned into an open mesh."""
    arrays = [i for i, p in enumerate(parts) if not isinstance(p, slice)]
    if not arrays:
        return tuple(parts)
    if len(arrays) == 1:
        return tuple(parts)
    out: list[Any] = []
    for i, p in enumerate(parts):
        if isinstance(p, slice):
            out.append(p)
        else:
            shape = [1] * len(arrays)
            shape[arrays.index(i)] = -1
            out.append(np.asarray(p).reshape(shape))
    # Mixing slices and broadcast arrays moves the array dims first when they are not adjacent;
    # fall back to a full open mesh in that case so the layout stays the selection's.
    if arrays != list(range(arrays[0], arrays[0] + len(arrays))):
        return np.ix_(*[np.arange(p.start, p.stop) if isinstance(p, slice) else np.asarray(p) for p in parts])
    return tuple(out)


def _zarr_array(ds: xr.Dataset, name: str) -> Any | None:
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


def _zarr_encoded_size(array: Any) -> Callable[[tuple[int, ...]], int]:
    store_path = getattr(array.store, "root", None)
    if store_path is None:
        return lambda block: 0
    from pathlib import Path

    separator = array.metadata.chunk_key_encoding
    base = Path(str(store_path)) / array.path

    def size(block: tuple[int, ...]) -> int:
        try:
            return int((base / separator.encode_chunk_key(block)).stat().st_size)
        except OSError:
            return 0  # an absent chunk (fill value) costs no read

    return size


def reader_for(ds: xr.Dataset, name: str, *, key: tuple[Any, ...], cache: ChunkCache,
               pool: ThreadPoolExecutor) -> BlockReader:
    """A reader for ``ds[name]``: zarr chunk reads when the store is zarr, else the dask blocks."""
    var = ds[name]
    array = _zarr_array(ds, name)
    if array is not None:
        chunk_shape = tuple(int(c) for c in array.chunks)

        def fetch_zarr(block: tuple[int, ...]) -> np.ndarray:
            return np.asarray(array.blocks[block])

        def fetch_box(box: tuple[slice, ...]) -> np.ndarray:
            return np.asarray(array.get_block_selection(box))

        return BlockReader(key=key, shape=tuple(var.shape), chunks=chunk_shape, dtype=np.dtype(array.dtype),
                           fetch=fetch_zarr, encoded_size=_zarr_encoded_size(array), cache=cache, pool=pool,
                           fetch_run=fetch_box)
    data = var.data
    if hasattr(data, "blocks") and data.chunks is not None:
        dask_chunks: Sequence[tuple[int, ...]] = data.chunks
        regular = all(len(set(c[:-1])) <= 1 and c[-1] <= c[0] for c in dask_chunks)
        if regular:
            chunk_shape = tuple(int(c[0]) for c in dask_chunks)

            def fetch_dask(block: tuple[int, ...]) -> np.ndarray:
                return np.asarray(data.blocks[block].compute(scheduler="synchronous"))

            return BlockReader(key=key, shape=tuple(var.shape), chunks=chunk_shape, dtype=np.dtype(var.dtype),
                               fetch=fetch_dask, encoded_size=lambda b: 0, cache=cache, pool=pool)
    values = np.asarray(var.values)  # small in-memory variable: one chunk

    return BlockReader(key=key, shape=tuple(var.shape), chunks=tuple(max(s, 1) for s in var.shape),
                       dtype=values.dtype, fetch=lambda block: values, encoded_size=lambda b: 0, cache=cache,
                       pool=pool)
