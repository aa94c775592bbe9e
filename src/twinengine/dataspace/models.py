"""Tables of the data space: participants the provider knows, offers, the two state machines (negotiations and
transfer processes, in either role), agreements and every data access under one.

A process row also holds the one message its side owes the other (``pending``): the courier
(``dataspace.courier``) sends it outside any transaction and applies its answer in a short one, so a message is
never lost by a restart and never sent while a write lock is held.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, JSONValue, UTCDateTime, utcnow

__all__ = ["Access", "Agreement", "Negotiation", "Offer", "Participant", "TransferProcess", "VouchedClaims"]


class Participant(Base):
    """Another engine (or connector) the provider knows by its participant id (a ``did:web``), and what its
    policies may ask of it: the organisation, the groups and the region (``spatial``) it speaks for."""

    __tablename__ = "ds_participants"

    did: Mapped[str] = mapped_column(String(300), primary_key=True)
    title: Mapped[str | None] = mapped_column(String(200))
    organisation: Mapped[str | None] = mapped_column(String(200))
    groups: Mapped[list[str]] = mapped_column(JSONValue, default=list)
    spatial: Mapped[list[str]] = mapped_column(JSONValue, default=list)
    added_by: Mapped[str] = mapped_column(String(64))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # where its protocol callbacks go when this provider proposes it an offer (None: what it gave, else assumed)
    callback: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class VouchedClaims(Base):
    """What the data space's shared identity provider last said about a participant (``dataspace.vouching``):
    the organisation and groups its token for the participant's service named, and until when that counts."""

    __tablename__ = "ds_vouched_claims"

    did: Mapped[str] = mapped_column(String(300), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))  # the service's subject at the provider
    organisation: Mapped[str | None] = mapped_column(String(200))
    groups: Mapped[list[str]] = mapped_column(JSONValue, default=list)
    vouched_at: Mapped[datetime] = mapped_column(UTCDateTime())
    good_until: Mapped[datetime] = mapped_column(UTCDateTime())


class Offer(Base):
    """A lake file or dataset, a twin's stream history or a run's results, offered to the data space under an
    ODRL policy (``policy``: the offer's JSON text, kept exactly as offered: an agreement carries these bytes)."""

    __tablename__ = "ds_offers"
    __table_args__ = (Index("ix_ds_offers_dataset", "dataset_id", unique=True),)

    id: Mapped[str] = mapped_column(String(80), primary_key=True)  # urn:uuid:...: the ODRL offer's @id
    dataset_id: Mapped[str] = mapped_column(String(80))  # urn:uuid:...: the DCAT dataset's @id
    did: Mapped[str] = mapped_column(String(500))  # scope:name of the lake file or dataset; stream:TWIN/STREAM
    stream: Mapped[str | None] = mapped_column(String(64))  # a stream offer: the stream of twin ``owner_twin``
    run: Mapped[str | None] = mapped_column(String(64))  # a run's results: the run (``did``: results:<run id>)
    live: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # pushed as it grows
    collection: Mapped[str | None] = mapped_column(String(200))  # an EDR collection, queried (``did``: its dataset)
    window: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)  # a stream offer's: since, until (ISO), last (s)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    keywords: Mapped[list[str]] = mapped_column(JSONValue, default=list)
    policy: Mapped[str] = mapped_column(Text)
    manual: Mapped[bool] = mapped_column(Boolean, default=False)  # the steward takes each provider step
    owner: Mapped[str] = mapped_column(String(64))
    owner_group: Mapped[str | None] = mapped_column(String(64))
    owner_twin: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class _Pending:
    """What a process owes the other side, and the courier's claim on it."""

    pending: Mapped[str | None] = mapped_column(String(30))
    pending_detail: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Negotiation(_Pending, Base):
    """A contract negotiation as one side sees it (``role``: provider or consumer)."""

    __tablename__ = "ds_negotiations"
    __table_args__ = (UniqueConstraint("role", "provider_pid"), UniqueConstraint("role", "consumer_pid"),
                      Index("ix_ds_negotiations_due", "due_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    role: Mapped[str] = mapped_column(String(10))
    provider_pid: Mapped[str | None] = mapped_column(String(200))
    consumer_pid: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20))
    peer: Mapped[str] = mapped_column(String(300))  # the other side's participant id
    peer_base: Mapped[str] = mapped_column(String(500))  # its DSP base (provider) or callback address (consumer)
    dataset_id: Mapped[str | None] = mapped_column(String(200))
    offer_id: Mapped[str | None] = mapped_column(String(200))
    offer: Mapped[str | None] = mapped_column(Text)  # the latest offer's JSON text
    offered_by: Mapped[str | None] = mapped_column(String(10))  # who made the latest offer
    agreement_id: Mapped[str | None] = mapped_column(String(200))
    purpose: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(64))  # the local identity: who asked (consumer), the offer's (provider);
    # "" on a provider's proposal nobody here has taken up yet
    addressee: Mapped[str | None] = mapped_column(String(100))  # a proposal's: a user, group:NAME, None the admins
    # a provider's proposal: where ``peer_base`` (the consumer's callback address) came from: "configured" (the
    # register), "given" (the participant's own messages), "assumed" (<its DSP base>/callback); None otherwise
    callback_source: Mapped[str | None] = mapped_column(String(20))
    then_transfer: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)  # consumer: a transfer once finalized
    manual: Mapped[bool] = mapped_column(Boolean, default=False)  # consumer: verify by hand, not on receipt
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Agreement(Base):
    """A contract agreement (``policy``: the agreement's JSON text as sent; its rules are the offer's, byte for
    byte). Both sides keep one; the provider may revoke its own."""

    __tablename__ = "ds_agreements"
    __table_args__ = (UniqueConstraint("id", "role"),)

    key: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10))
    negotiation_id: Mapped[int] = mapped_column(ForeignKey("ds_negotiations.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(300))
    consumer: Mapped[str] = mapped_column(String(300))
    dataset_id: Mapped[str] = mapped_column(String(200))
    offer_id: Mapped[str] = mapped_column(String(200))
    policy: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(64))
    peer_base: Mapped[str] = mapped_column(String(500))  # consumer side: the provider's DSP base
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finalized: Mapped[bool] = mapped_column(Boolean, default=False)
    transfers: Mapped[int] = mapped_column(Integer, default=0)  # provider side: transfers started under it
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(64))


