"""Reading exactly the chunks a selection touches, through a bounded cache of decoded chunks.

A ``BlockReader`` serves one variable: it knows the chunk grid, decodes the missing chunks of a selection
chunk by chunk (local zarr stores with a plain codec chain, see ``zarr_chunks``, and dask-backed
variables) or as few rectangular boxes of whole chunks (other zarr stores, where zarr decodes a box's
chunks concurrently), keeps decoded chunks in a shared ``ChunkCache`` (least recently used out first,
bounded in bytes) and copies the requested orthogonal selection out of each box straight into the answer.
Each box is a job (see ``reads``) that the waiting thread and a few pool threads take in order, so memory
holds the answer plus the boxes being decoded at that moment.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from twinengine.access.buffers import SpareBuffers, owner_of
from twinengine.access.reads import Reads, usable_cores
from twinengine.access.zarr_chunks import direct_decoder, encoded_size, zarr_array

__all__ = ["BlockReader", "ChunkCache", "ReadStats", "Selection", "reader_for"]

# One orthogonal index per dimension: a slice (step 1) or an array of distinct integer indices.
Index = slice | np.ndarray
Selection = tuple[Index, ...]
Block = tuple[int, ...]
Box = tuple[Block, Block]  # first block, one past the last block, per dimension

BOX_BYTES = 4 * 1024 * 1024  # decoded size of one box: big ones are slow to allocate, small ones run in parallel
SMALL_READ_BYTES = 16 * 1024 * 1024  # a box this small is decoded in one call, not cut up


@dataclass
class ReadStats:
    """What reads cost: chunks served from the cache, chunks decoded, their encoded bytes. Counted by the
    threads that run an answer's read jobs, hence the lock."""

    hits: int = 0
    misses: int = 0
    bytes_read: int = 0
    bytes_decoded: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, *, hits: int = 0, misses: int = 0, bytes_read: int = 0, bytes_decoded: int = 0) -> None:
        with self._lock:
            self.hits += hits
            self.misses += misses
            self.bytes_read += bytes_read
            self.bytes_decoded += bytes_decoded


