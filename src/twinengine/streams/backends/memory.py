"""An in-memory stream log for unit tests: complete, not durable, and it records the calls it got."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING

from twinengine.streams.backends.base import StreamLog

if TYPE_CHECKING:
    from twinengine.config import Settings

__all__ = ["MemoryLog"]


class MemoryLog(StreamLog):
    name = "memory"
    description = "in-memory, for tests (not durable)"

    def __init__(self) -> None:
        self.entries: dict[str, list[bytes]] = {}
        self.calls: list[tuple[str, str]] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryLog:
        return cls()

    def append(self, key: str, payload: bytes) -> Future[int]:
        self.calls.append(("append", key))
        log = self.entries.setdefault(key, [])
        log.append(payload)
        future: Future[int] = Future()
        future.set_result(len(log))
        return future

    def read(self, key: str, first: int, max_entries: int) -> list[tuple[int, bytes]]:
        self.calls.append(("read", key))
        log = self.entries.get(key, [])
        start = max(first, 1)
        return [(n, log[n - 1]) for n in range(start, min(len(log), start + max_entries - 1) + 1)]

    def last(self, key: str) -> int:
        return len(self.entries.get(key, []))

    def list_keys(self) -> list[str]:
        return sorted(k for k, v in self.entries.items() if v)

    def drop(self, key: str) -> None:
        self.calls.append(("drop", key))
        self.entries.pop(key, None)
