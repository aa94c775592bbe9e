"""Turning state changes into outbox rows: the evaluator behind the subscription loop.

State writes bump no change counter (a counter row would serialise every state write in the store), but each
write moves its twin's ``head_revision``: a pass reads the subscriptions whose twin moved past their cursor
(one query over the subscriptions, whatever the number of twins), then each one's new reported values from
the log in revision order, so a value that flaps between passes is seen change by change. Staleness is
judged on the same pass from the property's head and the time its revision was recorded.

Every event gets a key that the log fixes (``r<revision>``, ``stale:<revision>``): the outbox's unique key
on ``(subscription_id, event_key)`` makes a second evaluation of the same change, in this process or in
another engine sharing the store, insert nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, select
from sqlalchemy.orm import Session

from twinengine.catalog import service as catalog
from twinengine.config import Settings
from twinengine.quality.stored import unpack
from twinengine.store.base import upsert, utcnow
from twinengine.subscriptions.conditions import Condition
from twinengine.subscriptions.models import Delivery, Subscription
from twinengine.timeutil import format_duration
from twinengine.twins.models import StateHead, StateRevision, StateValue, Twin

__all__ = ["condition_of", "enqueue", "evaluate", "event_payload", "has_work", "portal_link", "reported_head"]

REPORTED = "reported"


def condition_of(sub: Subscription) -> Condition:
    return Condition(sub.property, sub.kind, operator=sub.operator, threshold=sub.threshold,
                     stale_seconds=sub.stale_seconds)


def portal_link(settings: Settings, twin_name: str) -> str:
    base = (settings.portal_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    return f"{base}/ui/twins/{twin_name}"


def event_payload(settings: Settings, sub: Subscription, *, title: str, event: str, **fields: Any) -> dict[str, Any]:
    """What a message carries: the twin, the condition, and the event's own fields (value, time...). Only
    the subscribed property of a twin the subscriber may read (checked again when it is sent)."""
    return {"event": event, "subscription": sub.id, "condition": sub.when, "property": sub.property,
            "twin": {"id": sub.twin_id, "name": sub.twin_name, "title": title},
            "link": portal_link(settings, sub.twin_name), **fields}


def reported_head(session: Session, twin_id: str, prop: str) -> Any:
    """The property's current reported value as stored (None when it was never written)."""
    return session.scalar(select(StateHead.value).where(StateHead.twin_id == twin_id, StateHead.property == prop,
                                                         StateHead.kind == REPORTED))


def enqueue(session: Session, sub: Subscription, key: str, event: str, payload: dict[str, Any]) -> None:
    """Add an event to the outbox unless it is there already (whoever added it first)."""
    statement = upsert(session.get_bind().dialect.name, cast(Table, Delivery.__table__)).values(
        subscription_id=sub.id, event_key=key, event=event, payload=payload, status="pending", attempts=0,
        created_at=utcnow(), next_attempt_at=utcnow())
    session.execute(statement.on_conflict_do_nothing(index_elements=["subscription_id", "event_key"]))


class _Titles:
    """App titles by app version id, read once per pass."""

    def __init__(self, session: Session) -> None:
        self.session, self.known = session, dict[int, str]()

    def __call__(self, app_id: int) -> str:
        if app_id not in self.known:
            self.known[app_id] = catalog.manifest_by_id(self.session, app_id).title
        return self.known[app_id]


def _plain(stored: Any) -> Any:
    return unpack(stored).value


def _changes(session: Session, settings: Settings, title: str, sub: Subscription,
             values: Sequence[Any]) -> int:
    condition, events = condition_of(sub), 0
    for revision, stored, timestamp in values:
        value = _plain(stored)
        if sub.kind == "changes":
            if sub.last_met is not None and value != _plain(sub.last_value):
                enqueue(session, sub, f"r{revision}", "changed", event_payload(
                    settings, sub, title=title, event="changed", value=value, previous=_plain(sub.last_value),
                    revision=revision, at=timestamp.isoformat()))
                events += 1
            sub.last_met = True  # a value is known: the next different one is a change
        else:
            met = condition.met(stored)
            if met and not sub.last_met:
                enqueue(session, sub, f"r{revision}", "crossed", event_payload(
                    settings, sub, title=title, event="crossed", value=value, threshold=sub.threshold,
                    revision=revision, at=timestamp.isoformat()))
                events += 1
            sub.last_met = met
        sub.last_value = stored
    return events


