"""Sending the outbox: claim a due delivery, check that its subscriber may still read the twin, send it
outside any transaction, record the try; retried with doubling waits until ``subscription_attempts``.

A claim is an UPDATE that moves the row's ``next_attempt_at`` a lease ahead, guarded by the value it read:
of two senders only one wins, and a sender that died mid-way leaves a row that falls due again when its
lease ends (a message is then sent at least once, never twice while its sender lives).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
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

__all__ = ["LEASE", "Job", "deliver_due", "deliver_one", "due"]

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


def due(session: Session, *, now: datetime, limit: int = 50) -> list[tuple[int, datetime]]:
    """Deliveries whose time has come (new, retried, or claimed by a sender whose lease ran out)."""
    rows = session.execute(select(Delivery.id, Delivery.next_attempt_at)
                           .where(Delivery.status.in_(_DUE), Delivery.next_attempt_at <= now)
                           .order_by(Delivery.next_attempt_at, Delivery.id).limit(limit))
    return [(int(r.id), r.next_attempt_at) for r in rows]


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


def deliver_one(db: Database, settings: Settings, delivery: int, seen: datetime) -> str | None:
    """Claim, check, send and record one delivery; its new status, or None when another sender has it."""
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
    error: str | None = None
    try:
        _send(settings, job)
    except channels.DeliveryFailed as exc:
        error = str(exc)[:2000]
    with db.session() as session:
        return _record(session, delivery, settings, error=error)


def deliver_due(db: Database, settings: Settings) -> int:
    """Send what is due now; returns how many deliveries this pass handled."""
    with db.session(readonly=True) as session:
        found = due(session, now=utcnow())
    return sum(deliver_one(db, settings, delivery, seen) is not None for delivery, seen in found)
