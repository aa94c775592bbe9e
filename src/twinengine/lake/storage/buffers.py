"""Recycled read buffers: a file is read with ``readinto`` into a few reusable bytearrays instead of a fresh
``bytes`` object per chunk (no allocation, no page faults on new memory for every megabyte that flows).

A buffer goes back to the pool only when its last user says so (``release``), after the bytes were hashed and
written; until then the reader allocates another one, so a consumer that keeps chunks never sees them change.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

__all__ = ["BufferPool", "pooled_chunks"]


class BufferPool:
    def __init__(self, size: int) -> None:
        self.size = size
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()

    def take(self) -> bytearray:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            return bytearray(self.size)

    def release(self, chunk: bytes | memoryview | bytearray) -> None:
        """Give back the buffer under ``chunk`` (a memoryview this pool handed out); other chunks are ignored."""
        buffer = chunk.obj if isinstance(chunk, memoryview) else chunk
        if isinstance(buffer, bytearray) and len(buffer) == self.size:
            self._free.put(buffer)


def pooled_chunks(path: Path, pool: BufferPool) -> Iterator[memoryview]:
    """The bytes of ``path`` as memoryviews into pool buffers; release each one when done with it."""
    with open(path, "rb", buffering=0) as fh:
        while True:
            buffer = pool.take()
            n = fh.readinto(buffer)
            if not n:
                pool.release(buffer)
                return
            yield memoryview(buffer)[:n]
