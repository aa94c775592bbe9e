"""The chunk reads of one answer, as jobs that any thread may run.

A thread that needs an answer does not sit idle while a pool decodes its chunks: it takes jobs from the
same queue, and so does a writer whenever no finished time step is waiting to be written. Decoding is
CPU-bound, so a read asks the pool for one helper fewer than there are cores: the threads that are busy
then match the cores, instead of a pool of readers plus a writer taking turns on them (on two cores that
cost a fifth more CPU per chunk and left the writer behind the reads).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor

__all__ = ["Reads", "usable_cores"]

Job = Callable[[], None]


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


class Reads:
    """A queue of read jobs shared by the thread that waits for them and the pool threads that help.

    The first job to fail stops the rest (they are dropped) and is raised by ``finish``. ``on_change`` is
    called after every job ends, so that a writer waiting for values can look again (at ``error`` and
    ``settled``) instead of waiting forever.
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._jobs: deque[Job] = deque()
        self._running = 0
        self._helping = 0
        self.error: BaseException | None = None
        self._on_change = on_change
        self._changed = threading.Condition()

    def add(self, jobs: Iterable[Job], *, pool: Executor | None = None, helpers: int = 0) -> None:
        """Queue ``jobs``; up to ``helpers`` threads of ``pool`` join in (never more than there are jobs beyond
        the one the waiting thread takes itself)."""
        with self._changed:
            self._jobs.extend(jobs)
            wanted = min(helpers, len(self._jobs) - 1) - self._helping if pool is not None else 0
            self._helping += max(wanted, 0)
        for _ in range(wanted):
            assert pool is not None
            pool.submit(self._help)

    def run_one(self) -> bool:
        """Run the next job on this thread; False when none is waiting (or the reads failed)."""
        with self._changed:
            if not self._jobs or self.error is not None:
                return False
            job = self._jobs.popleft()
            self._running += 1
        failure: BaseException | None = None
        try:
            job()
        except BaseException as exc:
            failure = exc
        with self._changed:
            self._running -= 1
            if failure is not None and self.error is None:
                self.error = failure
                self._jobs.clear()
            self._changed.notify_all()
        if self._on_change is not None:
            self._on_change()
        return True

    def waiting(self) -> bool:
        """Whether a job is waiting to be taken."""
        with self._changed:
            return bool(self._jobs) and self.error is None

    def settled(self) -> bool:
        """Whether no job is waiting or running (all done, or the reads failed and the rest were dropped)."""
        with self._changed:
            return self._running == 0 and (not self._jobs or self.error is not None)

    def _help(self) -> None:
        try:
            while self.run_one():
                pass
        finally:
            with self._changed:
                self._helping -= 1

    def cancel(self) -> None:
        """Drop the jobs not yet started (the answer they were for is not wanted any more)."""
        with self._changed:
            self._jobs.clear()

    def finish(self) -> None:
        """Run jobs on this thread until none is left, wait for those running elsewhere, and raise the first
        failure, if any."""
        while self.run_one():
            pass
        with self._changed:
            while self._running:
                self._changed.wait()
        if self.error is not None:
            raise self.error
