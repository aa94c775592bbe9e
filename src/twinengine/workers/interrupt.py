"""Stopping a worker's request from another thread: a run canceled in the middle of an app process.

A request to a worker blocks its caller until the worker answers, and app code may take minutes. The one way
to stop code that does not cooperate is to kill its process, which the sandbox makes safe: the worker holds
nothing of the engine's, its request raises ``WorkerCrashed``, and the pool never lends a dead worker again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from twinengine.workers.process import Worker

__all__ = ["Interrupt"]


class Interrupt:
    """Fired at most once; kills the workers serving a request under it at that moment, and any that begins
    serving one after. A worker is killed only while it serves this interrupt's request (the lock spans the
    kill signal and the end of ``serving``), never once it is back in the pool serving someone else."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serving: set[Worker] = set()
        self._fired = False

    @property
    def fired(self) -> bool:
        return self._fired

    def fire(self) -> None:
        with self._lock:
            self._fired = True
            for worker in self._serving:
                worker.signal_kill()

    @contextmanager
    def serving(self, worker: Worker) -> Iterator[Worker]:
        with self._lock:
            if self._fired:
                worker.signal_kill()
            self._serving.add(worker)
        try:
            yield worker
        finally:
            with self._lock:
                self._serving.discard(worker)
