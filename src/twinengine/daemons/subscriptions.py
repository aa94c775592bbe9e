"""The subscription loop: evaluate conditions on new state and on stale data, then send what is due.

An elected loop (``daemons/supervisor.py``): one process of the engine runs it. A pass costs a few indexed
queries over the subscriptions and the outbox, whatever the number of twins; a state write in this process
wakes it at once (the runtime's notifier), writes by other processes are seen within ``subscription_poll``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from twinengine.config import Settings
from twinengine.daemons.supervisor import Loop, Scope
from twinengine.store.base import utcnow
from twinengine.store.engine import Database
from twinengine.subscriptions.delivery import deliver_due
from twinengine.subscriptions.evaluate import evaluate, has_work

if TYPE_CHECKING:
    from twinengine.daemons.engine_parts import EngineParts

__all__ = ["run_once", "subscription_loop"]

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


def subscription_loop(runtime: EngineParts) -> Loop:
    """``run_once`` after every state write announced here (at most a few passes a second however busy the
    notifier is: stream appends wake it too), else every ``subscription_poll``."""
    notifier, interval = runtime.notifier, runtime.settings.subscription_poll.total_seconds()
    seen = notifier.version

    def wait(stop: threading.Event) -> None:
        nonlocal seen
        if not stop.wait(MIN_GAP_S):
            seen = notifier.wait_any(seen, interval)

    return Loop("subscriptions", lambda: run_once(runtime.db, runtime.settings), scope=Scope.ELECTED,
                interval=interval, wait=wait, interrupt=lambda: notifier.notify("subscriptions:stop"))
