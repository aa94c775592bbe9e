"""The contract every stream log backend meets: ordered, durable appends of opaque entries per stream.

A stream is named by a key (``<twin id>/<stream>``); entries are numbered 1, 2, 3... per stream. ``append``
returns a future that completes only once the entry is durable: that is when a producer is acknowledged.

A log several engine processes share (``shared``: NATS) also appends conditionally (``append_after``: only
when the stream's newest entry is the one the caller knows) and says when another process appended
(``watch``): the hub numbers records from what it knows of the log, so it must never number them from an
old picture of it (``StreamHub.append``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from twinengine.config import Settings

__all__ = ["AppendConflict", "Sealed", "StreamLog"]

# (first entry, last entry) of a part of the log that will never change again (a closed segment)
Sealed = tuple[int, int]


class AppendConflict(Exception):
    """A conditional append was refused, nothing written: another process appended to the stream first."""


class StreamLog:
    """Base class of stream log backends; register implementations under the ``twinengine.streams`` group."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    max_entry_bytes: int = 16 << 20  # the hub splits larger batches
    shared: bool = False  # other engine processes may append to the same streams

    def append_after(self, key: str, payload: bytes, after: int) -> Future[int]:
        """Queue one entry to be appended only if the stream's newest entry is number ``after``; the future
        fails with ``AppendConflict`` (nothing written) when it is not. Shared logs implement it."""
        raise NotImplementedError

    def watch(self, appended: Callable[[str | None], None]) -> None:
        """Have ``appended(key)`` called when another engine process appends to ``key``, and
        ``appended(None)`` when some appends may have gone unannounced (a lost connection), until ``close``.
        It is called on the log's own thread, so it must not wait for anything that may be waiting for the
        log. A log no other process writes never calls it."""

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamLog:
        """Build the backend from the engine's settings."""
        raise NotImplementedError

    def append(self, key: str, payload: bytes) -> Future[int]:
        """Queue one entry; the future gives its number once it is durable. Order per key is call order."""
        raise NotImplementedError

    def read(self, key: str, first: int, max_entries: int) -> list[tuple[int, bytes]]:
        """Entries ``first, first + 1, ...`` (at most ``max_entries``) that exist now."""
        raise NotImplementedError

    def read_prefix(self, key: str, first: int, max_entries: int, size: int) -> list[tuple[int, bytes]]:
        """Like ``read`` but at least the first ``size`` bytes of each entry (the hub reads batch headers
        this way on start). Default: whole entries."""
        return self.read(key, first, max_entries)

    def last(self, key: str) -> int:
        """Number of the newest durable entry of ``key`` (0 when empty)."""
        raise NotImplementedError

    def list_keys(self) -> list[str]:
        """Every stream with at least one entry."""
        raise NotImplementedError

    def drop(self, key: str) -> None:
        """Forget a stream (its twin was deleted)."""
        raise NotImplementedError

    def sealed(self, key: str) -> list[Sealed]:
        """Ranges of entries in closed segments, ready for compaction. Default: the log never seals."""
        return []

    def close(self) -> None:
        """Finish pending appends and release files and connections."""
