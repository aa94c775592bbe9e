"""Memory of decoded chunks used again instead of freed.

A fresh multi-megabyte allocation is mapped page by page as it is first written: decoding a 2.7 MB
chunk into new memory spends about as long in page faults as in decompression, and reading a chunk file
into a new ``bytes`` costs three times what reading it into an existing buffer does. So chunks the cache
lets go of are kept (up to a bound) and decoded into again, and each decoding thread reads files into a
scratch buffer of its own.

A buffer is only used again when nothing else can still see it: numpy views keep a reference to the
array that owns their memory, so a buffer whose only references are the ones ``give`` itself holds has no
views left anywhere (a reader still copying out of an evicted chunk keeps it from being reused).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np

__all__ = ["ScratchBuffers", "SpareBuffers", "owner_of"]


def _refs_of_sole_item(holder: list[Any]) -> int:
    item = holder.pop()
    return sys.getrefcount(item)


# The references ``give`` sees for a buffer nobody else holds, measured the same way ``give`` measures
# (the count differs between interpreter versions, so it is not written down).
_ALONE = _refs_of_sole_item([np.empty(1)])


def _is_buffer(array: Any) -> bool:
    """Whether ``array`` is what ``SpareBuffers.take`` hands out: a one-dimensional uint8 array owning its
    memory."""
    return (isinstance(array, np.ndarray) and array.base is None and array.flags.owndata
            and array.dtype == np.uint8 and array.ndim == 1)


def owner_of(array: np.ndarray) -> np.ndarray | None:
    """The buffer owning ``array``'s memory, or None when its memory belongs to anything else."""
    owner = array if array.base is None else array.base
    return owner if _is_buffer(owner) else None


class SpareBuffers:
    """Owning one-dimensional uint8 arrays of the sizes decoders ask for, at most ``capacity`` bytes kept."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._free: dict[int, list[np.ndarray]] = {}
        self._wanted: set[int] = set()
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> np.ndarray:
        """A uint8 array of ``nbytes``: a spare one when there is one, else new memory."""
        with self._lock:
            self._wanted.add(nbytes)
            free = self._free.get(nbytes)
            if free:
                self.size -= nbytes
                return free.pop()
        return np.empty(nbytes, dtype=np.uint8)

    def give(self, holder: list[np.ndarray]) -> bool:
        """Keep the array ``holder`` holds (taking it out of ``holder``) if it is of a size decoders want,
        owns its memory, fits within the capacity and nobody else references it. True when kept."""
        buffer = holder.pop()
        if sys.getrefcount(buffer) > _ALONE or not _is_buffer(buffer):
            return False
        nbytes = buffer.nbytes
        with self._lock:
            if nbytes not in self._wanted or self.size + nbytes > self.capacity:
                return False
            self._free.setdefault(nbytes, []).append(buffer)
            self.size += nbytes
            return True

    def clear(self) -> None:
        with self._lock:
            self._free.clear()
            self.size = 0


class ScratchBuffers:
    """One growing byte buffer per thread, for reading a chunk file before it is decoded."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, nbytes: int) -> memoryview:
        """A writable view of exactly ``nbytes``, valid until this thread asks again."""
        buffer: bytearray | None = getattr(self._local, "buffer", None)
        if buffer is None or len(buffer) < nbytes:
            buffer = bytearray(max(nbytes, 2 * len(buffer) if buffer is not None else 0))
            self._local.buffer = buffer
        return memoryview(buffer)[:nbytes]