def _evaluate_writes(session: Session, settings: Settings, titles: _Titles) -> int:
    moved = session.execute(
        select(Subscription, Twin.head_revision, Twin.app_id).join(Twin, Twin.id == Subscription.twin_id)
        .where(Subscription.kind != "stale", Twin.head_revision > Subscription.last_revision)
        .order_by(Subscription.id)).all()
    events = 0
    for sub, head, app_id in moved:
        values = session.execute(
            select(StateValue.revision, StateValue.value, StateValue.timestamp)
            .where(StateValue.twin_id == sub.twin_id, StateValue.property == sub.property,
                   StateValue.kind == REPORTED, StateValue.revision > sub.last_revision, StateValue.revision <= head)
            .order_by(StateValue.revision)).all()
        events += _changes(session, settings, titles(app_id), sub, values)
        sub.last_revision = head
    return events


_MOVED = (select(Subscription.id).join(Twin, Twin.id == Subscription.twin_id)
          .where(Subscription.kind != "stale", Twin.head_revision > Subscription.last_revision).limit(1))


def _stale_rows(session: Session) -> Sequence[Any]:
    return session.execute(
        select(Subscription, StateHead.revision, StateRevision.recorded_at, Twin.app_id)
        .join(Twin, Twin.id == Subscription.twin_id)
        .outerjoin(StateHead, and_(StateHead.twin_id == Subscription.twin_id,
                                   StateHead.property == Subscription.property, StateHead.kind == REPORTED))
        .outerjoin(StateRevision, and_(StateRevision.twin_id == StateHead.twin_id,
                                       StateRevision.revision == StateHead.revision))
        .where(Subscription.kind == "stale").order_by(Subscription.id)).all()


def _silence(sub: Subscription, revision: int | None, recorded_at: datetime | None, now: datetime) -> str | None:
    """The key of the silence ``sub`` is to be told of now (None: the data is fresh, or it was told)."""
    key = f"stale:{revision or 0}"
    since = recorded_at or sub.created_at
    if sub.last_event == key or now - since < timedelta(seconds=sub.stale_seconds or 0):
        return None
    return key


def _evaluate_staleness(session: Session, settings: Settings, titles: _Titles, now: datetime) -> int:
    events = 0
    for sub, revision, recorded_at, app_id in _stale_rows(session):
        key = _silence(sub, revision, recorded_at, now)
        if key is None:
            continue
        enqueue(session, sub, key, "stale", event_payload(
            settings, sub, title=titles(app_id), event="stale", revision=revision, at=now.isoformat(),
            last_reported_at=recorded_at.isoformat() if recorded_at else None,
            stale_for=format_duration(timedelta(seconds=sub.stale_seconds or 0))))
        sub.last_event = key
        events += 1
    return events


def has_work(session: Session, *, now: datetime) -> bool:
    """Whether a pass would find anything: read in a read-only unit, so an idle loop never takes the store's
    write lock (SQLite has one for the whole file)."""
    if session.scalar(_MOVED) is not None:
        return True
    return any(_silence(sub, revision, recorded_at, now) is not None
               for sub, revision, recorded_at, _app in _stale_rows(session))


def evaluate(session: Session, settings: Settings, *, now: datetime | None = None) -> int:
    """One pass: new events of every subscription whose twin was written, and of stale data; returns how
    many events were added (some may have been in the outbox already)."""
    titles = _Titles(session)
    return (_evaluate_writes(session, settings, titles)
            + _evaluate_staleness(session, settings, titles, now or utcnow()))
