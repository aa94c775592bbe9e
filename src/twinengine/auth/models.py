"""Tables of the auth package: identities, the tokens issued to them, and the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, JSONValue, LogId, UTCDateTime, utcnow

__all__ = ["ApiToken", "AuditEvent", "Group", "GroupMembership", "Identity", "SigningKey", "new_identity_id"]


def new_identity_id() -> str:
    return uuid.uuid4().hex


class Identity(Base):
    """Someone (or some service) the engine knows by name; owns twins, receives grants. ``id`` is never
    reused: a name deleted and created again is another identity, and the old one's tokens stay dead."""

    __tablename__ = "identities"
    __table_args__ = (Index("ux_identities_issuer_subject", "issuer", "subject", unique=True),)

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Nullable in the table only because SQLite adds columns no other way; every row has one (0019).
    id: Mapped[str | None] = mapped_column(String(32), unique=True, index=True, default=new_identity_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Who disabled it and when (migration 0033): an admin's name, or ``provider:<id>`` where the identity's
    # provider disowned the person (``auth.liveness``): such a hold ends itself once the provider vouches for
    # them again; an admin's lasts until an admin enables the identity. None: disabled before it was recorded.
    disabled_by: Mapped[str | None] = mapped_column(String(80))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # An identity from an OpenID provider is keyed by issuer and subject (0024); the name is made once from them.
    issuer: Mapped[str | None] = mapped_column(String(400))
    subject: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    last_sign_in: Mapped[datetime | None] = mapped_column(UTCDateTime())


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
    # A scoped token (auth/scopes.py): its scopes, the twins it is for (None: any), and the token it was made
    # with, which must stay valid for it to work (migration 0022). All None: a token with its role's power.
    scopes: Mapped[list[str] | None] = mapped_column(JSONValue)
    twins: Mapped[list[str] | None] = mapped_column(JSONValue)
    parent_jti: Mapped[str | None] = mapped_column(String(64))
    # The ids of ``twins`` when it was made (migration 0033): the limit itself, so a twin made later under one of
    # those names is not reached; ``twins`` keeps the names to show.
    twin_ids: Mapped[list[str] | None] = mapped_column(JSONValue)
    # The OpenID provider's access token (its ``jti``) this one was made from, if any (migration 0033): when the
    # provider says that token is no longer active, what was made from it is revoked (``auth.liveness.hold``).
    # A portal session opened by the provider's sign-in holds ``sid:<the provider's session id>`` instead: the
    # provider's back-channel logout names that session (``auth.backchannel``).
    provider_jti: Mapped[str | None] = mapped_column(String(255), index=True)
    audience: Mapped[str | None] = mapped_column(String(200))  # a token exchanged for a site (delegation/exchange.py)


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


class Group(Base):
    """A named set of identities that can own twins and receive grants. Its own namespace: a group called
    like an identity is not that identity (the rules never compare one with the other)."""

    __tablename__ = "groups"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64))
    # holds app.publish: its members publish the group's apps whatever their role (auth.policy)
    publish: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class GroupMembership(Base):
    """One identity in one group, as one source asserts it: ``local`` (an admin) or ``provider:<id>`` (an
    identity provider's claims at sign-in). Each source replaces only its own rows."""

    __tablename__ = "group_memberships"

    group: Mapped[str] = mapped_column(ForeignKey("groups.name", ondelete="CASCADE"), primary_key=True)
    identity: Mapped[str] = mapped_column(ForeignKey("identities.name", ondelete="CASCADE"), primary_key=True,
                                          index=True)
    source: Mapped[str] = mapped_column(String(80), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SigningKey(Base):
    """One generation of the built-in issuer's signing keys. The highest promoted generation signs; the one
    after it is published as next; older ones verify tokens with an expiry until it passes. Only the public
    half is here: private keys stay in the data dir (``keys/<kid>.pem``, mode 0600)."""

    __tablename__ = "signing_keys"

    generation: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    public_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
