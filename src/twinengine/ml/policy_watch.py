"""Which retraining policies a pass of the loop must look at: those whose trigger may have fired since the
last pass, learnt from change counters and events instead of visiting every enabled policy each second.

A policy is looked at when it is new or changed (the ``policies`` change counter, bumped in the transaction
that writes it), when its twin changed (``twins``), when its schedule comes due (a heap of due times), when
its twin has a sealed buffer fill waiting (one query for every waiting fill), when a stream of its twin was
appended to (drift; the stream hub's append numbers), when its twin reported a value or recorded a forecast
(skill; one query for the twins with skill rules), and again on every pass while its model is training. An
idle pass reads the change counters and asks the hub for appends: a few small reads, whatever the number
of policies.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from twinengine.ml.models import POLICIES_TOPIC, RetrainPolicy
from twinengine.store.changes import changed_since
from twinengine.streams import buffers
from twinengine.streams.hub import StreamHub
from twinengine.twins.forecast_models import Forecast
from twinengine.twins.models import Twin

__all__ = ["POLICIES_TOPIC", "PolicyKey", "PolicyWatch"]

_TOPICS = (POLICIES_TOPIC, "twins")

PolicyKey = tuple[str, str]  # (twin id, model)


@dataclass
class _Known:
    due: datetime | None  # when its schedule comes due (None: it has none)
    buffer: bool
    drift: bool
    skill: bool


@dataclass
class PolicyWatch:
    """What the loop remembers between passes. ``due`` (read-only) names the policies to look at now;
    ``deferred`` takes back those a pass skipped because their model was training."""

    counters: dict[str, int] | None = None
    known: dict[PolicyKey, _Known] = field(default_factory=dict)
    appends: int = 0  # the stream hub's append number at the last pass
    stamps: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)  # skill twins' last change
    _schedule: list[tuple[datetime, PolicyKey]] = field(default_factory=list)  # (due time, policy), a heap
    _busy: set[PolicyKey] = field(default_factory=set)

    def due(self, session: Session, streams: Callable[[], StreamHub] | None, now: datetime) -> set[PolicyKey]:
        wanted, self._busy = self._busy, set()
        changes = changed_since(session, self.counters, _TOPICS)
        self.counters = changes.values
        if changes.reload:
            wanted |= self._load(session, None, now)
        elif changes.any:
            twins = set(changes.keys.get("twins", ()))
            keys = {tuple(k.split("/", 1)) for k in changes.keys.get(POLICIES_TOPIC, ()) if "/" in k}
            wanted |= self._load(session, {(t, m) for t, m in keys} | {k for k in self.known if k[0] in twins}, now)
        while self._schedule and self._schedule[0][0] <= now:
            at, key = heapq.heappop(self._schedule)
            known = self.known.get(key)
            if known is not None and known.due == at:  # else replaced by a newer due time
                wanted.add(key)
        wanted |= self._buffered(session)
        wanted |= self._appended(streams)
        wanted |= self._skilled(session)
        return wanted

    def deferred(self, keys: Iterable[PolicyKey]) -> None:
        self._busy.update(keys)

    def _load(self, session: Session, keys: set[PolicyKey] | None, now: datetime) -> set[PolicyKey]:
        """(Re)read the enabled policies named (every one when None); forget the others. Returns those found:
        new or changed, each is looked at once."""
        query = select(RetrainPolicy.twin_id, RetrainPolicy.model, RetrainPolicy.every_seconds,
                       RetrainPolicy.last_triggered_at, RetrainPolicy.buffer, RetrainPolicy.drift,
                       RetrainPolicy.skill).where(RetrainPolicy.enabled.is_(True))
        if keys is None:
            self.known.clear()
            self._schedule.clear()
        else:
            if not keys:
                return set()
            for key in keys:
                self.known.pop(key, None)
            query = query.where(tuple_(RetrainPolicy.twin_id, RetrainPolicy.model).in_(sorted(keys)))
        found = set()
        for row in session.execute(query):
            key = (row.twin_id, row.model)
            due = None
            if row.every_seconds:
                last = row.last_triggered_at
                due = now if last is None else last + timedelta(seconds=row.every_seconds)
                heapq.heappush(self._schedule, (due, key))
            self.known[key] = _Known(due, row.buffer is not None, row.drift is not None, row.skill is not None)
            found.add(key)
        return found

    def _buffered(self, session: Session) -> set[PolicyKey]:
        if not any(k.buffer for k in self.known.values()):
            return set()
        waiting = {fill.twin_id for fill in buffers.ready_fills(session)}
        return {key for key, k in self.known.items() if k.buffer and key[0] in waiting}

    def _appended(self, streams: Callable[[], StreamHub] | None) -> set[PolicyKey]:
        if streams is None:
            return set()
        keys, self.appends = streams().appended_since(self.appends)
        twins = {key.split("/", 1)[0] for key in keys}
        return {key for key, k in self.known.items() if k.drift and key[0] in twins} if twins else set()

    def _skilled(self, session: Session) -> set[PolicyKey]:
        """Skill rules are judged again when the twin reported a value or recorded a forecast: its head
        revision and newest forecast, read for all such twins in two queries."""
        twins = sorted({key[0] for key, k in self.known.items() if k.skill})
        if not twins:
            self.stamps.clear()
            return set()
        revisions = {row.id: row.head_revision
                     for row in session.execute(select(Twin.id, Twin.head_revision).where(Twin.id.in_(twins)))}
        newest = {row.twin_id: row.newest for row in session.execute(
            select(Forecast.twin_id, func.max(Forecast.recorded_at).label("newest"))
            .where(Forecast.twin_id.in_(twins)).group_by(Forecast.twin_id))}
        changed = set()
        stamps: dict[str, tuple[int, datetime | None]] = {}
        for twin_id in twins:
            stamp = stamps[twin_id] = (revisions.get(twin_id, -1), newest.get(twin_id))
            if self.stamps.get(twin_id) != stamp:
                changed.add(twin_id)
        self.stamps = stamps
        return {key for key, k in self.known.items() if k.skill and key[0] in changed}