class ChunkCache:
    """Decoded chunks, least recently used evicted first, never more than ``capacity`` bytes in total.

    Chunks decoded together as one box are views of one buffer: that buffer counts in full for as long
    as any of its chunks is cached, so ``size`` is the memory the cache really keeps alive. Buffers the
    cache lets go of are offered to ``spare`` (a quarter of the capacity), which decoders take from.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self.spare = SpareBuffers(capacity // 4)
        self._items: OrderedDict[tuple[Any, ...], tuple[np.ndarray, int]] = OrderedDict()
        # buffer id -> [bytes, chunks still cached, the array owning the memory or None]
        self._buffers: dict[int, list[Any]] = {}
        self._next = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> np.ndarray | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: tuple[Any, ...], value: np.ndarray) -> None:
        self.put_many([(key, value)], value.nbytes)

    def put_many(self, items: Sequence[tuple[tuple[Any, ...], np.ndarray]], nbytes: int,
                 owner: np.ndarray | None = None) -> None:
        """Cache chunks that share one buffer of ``nbytes`` (not kept if that alone exceeds the capacity);
        ``owner``, the array owning that memory, goes to ``spare`` once none of them is cached."""
        if not items or nbytes > self.capacity:
            return
        with self._lock:
            buffer = self._next
            self._next += 1
            self._buffers[buffer] = [nbytes, 0, owner]
            self.size += nbytes
            for key, value in items:
                if key in self._items:
                    self._release(self._items.pop(key)[1])
                self._items[key] = (value, buffer)
                self._buffers[buffer][1] += 1
            while self.size > self.capacity:
                self._release(self._items.popitem(last=False)[1][1])

    def _release(self, buffer: int) -> None:
        record = self._buffers[buffer]
        record[1] -= 1
        if record[1] == 0:
            self.size -= record[0]
            del self._buffers[buffer]
            if record[2] is not None:
                self.spare.give(record)  # takes the owner, the record's last item, out of the record

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            records = list(self._buffers.values())
            self._buffers.clear()
            self.size = 0
        for record in records:
            if record[2] is not None:
                self.spare.give(record)  # takes the owner out of the record

    def __len__(self) -> int:
        return len(self._items)


def _index_array(index: Index, length: int) -> np.ndarray:
    if isinstance(index, slice):
        start, stop, _ = index.indices(length)
        return np.arange(start, stop)
    return np.asarray(index, dtype=np.int64)


@dataclass
class BlockReader:
    """Reads orthogonal selections of one variable chunk by chunk. ``fetch(block)`` decodes one chunk;
    ``fetch_run(box)``, when the store offers it, decodes a box of whole chunks in one call. ``helpers``:
    how many pool threads one read asks to join the thread that waits for it."""

    key: tuple[Any, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype[Any]
    fetch: Callable[[Block], np.ndarray]
    encoded_size: Callable[[Block], int]
    cache: ChunkCache
    pool: ThreadPoolExecutor
    stats: ReadStats = field(default_factory=ReadStats)
    fetch_run: Callable[[tuple[slice, ...]], np.ndarray] | None = None
    helpers: int = 1
    box_bytes: int = BOX_BYTES
    small_read_bytes: int = SMALL_READ_BYTES

    def blocks_touched(self, selection: Selection) -> list[Block]:
        """The chunk indices a selection needs, and nothing else."""
        per_dim = [np.unique(_index_array(ix, n) // c) for ix, n, c in zip(selection, self.shape, self.chunks,
                                                                              strict=True)]
        return [tuple(int(b) for b in combo) for combo in itertools.product(*per_dim)]

    def decoded_bytes(self, selection: Selection) -> int:
        """Decoded bytes of the chunks a selection touches (the work a cold read does)."""
        return len(self.blocks_touched(selection)) * self._block_bytes

    @property
    def _block_bytes(self) -> int:
        return int(np.prod(self.chunks)) * self.dtype.itemsize

    def _boxes(self, missing: list[Block]) -> list[Box]:
        """Group missing chunks into rectangular boxes of at most ``box_bytes`` decoded (or one chunk): the
        whole set when it is a box, else runs along the first dimension per position in the others, then
        cut into pieces that several threads decode at once."""
        if self.fetch_run is None or len(missing) <= 1:
            return [(b, tuple(v + 1 for v in b)) for b in missing]
        ids = np.array(missing)
        lo, hi = ids.min(axis=0), ids.max(axis=0) + 1
        if len(missing) == int(np.prod(hi - lo)):
            groups: list[Box] = [(tuple(int(v) for v in lo), tuple(int(v) for v in hi))]
        else:
            runs: dict[Block, list[int]] = {}
            for block in missing:
                runs.setdefault(block[1:], []).append(block[0])
            groups = []
            for rest, firsts in runs.items():
                firsts.sort()
                start = prev = firsts[0]
                for first in [*firsts[1:], None]:
                    if first is not None and first == prev + 1:
                        prev = first
                        continue
                    groups.append(((start, *rest), (prev + 1, *(r + 1 for r in rest))))
                    if first is not None:
                        start = prev = first
        if len(groups) == 1 and len(missing) * self._block_bytes <= self.small_read_bytes:
            return groups  # a small read: one call on the calling thread beats handing pieces to the pool
        return [part for group in groups for part in self._split(group)]

    def _split(self, box: Box) -> list[Box]:
        lo, hi = box
        extent = [h - lo_ for lo_, h in zip(lo, hi, strict=True)]
        if int(np.prod(extent)) * self._block_bytes <= self.box_bytes or all(e == 1 for e in extent):
            return [box]
        d = next(k for k, e in enumerate(extent) if e > 1)
        layer = int(np.prod(extent)) // extent[d] * self._block_bytes
        step = max(1, self.box_bytes // layer)
        out = []
        for start in range(lo[d], hi[d], step):
            part_lo = (*lo[:d], start, *lo[d + 1:])
            part_hi = (*hi[:d], min(start + step, hi[d]), *hi[d + 1:])
            out.extend(self._split((part_lo, part_hi)) if step == 1 else [(part_lo, part_hi)])
        return out

    def _decode(self, box: Box) -> np.ndarray:
        lo, hi = box
        if all(h - lo_ == 1 for lo_, h in zip(lo, hi, strict=True)) or self.fetch_run is None:
            return self.fetch(lo)
        return self.fetch_run(tuple(slice(a, b) for a, b in zip(lo, hi, strict=True)))

    def _box_data(self, box: Box, stats: ReadStats) -> np.ndarray:
        """A box's decoded values: a lone chunk from the cache when it is there, else decoded and cached
        (the chunks of a box decoded together as views of its buffer)."""
        lo, hi = box
        single = all(h - a == 1 for a, h in zip(lo, hi, strict=True))
        if single:
            cached = self.cache.get((*self.key, lo))
            if cached is not None:
                stats.count(hits=1)
                return cached
        data = self._decode(box)
        items, encoded = [], 0
        for block in itertools.product(*(range(a, b) for a, b in zip(lo, hi, strict=True))):
            where = tuple(slice((b - a) * c, (b - a + 1) * c) for b, a, c in zip(block, lo, self.chunks, strict=True))
            items.append(((*self.key, block), data[where]))
            encoded += self.encoded_size(block)
        self.cache.put_many(items, data.nbytes, owner_of(data))
        stats.count(misses=len(items), bytes_read=encoded, bytes_decoded=data.nbytes)
        return data

    def _plan(self, blocks: list[Block]) -> list[Box]:
        """Boxes to read: first the chunks the cache holds now, one by one (copied before this read's own
        decoding can evict them; a job looks in the cache again when it runs), then the missing ones in the
        order of ``blocks``, grouped into boxes where the store reads boxes."""
        held = {b for b in blocks if self.cache.get((*self.key, b)) is not None}
        cached = [(b, tuple(v + 1 for v in b)) for b in blocks if b in held]
        return cached + self._boxes([b for b in blocks if b not in held])

    def _run_jobs(self, jobs: list[Callable[[], None]], reads: Reads | None) -> None:
        """Queue ``jobs`` on ``reads`` (the caller runs them), or run them now with this thread helping."""
        if reads is not None:
            reads.add(jobs, pool=self.pool, helpers=self.helpers)
            return
        here = Reads()
        here.add(jobs, pool=self.pool, helpers=self.helpers)
        here.finish()

    def allocate(self, selection: Selection, *, layout: Sequence[int] | None = None,
                 fill: float | None = None) -> np.ndarray:
        """A new answer array for ``selection`` (filled with ``fill`` when given), its dimensions laid out in
        memory in ``layout`` order, outermost first."""
        shape = tuple(len(_index_array(ix, n)) for ix, n in zip(selection, self.shape, strict=True))
        order = list(layout) if layout is not None else list(range(len(shape)))
        stored = tuple(shape[d] for d in order)
        buffer = np.empty(stored, dtype=self.out_dtype) if fill is None else np.full(stored, fill, self.out_dtype)
        return buffer.transpose(np.argsort(order))

    def read(self, selection: Selection, *, keep: Callable[[Block], bool] | None = None,
             fill: float = np.nan, layout: Sequence[int] | None = None, out: np.ndarray | None = None,
             progress: Callable[[int], None] | None = None, stats: ReadStats | None = None,
             reads: Reads | None = None) -> np.ndarray:
        """The values at the outer product of ``selection``'s indices, as a new array (or written into
        ``out``, from ``allocate``). Chunks for which ``keep(block)`` is false are not read (their positions
        stay ``fill``): masks use it. ``progress(n)`` is told each time the first ``n`` entries along the
        first dimension are final, so that an encoder can write them out while the rest is read. What the
        reads cost is added to ``stats`` (else to the reader's own). With ``reads``, the reads are only
        queued there and ``out`` fills as its jobs run; without, they are done when this returns."""
        indices = [_index_array(ix, n) for ix, n in zip(selection, self.shape, strict=True)]
        if out is None:
            out = self.allocate(selection, layout=layout, fill=None if keep is None else fill)
        if out.size == 0:
            if progress is not None:
                progress(out.shape[0])
            return out
        blocks = [b for b in self.blocks_touched(selection) if keep is None or keep(b)]
        rows = _RowsDone(indices[0], self.chunks, blocks, progress)
        target = self.stats if stats is None else stats
        lock = threading.Lock()
        answer: np.ndarray = out

        def copy_out(box: Box) -> None:
            data = self._box_data(box, target)
            first = box[0]
            positions, local = [], []
            for d, index in enumerate(indices):
                start = first[d] * self.chunks[d]
                inside = np.flatnonzero((index >= start) & (index < start + data.shape[d]))
                positions.append(_compact(inside))
                local.append(_compact(index[inside] - start))
            answer[_grid(positions)] = data[_grid(local)]
            with lock:
                rows.done(first, data.shape)

        if not blocks:
            rows.finish()
            return out
        self._run_jobs([functools.partial(copy_out, box) for box in self._plan(blocks)], reads)
        return out

    def read_points(self, index: Sequence[np.ndarray], *, stats: ReadStats | None = None) -> np.ndarray:
        """Pointwise (vectorised) selection: ``index`` holds one integer array per dimension, broadcast
        together; the answer has their broadcast shape. Reads only the chunks holding those points."""
        arrays = np.broadcast_arrays(*[np.asarray(i, dtype=np.int64) for i in index])
        out = np.full(arrays[0].shape, np.nan, dtype=self.out_dtype)
        if out.size == 0:
            return out
        flat = [a.ravel() for a in arrays]
        block_ids = np.stack([f // c for f, c in zip(flat, self.chunks, strict=True)], axis=1)
        unique = np.unique(block_ids, axis=0)
        target = self.stats if stats is None else stats
        result = out.reshape(-1)

        def copy_out(box: Box) -> None:
            data = self._box_data(box, target)
            extent = [-(-s // c) for s, c in zip(data.shape, self.chunks, strict=True)]
            lo = np.array(box[0])
            members = np.flatnonzero(np.all((block_ids >= lo) & (block_ids < lo + extent), axis=1))
            local = tuple(f[members] - b * c for f, b, c in zip(flat, box[0], self.chunks, strict=True))
            result[members] = data[local]

        boxes = self._plan([tuple(int(v) for v in row) for row in unique])
        self._run_jobs([functools.partial(copy_out, box) for box in boxes], None)
        return out

    @property
    def out_dtype(self) -> np.dtype[Any]:
        """Integers come back as floats so that missing values can be NaN."""
        return np.dtype(np.float64) if self.dtype.kind in "iub" else self.dtype


class _RowsDone:
    """Tracks which chunks along the first dimension are all read, and tells ``progress`` how many leading
    entries of the answer are final (only when the first dimension's indices ascend, as time indices do;
    otherwise once, when the last chunk is in). Boxes may be done in any order (several threads read)."""

    def __init__(self, index: np.ndarray, chunks: tuple[int, ...], blocks: list[Block],
                 progress: Callable[[int], None] | None) -> None:
        self.progress = progress
        self.ascending = index.size < 2 or bool(np.all(np.diff(index) >= 0))  # else: only the end is told
        self.index = index
        self.chunks = chunks
        self.left: dict[int, int] = {}  # chunks still to read per chunk index along the first dimension
        for block in blocks:
            self.left[block[0]] = self.left.get(block[0], 0) + 1
        self.pending = sorted(self.left)
        self.reported = 0

    def done(self, first: Block, shape: tuple[int, ...]) -> None:
        """A box of chunks starting at ``first``, decoded to ``shape``, has been copied out."""
        if self.progress is None:
            return
        spans = [-(-n // c) for n, c in zip(shape, self.chunks, strict=True)]
        per_row = int(np.prod(spans[1:]))
        for b0 in range(first[0], first[0] + spans[0]):
            self.left[b0] -= per_row
        while self.pending and self.left[self.pending[0]] <= 0:
            self.pending.pop(0)
        if not self.pending:
            self.finish()
            return
        if not self.ascending:
            return
        limit = self.pending[0] * self.chunks[0] if self.pending else None
        rows = int(self.index.size if limit is None else np.searchsorted(self.index, limit, side="left"))
        if rows > self.reported:
            self.reported = rows
            self.progress(rows)

    def finish(self) -> None:
        if self.progress is not None and self.reported < self.index.size:
            self.reported = int(self.index.size)
            self.progress(self.reported)


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


def reader_for(ds: xr.Dataset, name: str, *, key: tuple[Any, ...], cache: ChunkCache,
               pool: ThreadPoolExecutor, workers: int = 4) -> BlockReader:
    """A reader for ``ds[name]``: zarr chunk reads when the store is zarr, else the dask blocks. Chunks decoded
    straight from local files are CPU work that releases the GIL, so a read takes one helper fewer than there
    are cores (at most ``workers``, the pool's size); reads through zarr or dask may wait on storage, so they
    take up to ``workers``."""
    var = ds[name]
    array = zarr_array(ds, name)
    if array is not None:
        chunk_shape = tuple(int(c) for c in array.chunks)
        direct = direct_decoder(array, cache.spare)
        if direct is not None:  # chunk by chunk, on as many threads as there are cores: no box reads needed
            return BlockReader(key=key, shape=tuple(var.shape), chunks=chunk_shape, dtype=np.dtype(array.dtype),
                               fetch=direct, encoded_size=encoded_size(array), cache=cache, pool=pool,
                               helpers=max(0, min(workers, usable_cores() - 1)))

        def fetch_zarr(block: tuple[int, ...]) -> np.ndarray:
            return np.asarray(array.blocks[block])

        def fetch_box(box: tuple[slice, ...]) -> np.ndarray:
            return np.asarray(array.get_block_selection(box))

        return BlockReader(key=key, shape=tuple(var.shape), chunks=chunk_shape, dtype=np.dtype(array.dtype),
                           fetch=fetch_zarr, encoded_size=encoded_size(array), cache=cache, pool=pool,
                           fetch_run=fetch_box, helpers=workers)
    data = var.data
    if hasattr(data, "blocks") and data.chunks is not None:
        dask_chunks: Sequence[tuple[int, ...]] = data.chunks
        regular = all(len(set(c[:-1])) <= 1 and c[-1] <= c[0] for c in dask_chunks)
        if regular:
            chunk_shape = tuple(int(c[0]) for c in dask_chunks)

            def fetch_dask(block: tuple[int, ...]) -> np.ndarray:
                return np.asarray(data.blocks[block].compute(scheduler="synchronous"))

            return BlockReader(key=key, shape=tuple(var.shape), chunks=chunk_shape, dtype=np.dtype(var.dtype),
                               fetch=fetch_dask, encoded_size=lambda b: 0, cache=cache, pool=pool, helpers=workers)
    values = np.asarray(var.values)  # small in-memory variable: one chunk

    return BlockReader(key=key, shape=tuple(var.shape), chunks=tuple(max(s, 1) for s in var.shape),
                       dtype=values.dtype, fetch=lambda block: values, encoded_size=lambda b: 0, cache=cache,
                       pool=pool, helpers=0)
