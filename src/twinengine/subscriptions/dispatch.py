"""Sending due messages side by side, fairly: a pool of ``subscription_senders`` threads, of which one
subscriber's messages hold at most ``subscription_sends_per_owner``, one host's at most
``subscription_sends_per_host``, and one subscriber's to one host at most half of that host's (rounded up), so
a second subscriber of the same host always finds one free. A subscriber whose receivers answer late (or never:
a try ends at ``subscription_webhook_timeout``) waits on their own senders only; another subscriber's alert
takes a free one at once. Each subscription's messages go one at a time and in order (``delivery.due`` offers
only the first undone one), so a retry is never overtaken.

The loop that owns a dispatcher claims on its own thread (a short transaction each) and returns; the senders
record each try in a transaction of their own and wake the loop (``wake``), which then offers the next message
of that subscription. The bounds hold per dispatcher: the subscription loop is elected, so one process of the
engine sends at a time; the claims keep a message to one sender across processes as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from twinengine.config import Settings
from twinengine.store.base import utcnow
from twinengine.store.engine import Database
from twinengine.subscriptions import delivery
from twinengine.subscriptions.delivery import Due

__all__ = ["SENDER_PREFIX", "Dispatcher"]

log = logging.getLogger("twinengine.subscriptions")

SENDER_PREFIX = "twin-delivery"  # the senders' thread names
_LOOKAHEAD = 4  # due messages read per free sender (those of a full host are passed over)


class Dispatcher:
    """Claims due messages within the bounds and sends them on a pool of threads (see the module docstring).
    ``open`` before the first ``dispatch``, ``close`` after the last; it may be opened again."""

    def __init__(self, db: Database, settings: Settings, *, wake: Callable[[], None] = lambda: None) -> None:
        self.db, self.settings, self.wake = db, settings, wake
        self._lock = threading.Condition()
        self._flying: dict[int, Due] = {}  # deliveries being sent, by id
        self._pool: ThreadPoolExecutor | None = None
        self._passed_over = False  # the last dispatch left due messages for want of a free sender

    # -- life
    def open(self) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.settings.subscription_senders,
                                                thread_name_prefix=SENDER_PREFIX)

    def close(self, timeout: float | None = None) -> None:
        """Take no more work and wait for the messages being sent (each try ends within
        ``subscription_webhook_timeout``); ``timeout``: the longest to wait, then they end by themselves."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)  # what was handed to it runs: a sender is free for each
            self.wait_idle(timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no message is being sent here; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._flying:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._lock.wait(left)
        return True

    @property
    def sending(self) -> int:
        with self._lock:
            return len(self._flying)

    # -- work
    def dispatch(self) -> int:
        """Claim and start sending what is due within the bounds; returns how many it started or withheld.
        Never waits for a receiver."""
        settings = self.settings
        with self._lock:
            if self._pool is None:
                return 0
            flying = set(self._flying)
            free = settings.subscription_senders - len(flying)
            owners = Counter(d.owner for d in self._flying.values())
            hosts = Counter(d.host for d in self._flying.values())
            pairs = Counter((d.owner, d.host) for d in self._flying.values())
        if free <= 0:  # a sender that ends wakes the loop
            self._passed_over = True
            return 0
        full = {owner for owner, n in owners.items() if n >= settings.subscription_sends_per_owner}
        with self.db.session(readonly=True) as session:
            found = delivery.due(session, settings, now=utcnow(), limit=max(50, _LOOKAHEAD * free),
                                 skip_owners=full)
        share = (settings.subscription_sends_per_host + 1) // 2  # of one host, for one subscriber
        handled, passed_over = 0, bool(full)  # a full subscriber's messages wait for one of its senders
        for due in found:
            if (free <= 0 or due.delivery in flying or owners[due.owner] >= settings.subscription_sends_per_owner
                    or hosts[due.host] >= settings.subscription_sends_per_host
                    or pairs[(due.owner, due.host)] >= share):
                passed_over = True
                continue
            job = delivery.claim(self.db, settings, due.delivery, due.seen)
            if job is None:  # another sender has it
                continue
            handled += 1
            if not isinstance(job, delivery.Job):  # withheld: recorded, nothing to send
                continue
            if not self._start(due, job):
                break
            free -= 1
            owners[due.owner] += 1
            hosts[due.host] += 1
            pairs[(due.owner, due.host)] += 1
        self._passed_over = passed_over
        return handled

    def _start(self, due: Due, job: delivery.Job) -> bool:
        with self._lock:
            if self._pool is None:  # closed meanwhile: the claim's lease lets the next sender take it
                return False
            self._flying[due.delivery] = due
            self._pool.submit(self._send, due, job)
        return True

    def _send(self, due: Due, job: delivery.Job) -> None:
        more = True
        try:
            delivery.send(self.db, self.settings, job)
            with self.db.session(readonly=True) as session:
                more = self._passed_over or delivery.undone(session, due.subscription)
        except Exception:  # the try is not recorded: the claim's lease lets it fall due again
            log.exception("sending delivery %s failed", due.delivery)
        finally:
            with self._lock:
                self._flying.pop(due.delivery, None)
                self._lock.notify_all()
            if more:  # the subscription's next message, or one passed over, can go now
                self.wake()
