"""Which serving process of a data dir runs the engine's elected loops: the holder of a file lock.

Every engine process serves the API, executes the workflow runs queued through it, fires triggers (one run
per event, whoever sees it first) and answers ``/health``. Some loops must run in exactly one process (the
elected loops of ``daemons/supervisor.py``, listed in ``daemons/elected.py``): functions on arrival (each
record's calls once), the MQTT bridge (one subscription), the stream compactor and buffer sealer, the lake's
judge, conveyor and reaper, and the training loop (on start it queues again the runs it finds ``running``,
which only a single trainer may do).

One process (``twin serve``, the demo, tests) runs them at once. With ``twin serve --processes N`` they
run in the process that holds an exclusive ``flock`` on ``<data_dir>/primary.lock`` (``PrimaryDuties``, the
election the supervisor is given); the others wait for it in a blocking ``flock`` call on a thread of their
own. Nothing polls and nothing needs releasing by hand: the kernel releases a process's lock when it ends
however it ends (kill -9 included) and wakes one waiter, which starts the loops; the serving parent replaces
the dead process, and the new one waits in turn. The lock file is opened close-on-exec, so no worker process
the engine starts can inherit it."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

__all__ = ["PRIMARY_LOCK", "PrimaryDuties", "Stoppable"]

log = logging.getLogger("twinengine.daemons")

PRIMARY_LOCK = "primary.lock"  # in the data dir


class Stoppable(Protocol):
    def stop(self) -> None: ...


class PrimaryDuties:
    """Waits for the data dir's primary lock on a thread of its own; once held, calls ``start`` (which starts
    the elected loops). ``close`` stops them and lets the lock go."""

    def __init__(self, lock_path: Path, start: Callable[[], Stoppable]) -> None:
        self.lock_path = lock_path
        self._start = start
        self.loops: Stoppable | None = None
        self._fd: int | None = None
        self._closed = False
        self._state = threading.Lock()  # held only to start or stop, never while waiting for the flock
        self.acquired = threading.Event()

    @property
    def held(self) -> bool:
        return self.acquired.is_set() and not self._closed

    def begin(self) -> None:
        threading.Thread(target=self._wait, name="twin-primary", daemon=True).start()

    def _wait(self) -> None:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # returns once no other process holds it
        except OSError:
            os.close(fd)
            log.exception("cannot take the primary lock %s: this process runs no elected loops", self.lock_path)
            return
        with self._state:
            if self._closed:  # stopped while waiting: let the next process have it
                os.close(fd)
                return
            self._fd = fd
            log.info("process %d runs the engine's elected loops (it holds %s)", os.getpid(), self.lock_path)
            try:
                self.loops = self._start()
            except Exception:
                log.exception("the elected loops did not start in process %d", os.getpid())
            self.acquired.set()

    def close(self) -> None:
        with self._state:
            self._closed = True
            loops, self.loops = self.loops, None
            fd, self._fd = self._fd, None
        try:
            if loops is not None:
                loops.stop()
        finally:
            if fd is not None:
                os.close(fd)  # releases the lock: a waiting process takes over