class TransferProcess(_Pending, Base):
    """A transfer process as one side sees it; the provider keeps the data address's token (its SHA-256 only)."""

    __tablename__ = "ds_transfers"
    __table_args__ = (UniqueConstraint("role", "provider_pid"), UniqueConstraint("role", "consumer_pid"),
                      Index("ix_ds_transfers_due", "due_at"), Index("ix_ds_transfers_token", "token_hash"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    role: Mapped[str] = mapped_column(String(10))
    provider_pid: Mapped[str | None] = mapped_column(String(200))
    consumer_pid: Mapped[str | None] = mapped_column(String(200))
    agreement_id: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20))
    format: Mapped[str] = mapped_column(String(100))
    peer: Mapped[str] = mapped_column(String(300))
    peer_base: Mapped[str] = mapped_column(String(500))
    data_address: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)  # consumer side: the one received
    token_hash: Mapped[str | None] = mapped_column(String(64))
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    target: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)  # consumer side: where the data lands
    landed: Mapped[str | None] = mapped_column(String(500))  # consumer side: the lake dataset it landed as
    snapshot: Mapped[str | None] = mapped_column(String(500))  # provider side: the stream history it serves
    delete_by: Mapped[datetime | None] = mapped_column(UTCDateTime())  # consumer side: the policy's delete duty
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # consumer side: when the copy was deleted
    files: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONValue)  # name, bytes, sha256 of each file
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    owner: Mapped[str] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Access(Base):
    """One access to the data plane under an agreement (the provider's usage record): allowed or refused."""

    __tablename__ = "ds_accesses"
    __table_args__ = (Index("ix_ds_accesses_agreement", "agreement_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agreement_id: Mapped[str | None] = mapped_column(String(200))
    transfer_id: Mapped[int | None] = mapped_column(Integer)
    participant: Mapped[str | None] = mapped_column(String(300))
    file: Mapped[str | None] = mapped_column(String(500))
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    outcome: Mapped[str] = mapped_column(String(20))  # served, refused
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
