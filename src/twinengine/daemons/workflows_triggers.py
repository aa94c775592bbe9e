"""The trigger scheduler: manifest triggers become rows, cron ticks and dataset arrivals start runs.

A pass asks for what may be due, never for every trigger: cron triggers whose tick has come (an index on
kind and next tick), stream-window triggers, and dataset triggers only when the arrival feed shows an
arrival the loop has not seen (one feed read per pass, not one per trigger). ``run_once`` without a
``Watch`` looks at every enabled trigger (tests, and a one-shot pass).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from twinengine.catalog import service as catalog
from twinengine.daemons.supervisor import Loop
from twinengine.store.base import utcnow
from twinengine.twins.models import Twin
from twinengine.workflows import triggers
from twinengine.workflows.drift_triggers import due_drift
from twinengine.workflows.models import Trigger

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["Watch", "loop", "run_once", "sweep"]

log = logging.getLogger("twinengine.workflows")
INTERVAL_SECONDS = 1.0


def sweep(engine: WorkflowEngine) -> int:
    """Give twins their app's manifest triggers (twins created before the twins hook ran); at start. Only
    twins of apps that declare triggers and that have none yet are loaded."""
    with engine.db.session() as session:
        app_ids = [a for a in session.scalars(select(Twin.app_id).distinct())
                   if any(t.kind != "manual" for t in catalog.manifest_by_id(session, a).triggers)]
        if not app_ids:
            return 0
        has = exists().where(Trigger.twin_id == Twin.id, Trigger.source == "manifest")
        bare = session.scalars(select(Twin).where(Twin.app_id.in_(app_ids), ~has))
        return sum(triggers.materialize_manifest_triggers(session, twin, arrivals=engine.arrivals) for twin in bare)


_OLDEST_DATASET_TRIGGER = select(func.min(Trigger.created_at)).where(Trigger.kind == "dataset",
                                                                     Trigger.enabled.is_(True))


@dataclass
class Watch:
    """What the loop saw of the arrival feed: a pass looks at dataset triggers only when it shows news."""

    cursor: str | None = None
    started: bool = False
    seen: set[tuple[str, str, datetime]] = field(default_factory=set)

    def news(self, engine: WorkflowEngine, session: Session) -> bool:
        feed = engine.arrivals
        if feed is None:
            return False
        if not self.started:  # arrivals after the oldest dataset trigger's start may be news to some trigger
            oldest = session.scalar(_OLDEST_DATASET_TRIGGER)
            if oldest is None:
                return False  # no dataset trigger: the feed is read from the first one's creation on
            self.cursor, self.started = feed.cursor_at(oldest), True
        arrivals, self.cursor = feed.since(self.cursor)
        keys = {(a.collection, a.item, a.at) for a in arrivals}  # the feed repeats a short overlap
        fresh = bool(keys - self.seen)
        self.seen = keys
        return fresh


def _due(session: Session, engine: WorkflowEngine, watch: Watch | None, now: datetime,
         ids: list[str] | None = None) -> list[Trigger]:
    """The triggers a pass visits: every enabled one without a watch; else those ``_due_ids`` names (looked
    up now unless given: the watch's arrival cursor moves on each look)."""
    enabled = select(Trigger).where(Trigger.enabled.is_(True)).order_by(Trigger.id)
    if watch is None:
        return list(session.scalars(enabled))
    if ids is None:
        ids = _due_ids(session, engine, watch, now)
    return list(session.scalars(enabled.where(Trigger.id.in_(ids)))) if ids else []


def _due_ids(session: Session, engine: WorkflowEngine, watch: Watch, now: datetime) -> list[str]:
    """The enabled triggers that may be due now, read as ids (a read-only look)."""
    enabled = select(Trigger.id).where(Trigger.enabled.is_(True))
    found = list(session.scalars(enabled.where(Trigger.kind == "cron", Trigger.next_fire_at <= now)))
    found += session.scalars(enabled.where(Trigger.kind == "stream_window"))
    if watch.news(engine, session):  # a trigger without a cursor yet counts from its creation (due_arrivals)
        found += session.scalars(enabled.where(Trigger.kind == "dataset"))
    return sorted(found)


def run_once(engine: WorkflowEngine, watch: Watch | None = None) -> int:
    """One pass over the enabled triggers that may be due (every one without ``watch``); returns the number
    of runs started. With a watch, what may be due is looked up in a read-only transaction first, and a
    write transaction opens only when there is something to do: an idle pass takes no write lock."""
    started = 0
    ids = None
    if watch is not None:
        with engine.db.session(readonly=True) as session:
            ids = _due_ids(session, engine, watch, utcnow())
        if not ids:
            return 0
    with engine.db.session() as session:
        now = utcnow()
        for trigger in _due(session, engine, watch, now, ids):
            try:
                with session.begin_nested():
                    if trigger.kind == "cron":
                        started += triggers.due_cron(session, engine, trigger, now)
                    elif trigger.kind == "dataset":
                        started += triggers.due_arrivals(session, engine, trigger)
                    elif trigger.kind == "stream_window":
                        started += triggers.due_windows(session, engine, trigger)
                    elif trigger.kind == "drift":
                        started += due_drift(session, engine, trigger)
            except Exception as exc:  # one broken trigger must not stop the others
                log.warning("trigger %s (%s) failed: %s", trigger.id, trigger.name, exc)
    return started


def loop(engine: WorkflowEngine) -> Loop:
    """The trigger scheduler: a sweep on start, then a pass every ``INTERVAL_SECONDS``."""
    watch = Watch()

    def setup() -> None:
        nonlocal watch
        watch = Watch()
        sweep(engine)

    def step() -> int:
        return 0 if engine.stopping.is_set() else run_once(engine, watch)  # a stopped engine fires nothing

    return Loop("workflow-triggers", step, interval=INTERVAL_SECONDS, setup=setup)
