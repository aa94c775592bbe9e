"""Decoded-chunk memory is used again only when nothing can still see it, and within its bound."""

from __future__ import annotations

import threading

import numpy as np

from twinengine.access.buffers import ScratchBuffers, SpareBuffers, owner_of
from twinengine.access.chunks import ChunkCache


def _chunk(buffers: SpareBuffers, value: float) -> np.ndarray:
    chunk = buffers.take(4 * 100).view(np.float32).reshape(10, 10)
    chunk[...] = value
    return chunk


def test_a_buffer_is_kept_only_when_no_view_of_it_is_left() -> None:
    buffers = SpareBuffers(10_000)
    chunk = _chunk(buffers, 1.0)
    corner = chunk[:2, :2]
    holder = [owner_of(chunk)]
    del chunk
    assert not buffers.give(holder)  # type: ignore[arg-type]
    assert buffers.size == 0 and corner.sum() == 4.0  # still readable, never handed out again
    chunk = _chunk(buffers, 2.0)
    owner = owner_of(chunk)
    assert owner is not None
    holder = [owner]
    del chunk, owner
    assert buffers.give(holder)  # type: ignore[arg-type]
    assert buffers.size == 400 and not holder
    again = buffers.take(400)
    assert again.view(np.float32)[0] == 2.0  # the same memory, as it was left
    assert buffers.size == 0


def test_sizes_nobody_asked_for_and_buffers_over_the_capacity_are_let_go() -> None:
    buffers = SpareBuffers(1_000)
    assert not buffers.give([np.empty(400, dtype=np.uint8)])  # no decoder wants 400 bytes yet
    first, second, third = ([buffers.take(400)] for _ in range(3))
    assert buffers.give(first) and buffers.give(second)
    assert not buffers.give(third)  # 1,200 bytes would exceed 1,000
    assert buffers.size == 800
    assert not buffers.give([np.empty((20, 20), dtype=np.uint8)])  # not an array a decoder was handed
    assert owner_of(np.zeros(3)) is None and owner_of(np.frombuffer(b"abcd", dtype=np.uint8)) is None


def test_the_cache_hands_evicted_and_cleared_chunks_to_its_spare_buffers() -> None:
    cache = ChunkCache(capacity=1_600)
    spare = cache.spare
    assert spare.capacity == 400
    for k in range(4):
        chunk = _chunk(spare, float(k))
        cache.put_many([(("a", k), chunk)], chunk.nbytes, owner_of(chunk))
        del chunk
    assert cache.size == 1_600 and spare.size == 0
    chunk = _chunk(spare, 4.0)
    cache.put_many([(("a", 4), chunk)], chunk.nbytes, owner_of(chunk))
    del chunk
    assert len(cache) == 4 and cache.get(("a", 0)) is None
    assert spare.size == 400  # chunk 0's memory, ready to decode into
    held = cache.get(("a", 1))  # a reader still copying out of chunk 1 when it is evicted
    for k in (2, 3, 4):
        cache.get(("a", k))  # chunk 1 least recently used again
    spare.take(400)
    chunk = _chunk(spare, 5.0)
    cache.put_many([(("a", 5), chunk)], chunk.nbytes, owner_of(chunk))
    del chunk
    assert cache.get(("a", 1)) is None and spare.size == 0  # evicted, but not reused under the reader
    assert held is not None and float(held[0, 0]) == 1.0
    cache.clear()
    assert cache.size == 0 and spare.size == 400  # all four freed; one fits the spare capacity


def test_each_thread_reads_into_a_scratch_buffer_of_its_own() -> None:
    scratch = ScratchBuffers()
    mine = scratch.get(10)
    mine[:] = b"0123456789"
    seen: list[bytes] = []

    def other() -> None:
        view = scratch.get(10)
        view[:] = b"abcdefghij"
        seen.append(bytes(view))

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert bytes(mine) == b"0123456789" and seen == [b"abcdefghij"]
    assert len(scratch.get(1_000)) == 1_000 and len(scratch.get(4)) == 4
