"""The subscription loop: evaluate conditions on new state and on stale data, then start sending what is due.

An elected loop (``daemons/supervisor.py``): one process of the engine runs it. A pass costs a few indexed
queries over the subscriptions and the outbox, whatever the number of twins; a state write in this process
wakes it at once (the runtime's notifier), writes by other processes are seen within ``subscription_poll``.
A pass never waits for a receiver: it hands what is due to its dispatcher (``subscriptions.dispatch``), whose
senders wake it when a message is done and the next of its subscription, or one passed over, may go.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from twinengine.config import Settings
from twinengine.daemons.supervisor import Loop, Scope
from twinengine.store.base import utcnow
from twinengine.store.engine import Database
from twinengine.subscriptions.dispatch import Dispatcher
from twinengine.subscriptions.evaluate import evaluate, has_work

if TYPE_CHECKING:
    from twinengine.daemons.engine_parts import EngineParts

__all__ = ["run_once", "subscription_loop"]

log = logging.getLogger("twinengine.daemons")

MIN_GAP_S = 0.25
_CLOSE_WAIT_S = 20.0  # a stopping loop waits this long for the messages being sent (a try ends within 60 s)


def run_once(db: Database, settings: Settings, sender: Dispatcher | None = None) -> int:
    """One pass: outbox rows for new events (committed before anything is sent), then the due deliveries
    handed to ``sender``. Without one (a tool, a test) the pass sends on a dispatcher of its own until nothing
    is due and waits for it. Returns the events found plus the deliveries started (or withheld)."""
    now, events = utcnow(), 0
    with db.session(readonly=True) as session:
        busy = has_work(session, now=now)
    if busy:
        with db.session() as session:
            events = evaluate(session, settings, now=now)
    if sender is not None:
        return events + sender.dispatch()
    own, handled = Dispatcher(db, settings), 0
    own.open()
    try:
        while started := own.dispatch():
            handled += started
            own.wait_idle()
    finally:
        own.close()
    return events + handled


def subscription_loop(runtime: EngineParts) -> Loop:
    """``run_once`` after every state write announced here (at most a few passes a second however busy the
    notifier is: stream appends wake it too), else every ``subscription_poll``."""
    notifier, interval = runtime.notifier, runtime.settings.subscription_poll.total_seconds()
    seen = notifier.version
    sender = Dispatcher(runtime.db, runtime.settings, wake=lambda: notifier.notify("subscriptions:sent"))

    def wait(stop: threading.Event) -> None:
        nonlocal seen
        if not stop.wait(MIN_GAP_S):
            seen = notifier.wait_any(seen, interval)

    return Loop("subscriptions", lambda: run_once(runtime.db, runtime.settings, sender), scope=Scope.ELECTED,
                interval=interval, wait=wait, interrupt=lambda: notifier.notify("subscriptions:stop"),
                setup=sender.open, teardown=lambda: sender.close(timeout=_CLOSE_WAIT_S))
