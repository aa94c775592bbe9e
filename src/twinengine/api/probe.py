"""The liveness probe's store check, answered from the event loop.

A probe that hands every request to a thread queues behind the request threads for the interpreter and
behind the store's writers for a connection: under load it answers late exactly when it matters. So the
store is checked at most once per ``FRESH`` seconds, by one check at a time on the probe's own threads and
connections, and ``/health`` answers from the last result without leaving the event loop. A result older
than ``FRESH`` starts a new check in the background and still answers; one older than ``STALE`` (or none
yet) is waited for. ``/health`` therefore says the store answered within the last second or so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import anyio

__all__ = ["FRESH", "STALE", "StoreProbe"]

FRESH = 1.0  # seconds a check's result is answered without starting another
STALE = 5.0  # seconds after which a result is too old to answer with: the next answer waits for a check


class StoreProbe:
    """``await status()``: ``"ok"`` or why the store cannot be reached, from a check at most about
    ``fresh`` seconds old; ``check`` runs on a thread of the probe's own (one at a time)."""

    def __init__(self, check: Callable[[], str], *, fresh: float = FRESH, stale: float = STALE) -> None:
        self.check, self.fresh, self.stale = check, fresh, stale
        self._result: str | None = None
        self._at = 0.0
        self._running: asyncio.Task[str] | None = None
        self._threads = anyio.CapacityLimiter(1)

    async def status(self) -> str:
        age = time.monotonic() - self._at
        if self._result is not None and age < self.fresh:
            return self._result
        task = self._running
        if task is None or task.done():
            task = self._running = asyncio.get_running_loop().create_task(self._check())
        if self._result is not None and age < self.stale:
            return self._result  # the check runs on; this answer does not wait for it
        return await asyncio.shield(task)

    async def _check(self) -> str:
        result = await anyio.to_thread.run_sync(self.check, limiter=self._threads)
        self._result, self._at = result, time.monotonic()
        return result
