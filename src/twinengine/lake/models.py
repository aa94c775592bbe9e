"""Tables of the data lake: storage endpoints, identifiers (files, datasets, containers), replicas,
replication rules with their locks, and transfers. Work for the daemons passes through these rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, JSONValue, LogId, UTCDateTime, utcnow

__all__ = ["Attachment", "CopyUse", "Did", "Endpoint", "Replica", "Rule", "RuleLock", "Transfer"]


class Endpoint(Base):
    """A storage location the lake writes to: a local folder or an S3 bucket (prefix), with attributes that
    rule expressions select on, a quota, switches, and an encrypted credential."""

    __tablename__ = "lake_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    protocol: Mapped[str] = mapped_column(String(16))
    location: Mapped[str] = mapped_column(String(1024))
    options: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    attributes: Mapped[dict[str, str]] = mapped_column(JSONValue, default=dict)
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    read: Mapped[bool] = mapped_column(Boolean, default=True)
    write: Mapped[bool] = mapped_column(Boolean, default=True)
    delete: Mapped[bool] = mapped_column(Boolean, default=True)
    credential_kind: Mapped[str | None] = mapped_column(String(16))
    credential_cipher: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Did(Base):
    """A data identifier ``scope:name``: a file (bytes with checksums), a dataset (a set of files) or a
    container (a set of datasets and containers). Datasets carry the space-time extent STAC items need."""

    __tablename__ = "lake_dids"
    __table_args__ = (UniqueConstraint("scope", "name"),
                      Index("ix_lake_dids_type_time", "type", "start_time", "end_time"))

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(16))
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    adler32: Mapped[str | None] = mapped_column(String(8))
    sha256: Mapped[str | None] = mapped_column(String(64))
    media_type: Mapped[str | None] = mapped_column(String(128))
    meta: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    geometry: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    west: Mapped[float | None] = mapped_column(Float)
    south: Mapped[float | None] = mapped_column(Float)
    east: Mapped[float | None] = mapped_column(Float)
    north: Mapped[float | None] = mapped_column(Float)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64))
    # a group-owned DID is its members' (lake.grants); auth.group_delete hands it on with the group
    owner_group: Mapped[str | None] = mapped_column(String(64), index=True,
                                                    info={"owner": "created_by", "kind": "lake"})
    # a twin-owned DID (data derived from the twin, registered for it) is read as the twin is (lake.grants); the
    # twin's id, not its name: a twin made later under the name gains nothing (no foreign key: the data outlives
    # the twin, readable by admins only then)
    owner_twin: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def did(self) -> str:
        return f"{self.scope}:{self.name}"


class Attachment(Base):
    """``child`` belongs to ``parent`` (a file to a dataset, a dataset or container to a container)."""

    __tablename__ = "lake_attachments"

    parent_id: Mapped[int] = mapped_column(ForeignKey("lake_dids.id", ondelete="CASCADE"), primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("lake_dids.id", ondelete="CASCADE"), primary_key=True,
                                          index=True)
    key: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Replica(Base):
    """A copy of a file on an endpoint. AVAILABLE only once its bytes are durable and their checksums matched.
    ``tombstone`` set means nothing needs it any more: the reaper deletes it after that time."""

    __tablename__ = "lake_replicas"
    __table_args__ = (UniqueConstraint("did_id", "endpoint_id"), Index("ix_lake_replicas_state", "state"))

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    did_id: Mapped[int] = mapped_column(ForeignKey("lake_dids.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("lake_endpoints.id", ondelete="RESTRICT"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(1024))
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    tombstone: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Rule(Base):
    """Keep ``copies`` replicas of every file under a DID on endpoints matching ``expression``."""

    __tablename__ = "lake_rules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    did_id: Mapped[int] = mapped_column(ForeignKey("lake_dids.id", ondelete="CASCADE"), index=True)
    copies: Mapped[int] = mapped_column(Integer)
    expression: Mapped[str] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(String(500))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dirty: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    locks_ok: Mapped[int] = mapped_column(Integer, default=0)
    locks_replicating: Mapped[int] = mapped_column(Integer, default=0)
    locks_stuck: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RuleLock(Base):
    """A rule's claim on one file's replica at one endpoint: the reaper never deletes a locked replica."""

    __tablename__ = "lake_locks"

    rule_id: Mapped[str] = mapped_column(ForeignKey("lake_rules.id", ondelete="CASCADE"), primary_key=True)
    did_id: Mapped[int] = mapped_column(ForeignKey("lake_dids.id", ondelete="CASCADE"), primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("lake_endpoints.id", ondelete="RESTRICT"),
                                             primary_key=True)
    state: Mapped[str] = mapped_column(String(16))

    __table_args__ = (Index("ix_lake_locks_replica", "did_id", "endpoint_id"),)


class Transfer(Base):
    """Copy one file to one endpoint from an available replica, verified at the destination; retried with
    backoff. A claimed transfer whose heartbeat stops (a killed worker) is claimed again."""

    __tablename__ = "lake_transfers"
    __table_args__ = (Index("ix_lake_transfers_queue", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    did_id: Mapped[int] = mapped_column(ForeignKey("lake_dids.id", ondelete="CASCADE"), index=True)
    dest_endpoint_id: Mapped[int] = mapped_column(ForeignKey("lake_endpoints.id", ondelete="RESTRICT"))
    source_endpoint_id: Mapped[int | None] = mapped_column(ForeignKey("lake_endpoints.id", ondelete="SET NULL"))
    rule_id: Mapped[str | None] = mapped_column(ForeignKey("lake_rules.id", ondelete="SET NULL"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CopyUse(Base):
    """How often the copies of another participant's data landed under one agreement were used here (``lake.terms``):
    a ``count`` in the agreement's policy limits these uses on this engine as the provider limits transfers."""

    __tablename__ = "lake_copy_uses"

    agreement: Mapped[str] = mapped_column(String(200), primary_key=True)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    last_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
