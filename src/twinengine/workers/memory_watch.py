"""The memory a sandbox's processes hold together, watched from outside: one thread of the engine looks at
every watched sandbox a few times a second and kills the whole tree of one that went over its limit.

Two ways, by what the host allows (``workers/cgroups.py``):

- **a memory cgroup per sandbox**: the kernel holds the group under its limit (it reclaims, then kills a
  process of the group). The watch reads the group's count of such kills and, on the first, kills every
  process left in the group and under the worker (cgroup v1 kills one process; a parent left waiting on a
  killed child, as ``multiprocessing.Pool`` does, would otherwise hold the call until its time limit).
- **no memory cgroup** (the fallback): the watch sums the proportional set size (``Pss`` of
  ``/proc/<pid>/smaps_rollup``: shared pages split among their sharers, so a forked child is not counted
  twice) of the tree under the worker and kills the whole tree once the sum is over the limit. It looks
  every ``INTERVAL`` seconds, so the tree may hold more for that long (what its processes can touch in that
  time); each process's own address-space limit (``RLIMIT_AS``) still holds.

A sandbox killed for its memory is told by ``Watch.exceeded``; its call fails with ``WorkerOutOfMemory``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from dataclasses import dataclass, field

from twinengine.workers.cgroups import Group
from twinengine.workers.cpu import tree_pids

__all__ = ["INTERVAL", "Watch", "tree_memory_bytes", "watch"]

log = logging.getLogger("twinengine.workers")

INTERVAL = 0.1  # seconds between two looks at the watched sandboxes
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(eq=False)
class Watch:
    """One sandbox's tree under watch: its worker process (``root``), its limit, its cgroups."""

    root: int
    limit: int
    group: Group
    exceeded: str | None = None  # why the tree was killed for its memory (None: it was not)
    peak: int = 0  # the most the fallback saw the tree hold at one look (bytes; 0 under a cgroup)
    baseline: int = field(default=0)  # the group's count of kernel kills when the watch began

    def check(self) -> str | None:
        """Look now (the watcher's thread does it every ``INTERVAL``; a call's end does it once more)."""
        if self.exceeded is not None:
            return self.exceeded
        if self.group.bounds_memory:
            if self.group.oom_kills() > self.baseline:
                self._kill(f"its processes together reached the sandbox's memory limit of {self.limit} bytes")
        else:
            held = tree_memory_bytes(self.root)
            self.peak = max(self.peak, held)
            if held > self.limit:
                self._kill(f"its processes together held {held} bytes, over the sandbox's memory limit of "
                           f"{self.limit} bytes")
        return self.exceeded

    def ended_call(self) -> str | None:
        """``check`` at a call's end, where it is cheap: the kernel's count under a cgroup (one small file); the
        fallback's walk of the tree is left to the watcher's thread."""
        return self.check() if self.group.bounds_memory else self.exceeded

    def _kill(self, why: str) -> None:
        self.exceeded = why
        self.group.kill()
        for pid in sorted(tree_pids(self.root)):  # the worker and what it forked, cgroup or not
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        log.warning("a sandbox was stopped: %s", why)

    def stop(self) -> None:
        _WATCHER.forget(self)


def tree_memory_bytes(root: int) -> int:
    """What the processes of the tree under ``root`` hold in memory: their proportional set sizes summed
    (their resident sizes where the kernel keeps no ``smaps_rollup``)."""
    total = 0
    for pid in tree_pids(root):
        total += _pss(pid)
    return total


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


class _Watcher:
    """The one thread that looks at every watched sandbox; it runs while there is one to watch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: list[Watch] = []
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def add(self, item: Watch) -> None:
        with self._lock:
            self._watched.append(item)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="twin-sandbox-memory", daemon=True)
                self._thread.start()

    def forget(self, item: Watch) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._watched.remove(item)

    def _run(self) -> None:
        while True:
            with self._lock:
                watched = list(self._watched)
                if not watched:
                    self._thread = None
                    return
            for item in watched:
                try:
                    item.check()
                except Exception as exc:  # a look that fails must not end the watch of the others
                    log.debug("watching a sandbox's memory: %s", exc)
            self._wake.wait(INTERVAL)


_WATCHER = _Watcher()


def watch(root: int, limit: int, group: Group) -> Watch | None:
    """Watch the sandbox whose worker process is ``root`` (None when ``limit`` is 0: no bound asked for)."""
    if limit <= 0:
        return None
    item = Watch(root, limit, group, baseline=group.oom_kills())
    _WATCHER.add(item)
    return item
