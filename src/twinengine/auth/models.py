"""Tables of the auth package: identities, the tokens issued to them, and the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, JSONValue, LogId, UTCDateTime, utcnow

__all__ = ["ApiToken", "AuditEvent", "Identity", "new_identity_id"]


def new_identity_id() -> str:
    return uuid.uuid4().hex


class Identity(Base):
    """Someone (or some service) the engine knows by name; owns twins, receives grants. ``id`` is never
    reused: a name deleted and created again is another identity, and the old one's tokens stay dead."""

    __tablename__ = "identities"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Nullable in the table only because SQLite adds columns no other way; every row has one (0019).
    id: Mapped[str | None] = mapped_column(String(32), unique=True, index=True, default=new_identity_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(Base):
    """A token the built-in issuer signed; kept by ``jti`` so it can be listed and revoked."""

    __tablename__ = "api_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    identity: Mapped[str] = mapped_column(ForeignKey("identities.name", ondelete="CASCADE"), index=True)
    identity_id: Mapped[str | None] = mapped_column(String(32))  # the identity's id when the token was issued
    role: Mapped[str] = mapped_column(String(16))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(String(200))


class AuditEvent(Base):
    """One write attempt: who, what, when and how it ended. Append-only."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"), Index("ix_audit_events_actor_at", "actor", "at"))

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(80))
    target: Mapped[str] = mapped_column(String(400))
    outcome: Mapped[str] = mapped_column(String(16))
    status: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
