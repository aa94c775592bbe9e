"""An in-memory stream log for unit tests: complete, not durable, and it records the calls it got.

``process()`` gives another engine process's view of the same log: then both are ``shared``, as two
processes on one NATS server are (conditional appends, and each told of the other's appends).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING

from twinengine.streams.backends.base import AppendConflict, StreamLog

if TYPE_CHECKING:
    from twinengine.config import Settings

__all__ = ["MemoryLog"]


class MemoryLog(StreamLog):
    name = "memory"
    description = "in-memory, for tests (not durable)"

    def __init__(self, *, entries: dict[str, list[bytes]] | None = None, processes: list[MemoryLog] | None = None,
                 lock: threading.Lock | None = None) -> None:
        self.entries: dict[str, list[bytes]] = {} if entries is None else entries
        self._lock = lock or threading.Lock()  # the server's: one append at a time, the condition checked in it
        self.calls: list[tuple[str, str]] = []
        self._processes = [] if processes is None else processes  # every view of these entries
        self._processes.append(self)
        self._watcher: Callable[[str | None], None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryLog:
        return cls()

    def process(self) -> MemoryLog:
        """Another engine process's view of this log."""
        other = MemoryLog(entries=self.entries, processes=self._processes, lock=self._lock)
        for view in self._processes:
            view.shared = True
        return other

    def append(self, key: str, payload: bytes) -> Future[int]:
        return self._append(key, payload, None)

    def append_after(self, key: str, payload: bytes, after: int) -> Future[int]:
        return self._append(key, payload, after)

    def _append(self, key: str, payload: bytes, after: int | None) -> Future[int]:
        future: Future[int] = Future()
        with self._lock:
            log = self.entries.setdefault(key, [])
            if after is not None and len(log) != after:
                self.calls.append(("conflict", key))
                future.set_exception(AppendConflict(f"{key} has {len(log)} entries, not {after}"))
                return future
            self.calls.append(("append", key))
            log.append(payload)
            number = len(log)
        self._announce(key)
        future.set_result(number)
        return future

    def _announce(self, key: str) -> None:
        for view in self._processes:
            if view is not self and view._watcher is not None:
                view._watcher(key)

    def watch(self, appended: Callable[[str | None], None]) -> None:
        self._watcher = appended

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
