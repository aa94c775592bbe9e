"""The one owner of the engine's background loops: how each is started, stopped, observed and elected.

Every loop is a ``Loop`` registered with the runtime's ``Supervisor``: a ``step`` (one pass) and how to wait
for the next, on a thread of its own named ``twin-loop-<name>``. Its scope says where it runs: in every engine
process (``PROCESS``: workflow runs, triggers, calibrations), or in one process of the data dir or store
(``ELECTED``: functions on arrival, the MQTT bridge, compaction, the lake, subscriptions, training...). With
an election (``elect``: the data dir's file lock, ``daemons/primary.py``, or the store's advisory lock,
``daemons/leadership.py``) the elected loops start when this process wins it and stop when it loses or closes;
without one this process is the only one and runs them all.

``stop`` signals the elected loops, then the process loops, each group at once (its loops end their current
pass side by side), and waits for each at most its ``grace``. A pass that raises is logged and recorded in the
loop's ``status`` (its error and when); the loop goes on after its usual wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from twinengine.daemons.primary import Stoppable
from twinengine.store.base import utcnow

__all__ = ["THREAD_PREFIX", "Election", "Loop", "LoopStatus", "NeverElected", "Scope", "Supervisor"]

log = logging.getLogger("twinengine.daemons")

THREAD_PREFIX = "twin-loop-"
_FAILED = object()  # what a guarded call that raised returns


class Scope(StrEnum):
    PROCESS = "process"  # every engine process runs it
    ELECTED = "elected"  # one process of the data dir, or one engine of the shared store, runs it


class Election(Protocol):
    """Who runs the elected loops (``PrimaryDuties``, ``StoreLeadership``): calls the ``start`` it was built
    with once this process wins, stops what that returned when it loses or closes."""

    @property
    def held(self) -> bool: ...

    def begin(self) -> None: ...

    def close(self) -> None: ...


class NeverElected:
    """The election of a process that runs no elected loops: one an engine starts for its own work (a sync
    process, a runtime of its own over the engine's store), whose engine runs them. Without it such a process
    would start them as soon as one is registered there (the AI lifecycle's training loop, on its first
    ``predict``) and contend with its engine for what only one may hold (the local stream log)."""

    held = False

    def begin(self) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass
class Loop:
    """A background loop: ``step`` runs one pass (an ``int`` above 0 says it found work), then ``wait`` waits
    for the next (default: ``interval`` seconds, cut short by ``stop``). With ``rush`` a pass that found work
    is followed by the next at once. ``setup`` runs on the loop's thread before its first pass (again on
    each start), ``teardown`` after its last; ``interrupt`` is called on ``stop`` to cut a wait or a pass short
    (wake a notifier, cancel work in progress). ``grace``: the longest ``stop`` waits for the loop to end."""

    name: str
    step: Callable[[], Any]
    scope: Scope = Scope.PROCESS
    interval: float = 1.0
    wait: Callable[[threading.Event], Any] | None = None
    rush: bool = False
    setup: Callable[[], Any] | None = None
    teardown: Callable[[], Any] | None = None
    interrupt: Callable[[], Any] | None = None
    grace: float = 30.0
    backoff: float = 0.0  # after a pass that raised, wait this long too (a loop whose wait may be short)


@dataclass
class LoopStatus:
    """What ``/health`` and the metrics say of a loop."""

    name: str
    scope: Scope
    running: bool = False
    passes: int = 0
    errors: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    started_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scope": str(self.scope), "running": self.running, "passes": self.passes,
                "errors": self.errors, "last_error": self.last_error,
                "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
                "started_at": self.started_at.isoformat() if self.started_at else None}


@dataclass
class _Entry:
    loop: Loop
    status: LoopStatus
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class Supervisor:
    """Registers, starts, stops and reports the loops of one engine process (see the module docstring)."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()  # guards the entries and the flags; never held while joining a thread
        self._started = False
        self._closed = False
        self._elected = False
        self._election: Election | None = None
        self._on_elected: list[Callable[[], Any]] = []

    # -- registration
    def add(self, loop: Loop, *, replace: bool = False) -> bool:
        """Register ``loop``; it starts at once when its scope runs here already. A name registered before is
        kept unless ``replace`` (the old loop is stopped first). Returns whether ``loop`` was registered."""
        with self._lock:
            old = self._entries.get(loop.name)
            if old is not None and not replace:
                return False
        if old is not None:
            self._halt([old], timeout=old.loop.grace)
        with self._lock:
            entry = self._entries[loop.name] = _Entry(loop, LoopStatus(loop.name, loop.scope))
            if self._runs(loop.scope):
                self._launch(entry)
        return True

    def remove(self, names: list[str], *, timeout: float = 30.0) -> None:
        """Stop these loops and forget them (what an API's lifespan registered, when the runtime outlives it)."""
        with self._lock:
            entries = [self._entries.pop(name) for name in reversed(names) if name in self._entries]
        self._halt(entries, timeout=timeout)

    def elect(self, make: Callable[[Callable[[], Stoppable]], Election]) -> None:
        """Run the elected loops only while this process wins the election ``make(start)`` builds. Must come
        before ``start``."""
        with self._lock:
            if self._started:
                raise RuntimeError("the election must be chosen before the loops start")
            self._election = make(self._take_over)

    def on_elected(self, callback: Callable[[], Any]) -> None:
        """Call ``callback`` each time this process starts the elected loops (before they start)."""
        self._on_elected.append(callback)

    # -- start and stop
    def start(self) -> None:
        """Start the process loops, and the elected ones (at once without an election, else once won)."""
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
            election = self._election
            for entry in self._entries.values():
                if entry.loop.scope is Scope.PROCESS:
                    self._launch(entry)
        if election is None:
            self._take_over()
        else:
            election.begin()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every loop: the elected ones first (the election lets go), then the process loops; each ends
        its current pass, waited for at most its ``grace`` and ``timeout`` in all."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            election, self._election = self._election, None
        if election is not None:
            election.close()  # stops the elected loops through the Stoppable ``_take_over`` returned
        else:
            self._halt(self._group(Scope.ELECTED), timeout=max(0.0, deadline - time.monotonic()))
        self._halt(self._group(Scope.PROCESS), timeout=max(0.0, deadline - time.monotonic()))

    @property
    def elected(self) -> bool:
        """Whether this process runs the elected loops now (or will, once started, without an election)."""
        with self._lock:
            return self._elected or (self._election is None and not self._closed)

    @property
    def election(self) -> Election | None:
        return self._election

    # -- observing
    def status(self) -> list[LoopStatus]:
        with self._lock:
            return [LoopStatus(**vars(e.status)) for e in self._entries.values()]

    def threads(self) -> list[threading.Thread]:
        """The threads of the loops running now."""
        with self._lock:
            return [e.thread for e in self._entries.values() if e.thread is not None and e.thread.is_alive()]

    # -- inside
    def _runs(self, scope: Scope) -> bool:
        return self._started and not self._closed and (scope is Scope.PROCESS or self._elected)

    def _group(self, scope: Scope) -> list[_Entry]:
        with self._lock:
            return [e for e in reversed(self._entries.values()) if e.loop.scope is scope]

    def _take_over(self) -> Stoppable:
        """This process won the election: start the elected loops; the result stops them."""
        for callback in list(self._on_elected):
            try:
                callback()
            except Exception:
                log.exception("a start-up step of the elected loops failed")
        with self._lock:
            if not self._closed:
                self._elected = True
                for entry in self._entries.values():
                    if entry.loop.scope is Scope.ELECTED:
                        self._launch(entry)
        return _StopElected(self)

    def _release(self) -> None:
        with self._lock:
            self._elected = False
        self._halt(self._group(Scope.ELECTED), timeout=30.0)

    def _launch(self, entry: _Entry) -> None:
        if entry.thread is not None and entry.thread.is_alive():
            return
        entry.stop = threading.Event()
        entry.status.running, entry.status.started_at = True, utcnow()
        entry.thread = threading.Thread(target=self._run, args=(entry, entry.stop), daemon=True,
                                        name=THREAD_PREFIX + entry.loop.name)
        entry.thread.start()

    def _halt(self, entries: list[_Entry], *, timeout: float) -> None:
        """Signal every loop of ``entries`` at once, then wait for each (at most its grace)."""
        began = time.monotonic()
        for entry in entries:
            entry.stop.set()
            if entry.loop.interrupt is not None and entry.thread is not None:
                try:
                    entry.loop.interrupt()
                except Exception:
                    log.exception("%s: stopping it failed", entry.loop.name)
        for entry in entries:
            if entry.thread is not None:
                left = min(entry.loop.grace, timeout) - (time.monotonic() - began)
                entry.thread.join(timeout=max(0.0, left))
                if entry.thread.is_alive():
                    log.warning("%s did not end its pass in time; left to end by itself", entry.loop.name)

    def _run(self, entry: _Entry, stop: threading.Event) -> None:
        loop, status = entry.loop, entry.status
        try:
            while loop.setup is not None and not stop.is_set() and self._guard(entry, loop.setup) is _FAILED:
                stop.wait(loop.interval)  # a setup that failed is tried again after a wait
            while not stop.is_set():
                done = self._guard(entry, loop.step)
                status.passes += 1
                if stop.is_set():
                    break
                if loop.rush and isinstance(done, int) and done > 0:
                    continue
                if done is _FAILED and loop.backoff and stop.wait(loop.backoff):
                    break
                if loop.wait is not None:
                    loop.wait(stop)
                else:
                    stop.wait(loop.interval)
        finally:
            if loop.teardown is not None:
                self._guard(entry, loop.teardown)
            status.running = False

    @staticmethod
    def _guard(entry: _Entry, call: Callable[[], Any]) -> Any:
        """``call()``; an error is logged and recorded in the loop's status, and yields ``_FAILED``."""
        try:
            return call()
        except Exception as exc:
            log.exception("%s: a pass failed; trying again after its wait", entry.loop.name)
            entry.status.errors += 1
            entry.status.last_error = f"{type(exc).__name__}: {exc}"[:500]
            entry.status.last_error_at = utcnow()
            return _FAILED


class _StopElected:
    """What the election stops when this process loses it or closes."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def stop(self) -> None:
        self.supervisor._release()
