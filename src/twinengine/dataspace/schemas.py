"""Request and answer models of the data space's management API (``/api/v1/dataspace``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from twinengine.catalog.manifest import IDENT_PATTERN
from twinengine.lake.schemas import DID_PATTERN
from twinengine.quality.spec import Flag

__all__ = [
    "ADDRESSEE",
    "AccessRead",
    "AgreementRead",
    "CatalogQuery",
    "Identity",
    "Landing",
    "NegotiationCreate",
    "NegotiationRead",
    "OfferCreate",
    "OfferRead",
    "OfferTerms",
    "OfferedStream",
    "ParticipantCreate",
    "ParticipantRead",
    "ProposalCreate",
    "TransferCreate",
    "TransferRead",
]

_NAMES = Field(default=None, max_length=50)
ADDRESSEE = r"^(group:)?[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"  # a user name, or group:NAME, on the consumer's engine


class OfferTerms(BaseModel):
    """The usual terms of an offer, made into one ODRL permission (``dataspace.offers.build_policy``)."""

    model_config = ConfigDict(extra="forbid")

    until: datetime | None = Field(default=None, description="dateTime: no negotiation, transfer or access after")
    days: int | None = Field(default=None, ge=1, le=36500, description="elapsedTime: days after the agreement")
    count: int | None = Field(default=None, ge=1, le=1_000_000, description="count: transfers under one agreement, "
                                                                         "and uses of the consumer's copies of them")
    purposes: list[str] | None = _NAMES
    participants: list[str] | None = _NAMES
    organisations: list[str] | None = _NAMES
    groups: list[str] | None = _NAMES
    spatial: list[str] | None = _NAMES
    attribution: bool = Field(default=False, description="an obligation to attribute, recorded with the data")
    delete_after: int | None = Field(default=None, ge=1, le=36500, description="an obligation to delete the "
                                     "consumer's copy this many days after the agreement (its engine does)")


class OfferedStream(BaseModel):
    """A twin's stream whose history is offered: each transfer serves it as it stood when the transfer was
    accepted, as one Arrow IPC file of the stream's declared fields."""

    model_config = ConfigDict(extra="forbid")

    twin: str = Field(min_length=1, max_length=64, description="The twin (name or id).")
    stream: str = Field(pattern=IDENT_PATTERN, max_length=64, description="One of the twin's streams.")
    live: bool = Field(default=False, description="Pushed as it grows (HttpData-PUSH), part by part, until the "
                                                  "transfer is suspended or ended; a pull still gets a snapshot.")
    since: AwareDatetime | None = Field(default=None, description="A window: only readings at or after this time "
                                                                  "(the stream's time field).")
    until: AwareDatetime | None = Field(default=None, description="A window: only readings before this time (not "
                                                                  "with live).")
    last: timedelta | None = Field(default=None, description="A rolling window: only readings of this long before "
                                                             "each transfer starts (ISO 8601, P7D, or seconds); not "
                                                             "with since or until.")
    key: str | None = Field(default=None, min_length=1, max_length=200,
                            description="One source only: the readings whose key field (the stream's ``key``, "
                                        "a station id) has this value.")
    keys: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=200,
        description="Several sources (not with key): the readings whose key field has one of these values (the "
                    "stations of one network, in one offer).")
    quality: list[Flag] | None = Field(
        default=None, min_length=1, max_length=3, description="Only the readings the stream's quality checks "
                                                              "flagged so (good; good and suspect).")
    fields: list[Annotated[str, Field(pattern=IDENT_PATTERN, max_length=64)]] | None = Field(
        default=None, min_length=1, max_length=64,
        description="Only these of the stream's declared fields (its time field always): the others (a sensor's "
                    "exact place, an operator's note) stay with the provider.")


class OfferCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    did: str | None = Field(default=None, pattern=DID_PATTERN, max_length=500,
                            description="The lake file or dataset offered (or stream).")
    stream: OfferedStream | None = Field(default=None, description="A twin's stream history offered (or did).")
    run: str | None = Field(default=None, min_length=1, max_length=64,
                            description="A finished workflow run whose results are offered (or did).")
    collection: str | None = Field(default=None, min_length=3, max_length=200,
                                   description="An EDR collection (as listed at /edr/collections) whose queries "
                                               "are offered (or did).")
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    keywords: list[str] = Field(default_factory=list, max_length=20)
    terms: OfferTerms | None = None
    policy: dict[str, Any] | None = Field(default=None, description="An ODRL policy (permission, prohibition, "
                                          "obligation) instead of terms.")
    manual: bool = Field(default=False, description="The steward agrees, finalizes and starts by hand.")


class CounterOffer(BaseModel):
    """A counter-offer, with a negotiation's ``offer`` step (the provider's steward) or ``request`` step (the
    consumer): the usual terms or an ODRL policy, instead of the last offer's rules."""

    model_config = ConfigDict(extra="forbid")

    terms: OfferTerms | None = None
    policy: dict[str, Any] | None = Field(default=None, description="An ODRL policy (permission, prohibition, "
                                          "obligation) instead of terms.")


class OfferRead(BaseModel):
    id: str
    dataset_id: str
    did: str  # the lake file or dataset; stream:TWIN/STREAM for a stream's history; results:RUN for a run's
    stream: str | None = None
    run: str | None = None
    live: bool = False
    collection: str | None = None  # an EDR collection offered for queries (``did``: its dataset)
    window: dict[str, Any] | None = None  # a stream offer's window: since, until (ISO 8601), last (seconds)
    title: str
    description: str | None
    keywords: list[str]
    policy: dict[str, Any]
    manual: bool
    owner: str
    owner_group: str | None
    owner_twin: str | None
    created_at: datetime
    withdrawn_at: datetime | None


class ParticipantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    did: str = Field(min_length=9, max_length=300)
    title: str | None = Field(default=None, max_length=200)
    organisation: str | None = Field(default=None, max_length=200)
    groups: list[str] = Field(default_factory=list, max_length=50)
    spatial: list[str] = Field(default_factory=list, max_length=50)
    callback: str | None = Field(default=None, max_length=500, description="Its protocol callback address (on "
                                 "its did:web's origin): where this provider's proposals to it go; none: the one it "
                                 "gave in its own requests, else <its DSP base>/callback.")


class VouchedRead(BaseModel):
    """What the data space's shared identity provider last said about a participant (``dataspace.vouching``)."""

    issuer: str
    organisation: str | None
    groups: list[str]
    vouched_at: datetime
    good_until: datetime
    current: bool = Field(description="Whether it counts now (until good_until).")


class ParticipantRead(ParticipantCreate):
    added_by: str | None = Field(default=None, description="Who recorded it in the register (None: the register "
                                                           "does not know it; only the identity provider vouched).")
    created_at: datetime | None = None
    registered: bool = True
    vouched: VouchedRead | None = None


class CatalogQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2048, description="The provider engine's URL.")


class Landing(BaseModel):
    """Where pulled (or pushed) data lands in this engine's lake."""

    model_config = ConfigDict(extra="forbid")

    did: str = Field(pattern=DID_PATTERN, max_length=500, description="The dataset it lands as (scope:name).")
    twin: str | None = Field(default=None, max_length=64, description="The twin whose data it is.")
    endpoint: str | None = Field(default=None, max_length=64, description="The lake endpoint (default: the first "
                                                                          "writable one).")
    format: Literal["HttpData-PULL", "HttpData-PUSH", "AmazonS3-PUSH"] = Field(
        default="HttpData-PULL", description="Pulled by this engine from the provider's data address, pushed by "
                                             "the provider to this engine's push address, or written by the "
                                             "provider into the S3 bucket of ``endpoint`` (one that accepts "
                                             "pushes).")


class NegotiationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2048, description="The provider engine's URL.")
    dataset: str = Field(min_length=1, max_length=200, description="The dataset's id in its catalog.")
    offer: str | None = Field(default=None, max_length=200, description="The offer's id (default: its first).")
    purpose: str | None = Field(default=None, max_length=200)
    land: Landing | None = Field(default=None, description="Transfer once finalized, landing here.")
    manual: bool = Field(default=False, description="Verify the provider's agreement by hand (a step of yours).")


class NegotiationRead(BaseModel):
    id: int
    role: str
    state: str
    provider_pid: str | None
    consumer_pid: str | None
    peer: str
    dataset_id: str | None
    offer_id: str | None
    offer: dict[str, Any] | None = None  # the latest offer: the catalog's, or a counter-offer
    offered_by: str | None = None  # who made it: provider or consumer
    agreement_id: str | None
    purpose: str | None
    owner: str  # "" on a provider's proposal nobody has taken up yet
    pending: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    addressee: str | None = None  # a provider's proposal: the user or group:NAME it is for (None: the admins)
    callback: str | None = Field(default=None, description="A provider's proposal: the consumer's callback address "
                                 "its messages go to.")
    callback_source: str | None = Field(
        default=None, description="A provider's proposal: where that address came from: the participant register "
        "(configured), the participant's own requests (given), or <its DSP base>/callback (assumed).")


class ProposalCreate(BaseModel):
    """An offer of yours proposed to a participant on another engine: the provider starts the negotiation."""

    # url, participant or both: said in the schema, as the engine refuses neither (422 naming url)
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["url"], "properties": {"url": {"type": "string"}}},
        {"required": ["participant"], "properties": {"participant": {"type": "string"}}}]})

    url: str | None = Field(default=None, min_length=8, max_length=2048, description="The other engine's URL "
                            "(none: the one its participant id names).")
    participant: str | None = Field(default=None, max_length=300, description="Its participant id (did:web), "
                                    "checked against the one the engine at url names; without url, it names the "
                                    "participant alone.")
    addressee: str | None = Field(default=None, pattern=ADDRESSEE, description="Who on the other engine it is for: "
                                  "a user name, or group:NAME; none: that engine's admins.")
    purpose: str | None = Field(default=None, max_length=200, description="The purpose it is proposed for (judged "
                                "by the offer's purpose constraint).")


class AgreementRead(BaseModel):
    id: str
    role: str
    provider: str
    consumer: str
    dataset_id: str
    offer_id: str
    policy: dict[str, Any]
    purpose: str | None
    owner: str
    signed_at: datetime
    finalized: bool
    transfers: int
    revoked_at: datetime | None
    revoked_by: str | None


class TransferCreate(Landing):
    agreement: str = Field(min_length=1, max_length=200)
    land_data: bool = Field(default=True, description="Pull the data into the lake (else keep the address).")


class TransferRead(BaseModel):
    id: int
    role: str
    state: str
    provider_pid: str | None
    consumer_pid: str | None
    agreement_id: str
    format: str
    peer: str
    landed: str | None
    files: list[dict[str, Any]] | None
    bytes: int
    owner: str
    snapshot: str | None = None  # provider side, under a stream offer: the lake file of the history it serves
    delete_by: datetime | None = None  # consumer side: when the policy's delete duty wants the copy gone
    deleted_at: datetime | None = None  # consumer side: when this engine deleted it
    pending: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime


class AccessRead(BaseModel):
    id: int
    agreement_id: str | None
    transfer_id: int | None
    participant: str | None
    file: str | None
    bytes: int
    outcome: str
    reason: str | None
    at: datetime


class Identity(BaseModel):
    did: str
    url: str
    base: str
    callback: str
