"""The data space for this engine's people (``/api/v1/dataspace``): offers and the participants a provider knows;
another participant's catalog, negotiations, agreements, transfers and the provider's usage records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import Depends, Path, Query, Request, Response, status

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep, authorized
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router
from twinengine.auth import odrl
from twinengine.auth.principal import Principal
from twinengine.dataspace import offers, service
from twinengine.dataspace.models import Agreement, Negotiation, Offer, Participant, TransferProcess, VouchedClaims
from twinengine.dataspace.protocol import PUSH, S3_PUSH
from twinengine.dataspace.schemas import (
    AccessRead,
    AgreementRead,
    CatalogQuery,
    CounterOffer,
    Identity,
    NegotiationCreate,
    NegotiationRead,
    OfferCreate,
    OfferRead,
    ParticipantCreate,
    ParticipantRead,
    ProposalCreate,
    TransferCreate,
    TransferRead,
    VouchedRead,
)
from twinengine.errors import TwinEngineError, ValidationFailed
from twinengine.runtime import Runtime
from twinengine.types import INT32_MAX

__all__ = ["router"]

router = api_router("/dataspace", tag="dataspace")
OfferId = Annotated[str, Path(max_length=80, description="The offer's id (urn:uuid:...).")]
AgreementId = Annotated[str, Path(max_length=200, description="The agreement's id.")]
RoleQuery = Annotated[Literal["provider", "consumer"] | None, Query(description="This engine's role in it.")]
_CONSUME = [Depends(authorized("dataspace.consume"))]
_OFFER = [Depends(authorized("dataspace.offer.create"))]
_PARTICIPANTS = [Depends(authorized("dataspace.participant.manage"))]


def offer_read(o: Offer) -> OfferRead:
    return OfferRead(id=o.id, dataset_id=o.dataset_id, did=o.did, title=o.title, description=o.description,
                     keywords=list(o.keywords or []), policy=odrl.json_of(o.policy), manual=o.manual, owner=o.owner,
                     owner_group=o.owner_group, owner_twin=o.owner_twin, created_at=o.created_at,
                     withdrawn_at=o.withdrawn_at, stream=o.stream, run=o.run, live=bool(o.live),
                     collection=o.collection, window=o.window)


def negotiation_read(n: Negotiation) -> NegotiationRead:
    return NegotiationRead(id=n.id, role=n.role, state=n.state, provider_pid=n.provider_pid,
                           consumer_pid=n.consumer_pid, peer=n.peer, dataset_id=n.dataset_id, offer_id=n.offer_id,
                           offer=odrl.json_of(n.offer) if n.offer else None, offered_by=n.offered_by,
                           agreement_id=n.agreement_id, purpose=n.purpose, owner=n.owner, pending=n.pending,
                           error=n.error, created_at=n.created_at, updated_at=n.updated_at, addressee=n.addressee,
                           callback=n.peer_base if n.callback_source else None,
                           callback_source=n.callback_source)


def agreement_read(a: Agreement) -> AgreementRead:
    return AgreementRead(id=a.id, role=a.role, provider=a.provider, consumer=a.consumer, dataset_id=a.dataset_id,
                         offer_id=a.offer_id, policy=odrl.json_of(a.policy), purpose=a.purpose, owner=a.owner,
                         signed_at=a.signed_at, finalized=a.finalized, transfers=a.transfers,
                         revoked_at=a.revoked_at, revoked_by=a.revoked_by)


def transfer_read(t: TransferProcess) -> TransferRead:
    return TransferRead(id=t.id, role=t.role, state=t.state, provider_pid=t.provider_pid, consumer_pid=t.consumer_pid,
                        agreement_id=t.agreement_id, format=t.format, peer=t.peer, landed=t.landed, files=t.files,
                        bytes=t.bytes, owner=t.owner, pending=t.pending, error=t.error, created_at=t.created_at,
                        updated_at=t.updated_at, snapshot=t.snapshot, delete_by=t.delete_by, deleted_at=t.deleted_at)


def participant_read(p: Participant | None, said: VouchedClaims | None = None,
                     did: str | None = None) -> ParticipantRead:
    vouched = None if said is None else VouchedRead(
        issuer=said.issuer, organisation=said.organisation, groups=list(said.groups or []), vouched_at=said.vouched_at,
        good_until=said.good_until, current=said.good_until > datetime.now(UTC))
    if p is None:
        return ParticipantRead(did=did or (said.did if said else ""), registered=False, vouched=vouched)
    return ParticipantRead(did=p.did, title=p.title, organisation=p.organisation, groups=list(p.groups or []),
                           spatial=list(p.spatial or []), callback=p.callback, added_by=p.added_by,
                           created_at=p.created_at, vouched=vouched)


@router.get("/identity", name="identity", summary="This engine's participant id and protocol addresses",
            dependencies=_CONSUME)
@acts("dataspace.consume")
def identity(runtime: RuntimeDep, principal: PrincipalDep) -> Identity:
    c = runtime.dataspace
    return Identity(did=c.did, url=c.url, base=c.base, callback=c.callback)


# -- offers and participants (provider) --------------------------------------------------------------------------

@router.post("/offers", name="offer_create", status_code=status.HTTP_201_CREATED, dependencies=_OFFER,
             summary="Offer a lake file or dataset, a twin's stream history, a run's results or an EDR "
                     "collection's queries under an ODRL policy")
@acts("dataspace.offer.create")
async def offer_create(body: OfferCreate, runtime: RuntimeDep, principal: PrincipalDep) -> OfferRead:
    policy = body.policy
    if policy is None and body.terms is not None:
        policy = offers.build_policy(**body.terms.model_dump())
    stream = (body.stream.twin, body.stream.stream) if body.stream is not None else None
    window = offers.stream_window(since=body.stream.since, until=body.stream.until, last=body.stream.last,
                                  live=body.stream.live, key=body.stream.key, keys=body.stream.keys,
                                  quality=body.stream.quality,
                                  fields=body.stream.fields) if body.stream is not None else None
    if body.collection is not None:  # read as the EDR API reads it, outside the unit of work that offers it
        await anyio.to_thread.run_sync(_edr_reads, runtime, principal, body.collection)

    def work() -> OfferRead:
        with runtime.db.session() as session:
            return offer_read(offers.create_offer(
                session, principal=principal, did=body.did, title=body.title, description=body.description,
                keywords=body.keywords, policy=policy, manual=body.manual, stream=stream, run=body.run,
                live=body.stream is not None and body.stream.live, collection=body.collection, window=window))

    return await anyio.to_thread.run_sync(work)


def _edr_reads(runtime: Runtime, principal: Principal, collection_id: str) -> None:
    """422 naming ``collection`` unless ``principal`` reads the collection through the EDR API (one it may not
    read is refused as an unknown one) and its file can be read (xarray, imported on use)."""
    from twinengine.access.listing import PLACEHOLDER, collection_document
    from twinengine.access.service import readable_collection

    try:
        readable_collection(runtime.access, principal=principal, collection_id=collection_id)
    except TwinEngineError:
        raise ValidationFailed.one("collection", f"no EDR collection {collection_id!r} that you may read "
                                                 "(scope.name, as listed at /edr/collections)") from None
    try:
        collection_document(runtime.access, collection_id, PLACEHOLDER)
    except TwinEngineError as exc:
        raise ValidationFailed.one("collection", f"EDR cannot read {collection_id!r}: {exc}") from None


@router.get("/offers", name="offer_list", summary="Offers of yours (every offer, for admins)", dependencies=_OFFER)
@acts("dataspace.offer.create")
def offer_list(session: SessionDep, principal: PrincipalDep, withdrawn: bool = False) -> list[OfferRead]:
    return [offer_read(o) for o in offers.list_offers(session, principal=principal, withdrawn=withdrawn)]


@router.get("/offers/{offer_id}", name="offer_get", summary="One offer of yours", dependencies=_OFFER)
@acts("dataspace.offer.create")
def offer_get(offer_id: OfferId, session: SessionDep, principal: PrincipalDep) -> OfferRead:
    return offer_read(offers.get_offer(session, principal=principal, offer_id=offer_id))


@router.delete("/offers/{offer_id}", name="offer_withdraw", summary="Withdraw an offer (agreements stand)",
               dependencies=_OFFER)
@acts("dataspace.offer.create")
def offer_withdraw(offer_id: OfferId, session: SessionDep, principal: PrincipalDep) -> OfferRead:
    return offer_read(offers.withdraw_offer(session, principal=principal, offer_id=offer_id))


@router.post("/offers/{offer_id}/propose", name="offer_propose", status_code=status.HTTP_201_CREATED,
             dependencies=_OFFER, summary="Propose an offer of yours to a participant on another engine: the "
                                          "provider starts the negotiation")
@acts("dataspace.offer.create")
async def offer_propose(offer_id: OfferId, body: ProposalCreate, runtime: RuntimeDep,
                        principal: PrincipalDep) -> NegotiationRead:
    connector = runtime.dataspace
    row = await anyio.to_thread.run_sync(lambda: service.propose(
        connector, principal=principal, offer_id=offer_id, url=body.url, participant=body.participant,
        addressee=body.addressee, purpose=body.purpose))
    return negotiation_read(row)


@router.get("/participants", name="participant_list", summary="Participants this provider knows (admins)",
            dependencies=_PARTICIPANTS)
@acts("dataspace.participant.manage")
def participant_list(session: SessionDep, principal: PrincipalDep) -> list[ParticipantRead]:
    return [participant_read(p, said, did)
            for did, p, said in offers.list_participants(session, principal=principal)]


@router.put("/participants", name="participant_put", summary="Record a participant's organisation, groups, "
            "regions and callback address (admins)", dependencies=_PARTICIPANTS)
@acts("dataspace.participant.manage")
def participant_put(body: ParticipantCreate, session: SessionDep, principal: PrincipalDep) -> ParticipantRead:
    return participant_read(offers.add_participant(session, principal=principal, did=body.did, title=body.title,
                                                   organisation=body.organisation, groups=body.groups,
                                                   spatial=body.spatial, callback=body.callback))


@router.delete("/participants/{did}", name="participant_remove", status_code=status.HTTP_204_NO_CONTENT,
               summary="Forget a participant (admins)", dependencies=_PARTICIPANTS)
@acts("dataspace.participant.manage")
def participant_remove(did: Annotated[str, Path(max_length=300)], session: SessionDep,
                       principal: PrincipalDep) -> None:
    offers.remove_participant(session, principal=principal, did=did)


# -- consuming ----------------------------------------------------------------------------------------------------

@router.post("/catalog", name="catalog", summary="The catalog another participant shows this engine",
             dependencies=_CONSUME)
@acts("dataspace.consume")
async def catalog(body: CatalogQuery, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    connector = runtime.dataspace
    return await anyio.to_thread.run_sync(lambda: service.remote_catalog(connector, principal=principal,
                                                                         url=body.url))


@router.post("/negotiations", name="negotiation_start", status_code=status.HTTP_201_CREATED,
             summary="Negotiate for a dataset of another participant", dependencies=_CONSUME)
@acts("dataspace.consume")
async def negotiation_start(body: NegotiationCreate, runtime: RuntimeDep, principal: PrincipalDep) -> NegotiationRead:
    connector = runtime.dataspace
    row = await anyio.to_thread.run_sync(lambda: service.start_negotiation(
        connector, principal=principal, url=body.url, dataset=body.dataset, offer_id=body.offer, purpose=body.purpose,
        land=body.land.model_dump() if body.land else None, manual=body.manual))
    return negotiation_read(row)


@router.get("/negotiations", name="negotiation_list", summary="Negotiations of yours, or of your offers, and "
            "providers' proposals for you nobody has taken up yet",
            dependencies=_CONSUME)
@acts("dataspace.consume")
def negotiation_list(session: SessionDep, principal: PrincipalDep, role: RoleQuery = None) -> list[NegotiationRead]:
    return [negotiation_read(n) for n in service.negotiations(session, principal=principal, role=role)]


@router.get("/negotiations/{negotiation_id}", name="negotiation_get", summary="One negotiation",
            dependencies=_CONSUME)
@acts("dataspace.consume")
def negotiation_get(negotiation_id: Annotated[int, Path(ge=1, le=INT32_MAX)], session: SessionDep,
                    principal: PrincipalDep) -> NegotiationRead:
    return negotiation_read(service.get_negotiation(session, principal=principal, negotiation_id=negotiation_id))


@router.post("/negotiations/{negotiation_id}/{action}", name="negotiation_step", dependencies=_CONSUME,
             summary="A step of yours: offer, agree, finalize (provider); request, accept, verify (consumer); "
                     "terminate")
@acts("dataspace.consume")
async def negotiation_step(negotiation_id: Annotated[int, Path(ge=1, le=INT32_MAX)],
                           action: Literal["agree", "finalize", "offer", "request", "accept", "verify", "terminate"],
                           runtime: RuntimeDep, principal: PrincipalDep,
                           body: CounterOffer | None = None) -> NegotiationRead:
    """With a body (``offer``, ``request``): a counter-offer of the terms or the policy it gives."""
    connector = runtime.dataspace
    counter: dict[str, Any] | None = None
    if body is not None and body.policy is not None and body.terms is not None:
        raise ValidationFailed.one("policy", "terms or a policy, not both")
    if body is not None:
        counter = body.policy if body.terms is None else offers.build_policy(**body.terms.model_dump())

    def work() -> NegotiationRead:
        with runtime.db.session() as session:
            return negotiation_read(service.steer_negotiation(session, connector, principal=principal,
                                                              negotiation_id=negotiation_id, action=action,
                                                              counter=counter))

    found = await anyio.to_thread.run_sync(work)
    connector.wake()
    return found


@router.get("/agreements", name="agreement_list", summary="Agreements of yours, or under your offers",
            dependencies=_CONSUME)
@acts("dataspace.consume")
def agreement_list(session: SessionDep, principal: PrincipalDep, role: RoleQuery = None) -> list[AgreementRead]:
    return [agreement_read(a) for a in service.agreements(session, principal=principal, role=role)]


@router.get("/agreements/{agreement_id}", name="agreement_get", summary="One agreement", dependencies=_CONSUME)
@acts("dataspace.consume")
def agreement_get(agreement_id: AgreementId, session: SessionDep, principal: PrincipalDep) -> AgreementRead:
    return agreement_read(service.get_agreement(session, principal=principal, agreement_id=agreement_id))


@router.post("/agreements/{agreement_id}/revoke", name="agreement_revoke", dependencies=_CONSUME,
             summary="Revoke an agreement this engine provides: its data addresses refuse at once")
@acts("dataspace.consume")
async def agreement_revoke(agreement_id: AgreementId, runtime: RuntimeDep, principal: PrincipalDep) -> AgreementRead:
    def work() -> AgreementRead:
        with runtime.db.session() as session:
            return agreement_read(service.revoke(session, principal=principal, agreement_id=agreement_id))

    found = await anyio.to_thread.run_sync(work)
    runtime.dataspace.wake()
    return found


@router.get("/agreements/{agreement_id}/accesses", name="agreement_accesses", dependencies=_CONSUME,
            summary="Every data access under an agreement this engine provides (its usage record)")
@acts("dataspace.consume")
def agreement_accesses(agreement_id: AgreementId, session: SessionDep, principal: PrincipalDep) -> list[AccessRead]:
    return [AccessRead(id=a.id, agreement_id=a.agreement_id, transfer_id=a.transfer_id, participant=a.participant,
                       file=a.file, bytes=a.bytes, outcome=a.outcome, reason=a.reason, at=a.at)
            for a in service.accesses(session, principal=principal, agreement_id=agreement_id)]


@router.post("/transfers", name="transfer_start", status_code=status.HTTP_201_CREATED, dependencies=_CONSUME,
             summary="Transfer under an agreement of yours, landing the data in this engine's lake")
@acts("dataspace.consume")
async def transfer_start(body: TransferCreate, runtime: RuntimeDep, principal: PrincipalDep) -> TransferRead:
    connector = runtime.dataspace
    if body.format in (PUSH, S3_PUSH) and not body.land_data:
        raise ValidationFailed.one("land_data", "a push lands in this engine's lake: land_data must be true")
    land = {"did": body.did, "twin": body.twin, "endpoint": body.endpoint, "format": body.format} \
        if body.land_data else None
    row = await anyio.to_thread.run_sync(lambda: service.start_transfer(connector, principal=principal,
                                                                        agreement_id=body.agreement, land=land))
    return transfer_read(row)


@router.get("/transfers", name="transfer_list", summary="Transfers of yours, or under your offers",
            dependencies=_CONSUME)
@acts("dataspace.consume")
def transfer_list(session: SessionDep, principal: PrincipalDep, role: RoleQuery = None,
                  agreement: Annotated[str | None, Query(max_length=200)] = None) -> list[TransferRead]:
    return [transfer_read(t) for t in service.transfers(session, principal=principal, role=role, agreement=agreement)]


@router.get("/transfers/{transfer_id}", name="transfer_get", summary="One transfer", dependencies=_CONSUME)
@acts("dataspace.consume")
def transfer_get(transfer_id: Annotated[int, Path(ge=1, le=INT32_MAX)], session: SessionDep,
                 principal: PrincipalDep) -> TransferRead:
    return transfer_read(service.get_transfer(session, principal=principal, transfer_id=transfer_id))


@router.get("/transfers/{transfer_id}/edr/{path:path}", name="transfer_edr", dependencies=_CONSUME,
            summary="An EDR request of the collection a started transfer of yours may query, sent on to its provider",
            responses={200: {"content": {"application/prs.coverage+json": {}, "application/geo+json": {},
                                         "application/x-netcdf": {}},
                             "description": "The provider's answer as it came: its status, body and media type"}})
@acts("dataspace.consume")
async def transfer_edr(transfer_id: Annotated[int, Path(ge=1, le=INT32_MAX)],
                       path: Annotated[str, Path(max_length=400, description="Below the EDR root: collections, "
                                                 "collections/{id}, collections/{id}/position ...")],
                       request: Request, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    connector = runtime.dataspace
    params = list(request.query_params.multi_items())
    status_code, body, media = await anyio.to_thread.run_sync(lambda: service.query_collection(
        connector, principal=principal, transfer_id=transfer_id, path=path, params=params))
    return Response(body, status_code=status_code, media_type=media)


@router.post("/transfers/{transfer_id}/{action}", name="transfer_step", dependencies=_CONSUME,
             summary="A step of yours on a transfer: start, suspend, complete or terminate")
@acts("dataspace.consume")
async def transfer_step(transfer_id: Annotated[int, Path(ge=1, le=INT32_MAX)],
                        action: Literal["start", "suspend", "complete", "terminate"], runtime: RuntimeDep,
                        principal: PrincipalDep) -> TransferRead:
    def work() -> TransferRead:
        with runtime.db.session() as session:
            return transfer_read(service.steer_transfer(session, principal=principal, transfer_id=transfer_id,
                                                        action=action))

    found = await anyio.to_thread.run_sync(work)
    runtime.dataspace.wake()
    return found
