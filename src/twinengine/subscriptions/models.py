"""Tables of subscriptions: what a person asked to be told about, the outbox of messages, and each try to send one.

The outbox has one row per event per subscription, keyed by ``(subscription_id, event_key)``: however many
engine processes notice the same change, the insert of the second finds the row there and does nothing, so an
event is delivered once by construction (``evaluate.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, JSONValue, LogId, UTCDateTime, utcnow

__all__ = ["Delivery", "DeliveryAttempt", "Subscription"]


class Subscription(Base):
    """A person's wish to be told when a twin's condition holds anew, by e-mail or by a signed webhook.

    ``last_revision``, ``last_value`` and ``last_met`` are the evaluator's cursor: the twin revision it has
    looked at, the property's value then and whether the condition held."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(ForeignKey("identities.name", ondelete="CASCADE"), index=True)
    owner_role: Mapped[str] = mapped_column(String(16))  # the role its deliveries are authorised with
    twin_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"), index=True)
    twin_name: Mapped[str] = mapped_column(String(64))
    when: Mapped[str] = mapped_column(String(200))  # the condition as written back (conditions.Condition.text)
    property: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # changes, above, below, stale
    operator: Mapped[str | None] = mapped_column(String(2))
    threshold: Mapped[float | None] = mapped_column(Float)
    stale_seconds: Mapped[float | None] = mapped_column(Float)
    channel: Mapped[str] = mapped_column(String(16))  # email, webhook
    target: Mapped[str] = mapped_column(String(2048))  # the address or the URL
    secret: Mapped[str | None] = mapped_column(String(128))  # the webhook's signing key, shown once
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_revision: Mapped[int] = mapped_column(Integer, default=0)
    last_value: Mapped[Any] = mapped_column(JSONValue, nullable=True)
    last_met: Mapped[bool | None] = mapped_column(nullable=True)
    last_event: Mapped[str | None] = mapped_column(String(64))


class Delivery(Base):
    """One message to send for one event of one subscription (the outbox); ``status`` pending, sending, sent,
    failed (tries used up) or withheld (the subscriber may no longer read the twin)."""

    __tablename__ = "subscription_deliveries"
    __table_args__ = (UniqueConstraint("subscription_id", "event_key"),
                      Index("ix_subscription_deliveries_due", "status", "next_attempt_at"))

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    event_key: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(16))  # changed, crossed, stale, test
    payload: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)


class DeliveryAttempt(Base):
    """One try to send a delivery: when, how it ended (ok, error, withheld) and why."""

    __tablename__ = "subscription_attempts"

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("subscription_deliveries.id", ondelete="CASCADE"),
                                             index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
