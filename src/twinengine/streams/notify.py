"""Wake-ups for waiting readers, from any thread to threads and event loops alike.

The hub calls ``notify(topic)`` after an append is durable, the twins' commit hook after a state revision;
SSE endpoints wait with ``await wait(topic, timeout)``, daemons with ``wait_any(version, timeout)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict

__all__ = ["Notifier"]


class Notifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)
        self._changed = threading.Condition()
        self.version = 0

    def notify(self, topic: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(topic, ()))
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: its waiter is gone
                loop.call_soon_threadsafe(event.set)
        with self._changed:
            self.version += 1
            self._changed.notify_all()

    async def wait(self, topic: str, timeout: float) -> bool:
        """Wait until ``topic`` is notified or ``timeout`` passes; True when notified."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters[topic].add(entry)
        try:
            await asyncio.wait_for(entry[1].wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters[topic].discard(entry)
                if not self._waiters[topic]:
                    del self._waiters[topic]

    def wait_any(self, seen: int, timeout: float) -> int:
        """Block until anything is notified after version ``seen`` (or timeout); returns the version now."""
        with self._changed:
            if self.version == seen:
                self._changed.wait(timeout)
            return self.version
