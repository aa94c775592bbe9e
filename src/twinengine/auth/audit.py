"""The audit log: every write attempt, who made it, what it was, when and how it ended."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from twinengine.auth.models import AuditEvent
from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.store.base import utcnow

__all__ = ["event", "list_events", "outcome_of", "record", "record_all"]


def outcome_of(status: int) -> str:
    """``success`` below 400; ``denied`` for 401/403; ``rejected`` for other 4xx; ``failed`` for 5xx."""
    if status < 400:
        return "success"
    if status in (401, 403):
        return "denied"
    return "rejected" if status < 500 else "failed"


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    role: str | None = None,
    status: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add one event in the caller's transaction. A Core insert: every write request records one, and the
    ORM's unit of work would cost more than the statement."""
    record_all(session, [event(actor=actor, action=action, target=target, outcome=outcome, role=role,
                               status=status, detail=detail)])


def event(*, actor: str, action: str, target: str, outcome: str, role: str | None = None, status: int | None = None,
          detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """One event's row, for ``record_all``."""
    return {"at": utcnow(), "actor": actor, "role": role, "action": action, "target": target[:400],
            "outcome": outcome, "status": status, "detail": detail}


def record_all(session: Session, events: list[dict[str, Any]]) -> None:
    """Add the ``event`` rows in the caller's transaction, in one statement (the writes of a group)."""
    if events:
        session.connection().execute(_INSERT, events)


_INSERT = insert(cast(Table, AuditEvent.__table__))


def list_events(
    session: Session,
    *,
    principal: Principal,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[AuditEvent], int]:
    """Newest first. Admins only."""
    require(principal, "audit.read")
    query = select(AuditEvent)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action.like(f"{action}%"))
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    if since:
        query = query.where(AuditEvent.at >= since)
    if until:
        query = query.where(AuditEvent.at < until)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), total
