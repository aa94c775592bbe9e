"""Sending the outbox: claim a due delivery, check that its subscriber may still read the twin, send it
outside any transaction, record the try; retried with doubling waits until ``subscription_attempts``.

A claim is an UPDATE that moves the row's ``next_attempt_at`` a lease ahead, guarded by the value it read:
of two senders only one wins, and a sender that died mid-way leaves a row that falls due again when its
lease ends (a message is then sent at least once, never twice while its sender lives).

Only the first message of a subscription that is not done (``pending`` or ``sending``) is ever due: a
subscription's messages are sent one at a time, in the order of their events, and a later one never
overtakes an earlier one that waits for its retry. Which due messages are sent at once, and how many per
subscriber and per host, is the dispatcher's affair (``dispatch``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from twinengine.auth.groups import with_groups
from twinengine.auth.models import Identity
from twinengine.auth.policy import allowed
from twinengine.auth.principal import Principal, Role
from twinengine.config import Settings
from twinengine.store.base import utcnow
from twinengine.store.engine import Database
from twinengine.subscriptions import channels
from twinengine.subscriptions.models import Delivery, DeliveryAttempt, Subscription
from twinengine.twins.models import Twin

__all__ = ["LEASE", "Due", "Job", "claim", "deliver_one", "due", "host_of", "send", "undone"]

LEASE = timedelta(minutes=2)  # longer than an SMTP exchange and a webhook call together
_DUE = ("pending", "sending")


@dataclass(frozen=True)
class Job:
    """What a claimed delivery needs once its transaction is over."""

    delivery: int
    channel: str
    target: str
    secret: str | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class Due:
    """A delivery whose time has come, with what the dispatcher bounds it by: its subscriber and its host."""

    delivery: int
    seen: datetime  # its ``next_attempt_at`` as read: the claim is guarded by it
    subscription: str
    owner: str
    host: str


def host_of(settings: Settings, channel: str, target: str) -> str:
    """Where a message goes, as the per-host bound counts it: a webhook's host, or the SMTP server."""
    if channel == "email":
        return f"smtp:{settings.smtp_host or ''}"
    try:
        return (urlsplit(target).hostname or "").rstrip(".").lower()
    except ValueError:
        return ""


def due(session: Session, settings: Settings, *, now: datetime, limit: int = 50,
        skip_owners: Collection[str] = ()) -> list[Due]:
    """The first undone message of each subscription, where its time has come (new, retried, or claimed by a
    sender whose lease ran out), oldest first; none of the subscribers in ``skip_owners``."""
    first = (select(func.min(Delivery.id).label("id")).where(Delivery.status.in_(_DUE))
             .group_by(Delivery.subscription_id).subquery())
    query = (select(Delivery.id, Delivery.next_attempt_at, Delivery.subscription_id, Subscription.owner,
                    Subscription.channel, Subscription.target)
             .join(first, first.c.id == Delivery.id)
             .join(Subscription, Subscription.id == Delivery.subscription_id)
             .where(Delivery.next_attempt_at <= now))
    if skip_owners:
        query = query.where(Subscription.owner.not_in(list(skip_owners)))
    rows = session.execute(query.order_by(Delivery.next_attempt_at, Delivery.id).limit(limit))
    return [Due(int(r.id), r.next_attempt_at, r.subscription_id, r.owner, host_of(settings, r.channel, r.target))
            for r in rows]


def undone(session: Session, subscription: str) -> bool:
    """Whether a message of ``subscription`` is still to be sent (pending or being sent)."""
    return session.scalar(select(Delivery.id).where(Delivery.subscription_id == subscription,
                                                    Delivery.status.in_(_DUE)).limit(1)) is not None


def _claim(session: Session, delivery: int, seen: datetime, now: datetime) -> bool:
    claimed = session.execute(update(Delivery).where(Delivery.id == delivery, Delivery.status.in_(_DUE),
                                                     Delivery.next_attempt_at == seen)
                              .values(status="sending", next_attempt_at=now + LEASE))
    return bool(getattr(claimed, "rowcount", 0) == 1)


def _refusal(session: Session, sub: Subscription) -> str | None:
    """Why the subscriber may not be told now (None: it may): the twin is read as the subscriber, at send time."""
    identity = session.get(Identity, sub.owner)
    if identity is None or identity.disabled:
        return f"identity {sub.owner} is disabled or gone"
    twin = session.get(Twin, sub.twin_id)
    if twin is None:
        return "the twin is gone"
    principal = with_groups(session, Principal(name=sub.owner, role=Role(sub.owner_role), issuer="internal"))
    if not allowed(principal, "twin.read", twin):
        return f"{sub.owner} may no longer read twin {sub.twin_name}"
    return None


def _record(session: Session, delivery: int, settings: Settings, *, error: str | None, withheld: bool = False) -> str:
    row = session.get(Delivery, delivery)
    if row is None:  # its subscription was deleted meanwhile: nothing left to record
        return "gone"
    now = utcnow()
    row.attempts += 1
    if withheld:
        row.status, row.last_error = "withheld", error
    elif error is None:
        row.status, row.sent_at, row.last_error = "sent", now, None
    elif row.attempts >= settings.subscription_attempts:
        row.status, row.last_error = "failed", error
    else:
        row.status, row.last_error = "pending", error
        row.next_attempt_at = now + settings.subscription_backoff * 2 ** (row.attempts - 1)
    session.add(DeliveryAttempt(delivery_id=delivery, at=now, error=error,
                                status="withheld" if withheld else "ok" if error is None else "error"))
    return row.status


def _send(settings: Settings, job: Job) -> None:
    if job.channel == "email":
        channels.send_email(settings, job.target, job.payload)
    else:
        channels.send_webhook(settings, job.target, job.secret or "", job.payload, delivery=job.delivery)


def claim(db: Database, settings: Settings, delivery: int, seen: datetime) -> Job | str | None:
    """Claim one delivery and check its subscriber may still be told: the job to send, the status it was
    given instead (``withheld``), or None when another sender has it. A short transaction, no I/O."""
    now = utcnow()
    with db.session() as session:
        if not _claim(session, delivery, seen, now):
            return None
        row = session.get_one(Delivery, delivery)
        sub = session.get_one(Subscription, row.subscription_id)
        refused = _refusal(session, sub)
        job = Job(delivery, sub.channel, sub.target, sub.secret, dict(row.payload))
    if refused is not None:
        with db.session() as session:
            return _record(session, delivery, settings, error=refused, withheld=True)
    return job


def send(db: Database, settings: Settings, job: Job) -> str:
    """Send a claimed delivery outside any transaction, then record the try; its new status."""
    error: str | None = None
    try:
        _send(settings, job)
    except channels.DeliveryFailed as exc:
        error = str(exc)[:2000]
    with db.session() as session:
        return _record(session, job.delivery, settings, error=error)


def deliver_one(db: Database, settings: Settings, delivery: int, seen: datetime) -> str | None:
    """Claim, check, send and record one delivery; its new status, or None when another sender has it."""
    job = claim(db, settings, delivery, seen)
    return send(db, settings, job) if isinstance(job, Job) else job
