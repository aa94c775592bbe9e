"""Warm workers, kept per key (an app version and its environment): a call leases an idle worker or starts
one, and gives it back when the call is done. Nothing ever waits for a worker, so the pool cannot deadlock:
with more calls than idle workers, more workers start; only ``idle`` of them per key stay warm afterwards."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

from twinengine.workers.process import Worker, WorkerError

__all__ = ["WorkerPool"]

_SERVED = 64  # callers a worker remembers having served


class WorkerPool:
    def __init__(self, idle: int = 4) -> None:
        self.idle = idle
        self._idle: dict[Hashable, list[Worker]] = {}
        self._lock = threading.Lock()  # guards the dict only; never held while a worker starts or runs
        self._closed = False
        self.started = 0

    @contextmanager
    def lease(self, key: Hashable, start: Callable[[], Worker], prefer: Hashable = None) -> Iterator[Worker]:
        """A warm worker for ``key`` (or a new one from ``start``), the one that last served ``prefer`` if it
        is idle (a twin's function finds its warm model there). One that failed (timeout, crash) is stopped,
        not given back; one whose code raised stays warm."""
        with self._lock:
            idle = self._idle.get(key)
            worker = idle.pop(self._pick(idle, prefer)) if idle else None
        if worker is None or not worker.alive:
            if worker is not None:
                worker.close()
            worker = start()
            self.started += 1
        worker.affinity = prefer
        if prefer is not None:
            worker.served.pop(prefer, None)
            worker.served[prefer] = None
            while len(worker.served) > _SERVED:
                del worker.served[next(iter(worker.served))]
        healthy = False
        try:
            yield worker
            healthy = True
        except WorkerError:
            healthy = True
            raise
        finally:
            self._give_back(key, worker, healthy)

    @staticmethod
    def _pick(idle: list[Worker], prefer: Hashable) -> int:
        """The caller's own worker, else one that served the caller before (its warm model may still be
        there), else one nobody used yet, else the least recently used (the shelf is ordered by return,
        oldest first)."""
        for rank in (lambda w: prefer is not None and w.affinity == prefer,
                     lambda w: prefer is not None and prefer in w.served, lambda w: w.affinity is None):
            found = [i for i, w in enumerate(idle) if rank(w)]
            if found:
                return found[-1]
        return 0

    def _give_back(self, key: Hashable, worker: Worker, healthy: bool) -> None:
        retired: Worker | None = worker
        if healthy and worker.alive:
            with self._lock:
                shelf = self._idle.setdefault(key, [])
                if not self._closed and self.idle > 0:
                    shelf.append(worker)
                    retired = shelf.pop(0) if len(shelf) > self.idle else None  # the least recently used goes
        if retired is not None:
            retired.close()

    def discard(self, key: Hashable) -> None:
        """Stop the idle workers of ``key`` (their code changed or was removed)."""
        with self._lock:
            workers = self._idle.pop(key, [])
        for worker in workers:
            worker.close()

    def warm(self) -> dict[Hashable, int]:
        with self._lock:
            return {k: len(v) for k, v in self._idle.items() if v}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = [w for shelf in self._idle.values() for w in shelf]
            self._idle.clear()
        for worker in workers:
            worker.close()
