"""Rebuild twins' derived rows from their truth: ``state_heads`` (with their numeric copies) from the log,
``twin_parameters`` from the twin's parameters. The operator's repair for rows in doubt (a restore of one
table, a bug, a hand edit). Each twin is rebuilt in its own transaction, under the same row lock as a
write, so the engine may keep serving while it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import or_, select, update

from twinengine.errors import TwinNotFound
from twinengine.store.engine import Database
from twinengine.twins.models import Twin
from twinengine.twins.parameter_index import reindex_parameters
from twinengine.twins.state import rebuild_heads

__all__ = ["Rebuilt", "rebuild_state", "twins_to_rebuild"]


@dataclass(frozen=True)
class Rebuilt:
    twin_id: str
    name: str
    revisions: int
    drifted: bool  # the stored heads differed from the log, or the parameter index from the parameters


def twins_to_rebuild(db: Database, ref: str | None = None) -> list[tuple[str, str, int]]:
    """(id, name, head revision) of one twin (by id or name) or of all twins."""
    query = select(Twin.id, Twin.name, Twin.head_revision).order_by(Twin.name)
    if ref is not None:
        query = query.where(or_(Twin.id == ref, Twin.name == ref))
    with db.session(readonly=True) as session:
        rows = [(r.id, r.name, r.head_revision) for r in session.execute(query)]
    if ref is not None and not rows:
        raise TwinNotFound(f"no twin with id or name {ref!r}")
    return rows


def rebuild_state(db: Database, twins: list[tuple[str, str, int]],
                  on_done: Callable[[Rebuilt], object] = lambda _: None) -> list[Rebuilt]:
    done = []
    for twin_id, name, _ in twins:
        with db.session() as session:
            # Take the twin's row lock first, as a write does: no revision lands between delete and insert.
            head = session.execute(update(Twin).where(Twin.id == twin_id).values(head_revision=Twin.head_revision)
                                   .returning(Twin.head_revision)
                                   .execution_options(synchronize_session=False)).scalar_one_or_none()
            if head is None:
                continue  # deleted meanwhile
            drifted = rebuild_heads(session, twin_id)
            drifted = reindex_parameters(session, twin_id) or drifted
            result = Rebuilt(twin_id, name, head, drifted)
        done.append(result)
        on_done(result)
    return done
