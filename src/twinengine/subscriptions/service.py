"""Subscriptions: subscribe to a twin's condition, list, show and end one's own, queue a test message.

Subscribing needs read access to the twin (``twin.read``); a subscription is its owner's alone
(``subscription.manage``): another caller is told it does not exist. Every message is checked again when it
is sent (``delivery``): a revoked grant stops deliveries.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from twinengine.auth.policy import allowed, require
from twinengine.auth.principal import Principal
from twinengine.auth.service import ensure_identity
from twinengine.config import Settings
from twinengine.errors import Conflict, NotFound, ValidationFailed
from twinengine.store.base import lock_for_delete, utcnow
from twinengine.subscriptions import channels, conditions, evaluate, messages, signing
from twinengine.subscriptions.models import Delivery, DeliveryAttempt, Subscription
from twinengine.subscriptions.schemas import SubscriptionCreate, SubscriptionRead, delivery_read
from twinengine.twins import service as twins

__all__ = ["create", "delete", "get", "list_own", "queue_test", "read"]

SHOWN_DELIVERIES = 20


def create(session: Session, *, principal: Principal, settings: Settings, body: SubscriptionCreate
           ) -> tuple[Subscription, str | None]:
    """A new subscription and, for a webhook, its signing secret (returned this once, never shown again)."""
    require(principal, "subscription.create")
    twin = twins.get_twin(session, principal=principal, ref=body.twin)  # 403 on a twin the caller may not read
    manifest = twins.manifest_for(session, twin)
    condition = conditions.parse(body.when, manifest)
    if body.email is not None:
        if not settings.smtp_host:
            raise ValidationFailed.one("email", "this engine sends no e-mail (smtp_host is not set); use a webhook")
        channel, target, secret = "email", channels.check_email(body.email), None
    else:
        channel, target = "webhook", channels.check_webhook(body.webhook or "", settings.subscription_webhook_hosts)
        secret = signing.new_secret()
    held = session.scalar(select(func.count()).select_from(Subscription).where(Subscription.owner == principal.name))
    if (held or 0) >= settings.subscriptions_max_per_user:
        raise Conflict(f"{principal.name} holds {held} subscriptions, the most subscriptions_max_per_user allows "
                       f"({settings.subscriptions_max_per_user}); delete one first")
    ensure_identity(session, principal.name, created_by=principal.issuer)
    head = evaluate.reported_head(session, twin.id, condition.prop)
    # The cursor starts now: a change is judged against the value the twin holds when it is subscribed to.
    met = None if head is None else True if condition.kind == "changes" else condition.met(head)
    sub = Subscription(
        id=f"sub-{secrets.token_hex(8)}", owner=principal.name, owner_role=principal.role.value, twin_id=twin.id,
        twin_name=twin.name, when=condition.text, property=condition.prop, kind=condition.kind,
        operator=condition.operator, threshold=condition.threshold, stale_seconds=condition.stale_seconds,
        channel=channel, target=target, secret=secret, created_at=utcnow(), last_revision=twin.head_revision,
        last_value=head, last_met=met)
    session.add(sub)
    session.flush()
    return sub, secret


def list_own(session: Session, *, principal: Principal, twin: str | None = None) -> list[Subscription]:
    """The caller's subscriptions (of one twin, by id or name, when ``twin`` is given), oldest first."""
    require(principal, "subscription.create")
    query = select(Subscription).where(Subscription.owner == principal.name)
    if twin is not None:
        query = query.where((Subscription.twin_id == twin) | (Subscription.twin_name == twin))
    return list(session.scalars(query.order_by(Subscription.created_at, Subscription.id)))


def get(session: Session, *, principal: Principal, id: str) -> Subscription:
    """One of the caller's subscriptions; another's is not found (its id says nothing to others)."""
    sub = session.get(Subscription, id)
    if sub is None or not allowed(principal, "subscription.manage", sub):
        raise NotFound(f"no subscription {id!r} of yours")
    return sub


def delete(session: Session, *, principal: Principal, id: str) -> None:
    """End a subscription; its pending messages go with it."""
    sub = get(session, principal=principal, id=id)
    lock_for_delete(session, sub, NotFound(f"no subscription {id!r} of yours"))
    session.delete(sub)


def queue_test(session: Session, *, principal: Principal, settings: Settings, id: str) -> Delivery:
    """Queue a test message through the subscription's channel (sent by the loop like any other)."""
    sub = get(session, principal=principal, id=id)
    twin = twins.get_twin(session, principal=principal, ref=sub.twin_id)
    title = twins.manifest_for(session, twin).title
    key = f"test:{secrets.token_hex(8)}"
    evaluate.enqueue(session, sub, key, "test", evaluate.event_payload(
        settings, sub, title=title, event="test", at=utcnow().isoformat()))
    return session.scalars(select(Delivery).where(Delivery.subscription_id == sub.id,
                                                  Delivery.event_key == key)).one()


def read(session: Session, sub: Subscription, *, deliveries: int = SHOWN_DELIVERIES) -> SubscriptionRead:
    """The subscription with its latest deliveries and their tries, newest first."""
    rows = list(session.scalars(select(Delivery).where(Delivery.subscription_id == sub.id)
                                .order_by(Delivery.id.desc()).limit(deliveries))) if deliveries else []
    tries: dict[int, list[Any]] = {row.id: [] for row in rows}
    if rows:
        for attempt in session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(tries))
                                       .order_by(DeliveryAttempt.id)):
            tries[attempt.delivery_id].append(attempt)
    read = SubscriptionRead.model_validate(sub)
    return read.model_copy(update={"deliveries": [delivery_read(r, tries[r.id], messages.headline(r.payload))
                                                  for r in rows]})
