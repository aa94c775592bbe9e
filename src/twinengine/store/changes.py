"""Change counters: what background loops read to learn that twins, app versions or stream bindings changed.

Every flush that adds, changes or deletes a watched row bumps its topic's counter and logs the changed keys
under the new value, in the same transaction. The bump is an UPDATE of one row, which PostgreSQL locks
until commit, so values are gapless and committed in order: a reader that remembers the last value it saw
misses nothing. An idle loop reads one small table (``changed_since``) and does nothing more; a busy one
loads only the keys logged after its value. The log keeps the last ``KEEP`` values of each topic; a reader
further behind reloads everything (``Changes.reload``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import BigInteger, String, Table, bindparam, delete, event, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from twinengine.store.base import Base, upsert

__all__ = ["EVERYTHING", "ChangeCounter", "ChangeLog", "Changes", "bump", "changed_since", "counters", "watch"]

KEEP = 10_000  # log values kept per topic; pruned every ``_PRUNE_EVERY`` bumps


class ChangeCounter(Base):
    """How many committed flushes changed a topic's rows."""

    __tablename__ = "change_counters"

    topic: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class ChangeLog(Base):
    """A key (a row's id) changed in the flush that made ``topic``'s counter ``value``."""

    __tablename__ = "change_log"

    topic: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)


_PRUNE_EVERY = 1000
_WATCHED: dict[type[Any], tuple[str, Any]] = {}  # mapped class -> (topic, key of an instance)


def watch(cls: type[Any], topic: str, key: Any) -> None:
    """Count changes of ``cls`` rows under ``topic``; ``key(instance)`` names the changed row in the log."""
    _WATCHED[cls] = (topic, key)


EVERYTHING = "*"  # the key a bulk change logs: readers reload the whole topic


def bump(session: Session, topic: str, keys: set[str] | None = None) -> int:
    """Bump ``topic`` and log ``keys`` under the new value (in the caller's transaction); no keys: a bulk
    change (rows written with Core statements), after which readers reload everything."""
    keys = {EVERYTHING} if keys is None else keys
    value = session.execute(_bump_statement(session.get_bind().dialect.name), {"topic": topic}).scalar_one()
    if keys:
        session.execute(insert(ChangeLog), [{"topic": topic, "value": value, "key": k[:64]} for k in sorted(keys)])
    if value % _PRUNE_EVERY == 0:
        session.execute(delete(ChangeLog).where(ChangeLog.topic == topic, ChangeLog.value <= value - KEEP))
    return int(value)


_BUMPS: dict[str, Any] = {}


def _bump_statement(dialect: str) -> Any:
    """Add one to a topic's counter, starting it at 1 when no migration seeded it (an upsert, so two first
    bumps of a new topic cannot collide); it locks the row until commit like an UPDATE. Built once per dialect."""
    statement = _BUMPS.get(dialect)
    if statement is None:
        table = cast(Table, ChangeCounter.__table__)
        statement = _BUMPS[dialect] = (
            upsert(dialect, table).values(topic=bindparam("topic"), value=1)
            .on_conflict_do_update(index_elements=["topic"], set_={"value": table.c.value + 1})
            .returning(table.c.value))
    return statement


@event.listens_for(Session, "before_flush")
def _count(session: Session, _context: Any, _instances: Any) -> None:
    if not _WATCHED:
        return
    changed: dict[str, set[str]] = defaultdict(set)
    for obj in (*session.new, *session.deleted, *session.dirty):
        watched = _WATCHED.get(type(obj))
        if watched is not None and (obj in session.new or obj in session.deleted or session.is_modified(obj)):
            topic, key = watched
            changed[topic].add(str(key(obj)))
    for topic, keys in sorted(changed.items()):
        bump(session, topic, keys)


def counters(session: Session) -> dict[str, int]:
    """Every topic's current value: one read of a table of a few rows."""
    return {topic: int(value) for topic, value in session.execute(select(ChangeCounter.topic, ChangeCounter.value))}


@dataclass
class Changes:
    """What changed since a reader's last look: per topic, the changed keys; ``reload`` when the reader is
    new or fell behind the log (then it must look at everything)."""

    values: dict[str, int]
    keys: dict[str, set[str]] = field(default_factory=dict)
    reload: bool = False

    @property
    def any(self) -> bool:
        return self.reload or any(self.keys.values())


def changed_since(session: Session, seen: dict[str, int] | None, topics: tuple[str, ...]) -> Changes:
    """Compare ``topics`` with the values a reader saw: one query when nothing changed, one more per topic
    that did."""
    now = counters(session)
    values = {t: now.get(t, 0) for t in topics}
    if seen is None:
        return Changes(values, reload=True)
    result = Changes(values)
    for topic in topics:
        before, after = seen.get(topic, 0), values[topic]
        if after == before:
            continue
        if after - before > KEEP - _PRUNE_EVERY or after < before:
            result.reload = True
            continue
        rows = session.scalars(select(ChangeLog.key).where(ChangeLog.topic == topic, ChangeLog.value > before,
                                                           ChangeLog.value <= after))
        result.keys[topic] = set(rows)
        if EVERYTHING in result.keys[topic]:
            result.reload = True
    return result
