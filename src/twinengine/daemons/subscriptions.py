"""The subscription loop: evaluate conditions on new state and on stale data, then send what is due.

A singleton loop (``daemons/primary.py``): one process of the engine runs it. A pass costs a few indexed
queries over the subscriptions and the outbox, whatever the number of twins; a state write in this process
wakes it at once (the runtime's notifier), writes by other processes are seen within ``subscription_poll``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from twinengine.config import Settings
from twinengine.store.base import utcnow
from twinengine.store.engine import Database
from twinengine.subscriptions.delivery import deliver_due
from twinengine.subscriptions.evaluate import evaluate, has_work

if TYPE_CHECKING:
    from twinengine.daemons.engine_parts import EngineParts

__all__ = ["SubscriptionLoop", "run_once"]

log = logging.getLogger("twinengine.daemons")

MIN_GAP_S = 0.25


def run_once(db: Database, settings: Settings) -> int:
    """One pass: outbox rows for new events (committed before anything is sent), then the due deliveries.
    Returns the events found plus the deliveries handled."""
    now, events = utcnow(), 0
    with db.session(readonly=True) as session:
        busy = has_work(session, now=now)
    if busy:
        with db.session() as session:
            events = evaluate(session, settings, now=now)
    return events + deliver_due(db, settings)


class SubscriptionLoop:
    """Runs ``run_once`` on a thread until ``stop``; woken early by the runtime's notifier."""

    def __init__(self, runtime: EngineParts) -> None:
        self.runtime = runtime
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="twinengine-subscriptions", daemon=True)

    def start(self) -> SubscriptionLoop:
        self._thread.start()
        return self

    def _run(self) -> None:
        notifier, interval = self.runtime.notifier, self.runtime.settings.subscription_poll.total_seconds()
        seen = notifier.version
        while not self._stop.is_set():
            try:
                run_once(self.runtime.db, self.runtime.settings)
            except Exception:
                log.exception("subscriptions: a pass failed; retrying after %.1f s", interval)
            # at most a few passes a second however busy the notifier is (stream appends wake it too)
            if not self._stop.wait(MIN_GAP_S):
                seen = notifier.wait_any(seen, interval)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self.runtime.notifier.notify("subscriptions:stop")  # wakes the wait at once
        self._thread.join(timeout=timeout)
