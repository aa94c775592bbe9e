"""What people of this engine do in the data space, beside offering (``dataspace.offers``): read another
participant's catalog, negotiate for one of its datasets, transfer under an agreement and land the data; see and
steer the processes of their offers; revoke an agreement.

Functions that talk to another participant (``remote_catalog``, ``start_negotiation``) do so before they open a
unit of work; the others take the caller's ``session``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth import odrl
from twinengine.auth.audit import record
from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.dataspace import negotiation, peers, proposals, transfer
from twinengine.dataspace.bucket_address import check_endpoint
from twinengine.dataspace.connector import Connector
from twinengine.dataspace.identity import did_of, participant_base
from twinengine.dataspace.models import Access, Agreement, Negotiation, Offer, TransferProcess
from twinengine.dataspace.offers import _mine, checked_rules, get_offer
from twinengine.dataspace.protocol import S3_PUSH, DspError, Role, TransferState, address_property, queried
from twinengine.dataspace.spec import problems
from twinengine.errors import InvalidInput, NotFound, TokenInvalid, ValidationFailed
from twinengine.store.base import utcnow

__all__ = ["accesses", "agreements", "get_agreement", "get_negotiation", "get_transfer", "negotiations",
           "propose", "provider_of", "query_collection", "remote_catalog", "revoke", "start_negotiation",
           "start_transfer", "steer_negotiation", "steer_transfer", "transfers"]


def _failed(exc: peers.PeerUnreachable, who: str = "provider") -> ValidationFailed:
    return ValidationFailed.one("url", f"the {who} cannot be read: {exc}")


def provider_of(connector: Connector, url: str, *, who: str = "provider") -> tuple[str, str]:
    """(DSP base, participant id) of the engine at ``url``, from its ``/.well-known/dspace-version`` (``who``: what
    it is to this engine, in the errors)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationFailed.one("url", f"the {who}'s URL is an http(s) URL")
    root = f"{parts.scheme}://{parts.netloc}"
    try:
        versions = peers.get_json(connector.settings, root + "/.well-known/dspace-version")
    except peers.PeerUnreachable as exc:
        raise _failed(exc, who) from None
    if problems(versions, "VersionResponse"):
        raise ValidationFailed.one("url", f"the {who}'s version list is not the protocol's")
    for entry in versions["protocolVersions"]:
        if entry.get("version") == "2025-1" and entry.get("binding") == "HTTPS":
            service = entry.get("serviceId")
            did = service if isinstance(service, str) and service.startswith("did:web:") else did_of(root)
            return root + str(entry["path"]).rstrip("/"), did
    raise ValidationFailed.one("url", f"the {who} speaks no Dataspace Protocol 2025-1 over HTTPS")


def _remote(connector: Connector, url: str, audience: str, body: dict[str, Any] | None, method: str) -> Any:
    try:
        status, answer = connector.send(url, body, audience, method)
    except peers.PeerUnreachable as exc:
        raise _failed(exc) from None
    if status == 404:
        raise NotFound(f"the provider has no such dataset for this engine ({url})")
    if status != 200 or not isinstance(answer, dict):
        reason = answer.get("reason") if isinstance(answer, dict) else None
        raise ValidationFailed.one("url", f"the provider answered HTTP {status}: {reason or answer}")
    return answer


def remote_catalog(connector: Connector, *, principal: Principal, url: str) -> dict[str, Any]:
    """The catalog the provider at ``url`` shows this engine (network: call it outside any unit of work)."""
    require(principal, "dataspace.consume")
    base, did = provider_of(connector, url)
    found = _remote(connector, base + "/catalog/request", did, {
        "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"], "@type": "CatalogRequestMessage"}, "POST")
    if problems(found, "Catalog"):
        raise ValidationFailed.one("url", "the provider's catalog is not the protocol's: "
                                          + "; ".join(problems(found, "Catalog")[:3]))
    return dict(found)


def remote_offer(connector: Connector, *, principal: Principal, url: str, dataset: str,
                 offer_id: str | None) -> tuple[str, str, dict[str, Any]]:
    """(DSP base, provider id, the offer as the provider's catalog has it) for ``dataset`` (network)."""
    require(principal, "dataspace.consume")
    base, did = provider_of(connector, url)
    found = _remote(connector, f"{base}/catalog/datasets/{quote(dataset, safe=':')}", did, None, "GET")
    offers = [o for o in found.get("hasPolicy", []) if isinstance(o, dict)]
    chosen = next((o for o in offers if offer_id is None or o.get("@id") == offer_id), None)
    if chosen is None:
        raise ValidationFailed.one("offer", f"dataset {dataset} has no offer {offer_id!r}")
    return base, did, chosen


def start_negotiation(connector: Connector, *, principal: Principal, url: str, dataset: str,
                      offer_id: str | None = None, purpose: str | None = None,
                      land: dict[str, Any] | None = None, manual: bool = False) -> Negotiation:
    """Ask the provider at ``url`` for ``dataset`` under its offer (taken byte for byte from its catalog); with
    ``land``, transfer once finalized and land the data there."""
    base, did, offer = remote_offer(connector, principal=principal, url=url, dataset=dataset, offer_id=offer_id)
    then = None
    if land is not None:
        then = {**land, "principal": {"name": principal.name, "role": principal.role.value,
                                      "groups": sorted(principal.groups)}}
    with connector.db.session() as session:
        if land is not None:
            _check_landing(session, principal, land)
        row = negotiation.start_consumer(session, connector, owner=principal.name, provider_base=base, provider=did,
                                         offer=offer, dataset_id=dataset, purpose=purpose, then_transfer=then,
                                         manual=manual)
        record(session, actor=principal.name, role=principal.role.value, action="dataspace.negotiation",
               target=row.consumer_pid or "", outcome="success",
               detail={"event": "requested", "provider": did, "dataset": dataset, "offer": offer.get("@id")})
    connector.wake()
    return row


def propose(connector: Connector, *, principal: Principal, offer_id: str, url: str | None = None,
            participant: str | None = None, addressee: str | None = None, purpose: str | None = None) -> Negotiation:
    """Propose an offer of yours to the participant at ``url`` (``participant``: its id, checked against the one
    that engine names), for ``addressee`` there (a user, ``group:NAME``; None: its admins): the provider starts the
    negotiation. The offer's owner only (404 otherwise), checked before the other engine is asked. Without ``url``,
    ``participant`` names it: where this engine knows its callback address (``proposals.known_callback``) nothing
    is read from it first, else the engine its did:web names is read as ``url`` would be."""
    require(principal, "dataspace.offer.create")
    if url is None and participant is None:
        raise ValidationFailed.one("url", "give the participant's engine URL or its participant id (did:web)")
    with connector.db.session(readonly=True) as session:
        get_offer(session, principal=principal, offer_id=offer_id)
        known = proposals.known_callback(session, participant) if participant is not None and url is None else None
    base: str | None = None
    if url is not None:
        base, did = provider_of(connector, url, who="consumer")
        if participant is not None and participant != did:
            raise ValidationFailed.one("participant", f"the engine at {url} is {did}, not {participant}")
    elif known is None:  # the engine the did:web names, read as its URL would be; its errors name the id
        try:
            named = participant_base(str(participant))
            base, did = provider_of(connector, named, who="consumer")
        except TokenInvalid:
            raise ValidationFailed.one("participant", "a participant id is a did:web (did:web:host%3Aport)") \
                from None
        except ValidationFailed as exc:
            raise ValidationFailed.one("participant", f"{named}: {exc.problems[0].msg}") from None
        if did != participant:
            raise ValidationFailed.one("participant", f"the engine at {named} is {did}, not {participant}")
    else:
        did = str(participant)
    if did == connector.did:
        raise ValidationFailed.one("url" if url is not None else "participant",
                                   "this engine itself: propose an offer to another participant")
    with connector.db.session() as session:
        offer = get_offer(session, principal=principal, offer_id=offer_id)
        row = proposals.start_provider(session, principal=principal, offer=offer, participant=did,
                                       consumer_base=base, addressee=addressee, purpose=purpose)
    connector.wake()
    return row


def _check_landing(session: Session, principal: Principal, land: dict[str, Any]) -> None:
    """The caller may make the landing dataset (and may operate its twin), before anything is asked for."""
    require(principal, "lake.write")
    if land.get("format") == S3_PUSH:
        check_endpoint(session, land.get("endpoint"))
    if land.get("twin"):
        from twinengine.lake.grants import data_twin

        data_twin(session, principal, str(land["twin"]))


def start_transfer(connector: Connector, *, principal: Principal, agreement_id: str,
                   land: dict[str, Any] | None) -> TransferProcess:
    require(principal, "dataspace.consume")
    with connector.db.session() as session:
        agreement = session.scalar(select(Agreement).where(Agreement.id == agreement_id,
                                                           Agreement.role == Role.CONSUMER.value))
        if agreement is None or not (principal.is_admin or agreement.owner == principal.name):
            raise NotFound(f"no agreement {agreement_id!r} of yours")
        target = None
        if land is not None:
            _check_landing(session, principal, land)
            target = {**land, "principal": {"name": principal.name, "role": principal.role.value,
                                            "groups": sorted(principal.groups)}}
        try:
            row = transfer.start_consumer_transfer(session, agreement_id=agreement_id, owner=principal.name,
                                                   target=target)
        except DspError as exc:
            raise InvalidInput(exc.reason) from None
    connector.wake()
    return row


# -- listings and steps --------------------------------------------------------------------------------------------

def _sees(session: Session, principal: Principal, role: str, owner: str, offer_id: str | None) -> bool:
    if principal.is_admin or owner == principal.name:
        return True
    if role == Role.PROVIDER and offer_id:
        offer = session.get(Offer, offer_id)
        return offer is not None and _mine(session, principal, offer)
    return False


def _sees_negotiation(session: Session, principal: Principal, row: Negotiation) -> bool:
    """Its owner's, its offer's owners' (provider) and the admins'; a provider's proposal nobody has taken up yet
    is its addressee's too (``proposals.addressed``)."""
    if row.role == Role.CONSUMER and not row.owner:
        return proposals.addressed(principal, row.addressee)
    return _sees(session, principal, row.role, row.owner, row.offer_id)


def negotiations(session: Session, *, principal: Principal, role: str | None = None,
                 limit: int = 200) -> list[Negotiation]:
    require(principal, "dataspace.consume")
    query = select(Negotiation).order_by(Negotiation.id.desc()).limit(limit)
    if role:
        query = query.where(Negotiation.role == role)
    return [n for n in session.scalars(query) if _sees_negotiation(session, principal, n)]


def get_negotiation(session: Session, *, principal: Principal, negotiation_id: int) -> Negotiation:
    require(principal, "dataspace.consume")
    row = session.get(Negotiation, negotiation_id)
    if row is None or not _sees_negotiation(session, principal, row):
        raise NotFound(f"no negotiation {negotiation_id}")
    return row


def steer_negotiation(session: Session, connector: Connector, *, principal: Principal, negotiation_id: int,
                      action: str, counter: dict[str, Any] | None = None) -> Negotiation:
    """A person's step: the provider's steward offers, agrees, finalizes or terminates; the consumer requests,
    accepts, verifies or terminates. ``counter``: a counter-offer's policy with an offer or a request (422
    naming ``policy`` where the engine cannot enforce it). An illegal step for the state is a 400 naming the
    state."""
    row = get_negotiation(session, principal=principal, negotiation_id=negotiation_id)
    session.refresh(row, with_for_update=True)
    if not _sees_negotiation(session, principal, row):  # a proposal someone else took up meanwhile
        raise NotFound(f"no negotiation {negotiation_id}")
    rules = checked_rules(counter) if counter is not None else None
    try:
        negotiation.steward(session, connector, row, action, rules)
    except DspError as exc:
        raise InvalidInput(exc.reason, details=[{"loc": "action", "msg": exc.reason}]) from None
    if row.role == Role.CONSUMER and not row.owner:
        proposals.claim(session, row, principal, action)
    return row


def agreements(session: Session, *, principal: Principal, role: str | None = None) -> list[Agreement]:
    require(principal, "dataspace.consume")
    query = select(Agreement).order_by(Agreement.key.desc()).limit(500)
    if role:
        query = query.where(Agreement.role == role)
    return [a for a in session.scalars(query) if _sees(session, principal, a.role, a.owner, a.offer_id)]


def get_agreement(session: Session, *, principal: Principal, agreement_id: str) -> Agreement:
    found = [a for a in agreements(session, principal=principal) if a.id == agreement_id]
    if not found:
        raise NotFound(f"no agreement {agreement_id!r}")
    provider = [a for a in found if a.role == Role.PROVIDER]
    return (provider or found)[0]


def revoke(session: Session, *, principal: Principal, agreement_id: str) -> Agreement:
    """The provider's revocation: no transfer under it from now on, and its data addresses refuse at once;
    started transfers are terminated (the courier tells the consumer)."""
    row = session.scalars(select(Agreement).where(Agreement.id == agreement_id, Agreement.role == Role.PROVIDER.value)
                          .with_for_update()).first()
    if row is None or not _sees(session, principal, row.role, row.owner, row.offer_id):
        raise NotFound(f"no agreement {agreement_id!r} this engine provides")
    if row.revoked_at is None:
        row.revoked_at, row.revoked_by = utcnow(), principal.name
        for t in session.scalars(select(TransferProcess).where(
                TransferProcess.role == Role.PROVIDER.value, TransferProcess.agreement_id == agreement_id,
                TransferProcess.state.in_(["REQUESTED", "STARTED", "SUSPENDED"])).with_for_update()):
            t.error = f"agreement revoked by {principal.name}"
            transfer.queue(t, "terminate", {"code": "revoked", "reason": t.error})
        record(session, actor=principal.name, role=principal.role.value, action="dataspace.agreement.revoke",
               target=agreement_id, outcome="success", detail={"consumer": row.consumer})
    return row


def transfers(session: Session, *, principal: Principal, role: str | None = None,
              agreement: str | None = None) -> list[TransferProcess]:
    require(principal, "dataspace.consume")
    query = select(TransferProcess).order_by(TransferProcess.id.desc()).limit(500)
    if role:
        query = query.where(TransferProcess.role == role)
    if agreement:
        query = query.where(TransferProcess.agreement_id == agreement)
    found = []
    for t in session.scalars(query):
        offer_id = None
        if t.role == Role.PROVIDER:
            a = session.scalar(select(Agreement.offer_id).where(Agreement.id == t.agreement_id))
            offer_id = a
        if _sees(session, principal, t.role, t.owner, offer_id):
            found.append(t)
    return found


def get_transfer(session: Session, *, principal: Principal, transfer_id: int) -> TransferProcess:
    """One transfer ``principal`` sees (as ``transfers`` lists them, however old)."""
    require(principal, "dataspace.consume")
    row = session.get(TransferProcess, transfer_id)
    offer_id = session.scalar(select(Agreement.offer_id).where(Agreement.id == row.agreement_id)) \
        if row is not None and row.role == Role.PROVIDER else None
    if row is None or not _sees(session, principal, row.role, row.owner, offer_id):
        raise NotFound(f"no transfer {transfer_id}")
    return row


# what a user may ask of an EDR collection's data address: nothing that leaves its root (no "..", no escapes)
_EDR_PATH = re.compile(r"collections(?:/([A-Za-z0-9._~-]{1,200})"
                       r"(?:/(?:position|radius|area|cube|trajectory|corridor))?)?/?")


def query_collection(connector: Connector, *, principal: Principal, transfer_id: int, path: str,
                     params: list[tuple[str, str]]) -> tuple[int, bytes, str]:
    """An EDR request (``path`` below the API root: ``collections``, ``collections/{id}/position``...) of the
    collection a started transfer of this engine's consumer ``transfer_id`` may query, sent on to the provider's
    data address with the transfer's token (which never leaves this engine); the provider's answer as it came
    (status, body, media type). 404 for a transfer the caller does not see; 422 naming ``transfer_id`` for one
    that is not an EDR collection's or not started."""
    found = _EDR_PATH.fullmatch(path)
    if found is None or found.group(1) in (".", ".."):
        raise ValidationFailed.one("path", f"{path!r} is not below an EDR root: collections, collections/{{id}} "
                                           "or collections/{id}/{position|radius|area|cube|trajectory|corridor}")
    with connector.db.session(readonly=True) as session:
        row = get_transfer(session, principal=principal, transfer_id=transfer_id)
        address = dict(row.data_address or {})
        if row.role != Role.CONSUMER or not queried(address):
            raise ValidationFailed.one("transfer_id", f"transfer {transfer_id} is not one of an EDR collection "
                                                      "offer this engine consumes")
        if row.state != TransferState.STARTED:
            raise ValidationFailed.one("transfer_id", f"transfer {transfer_id} is {row.state}: queries are sent "
                                                      "while it is STARTED")
    try:
        return peers.relay(connector.settings, f"{str(address.get('endpoint')).rstrip('/')}/{path.lstrip('/')}",
                           address_property(address, "authorization"), params)
    except peers.PeerUnreachable as exc:
        raise ValidationFailed.one("transfer_id", f"the provider's data address cannot be read: {exc}") from None


def steer_transfer(session: Session, *, principal: Principal, transfer_id: int, action: str) -> TransferProcess:
    row = get_transfer(session, principal=principal, transfer_id=transfer_id)
    session.refresh(row, with_for_update=True)
    try:
        transfer.steward(session, row, action)
    except DspError as exc:
        raise InvalidInput(exc.reason, details=[{"loc": "action", "msg": exc.reason}]) from None
    return row


def accesses(session: Session, *, principal: Principal, agreement_id: str) -> list[Access]:
    """The provider's usage record of one of its agreements: every data access, refused ones too."""
    row = get_agreement(session, principal=principal, agreement_id=agreement_id)
    if row.role != Role.PROVIDER:
        raise NotFound(f"no agreement {agreement_id!r} this engine provides")
    return list(session.scalars(select(Access).where(Access.agreement_id == agreement_id).order_by(Access.id)))


def policy_of(text: str) -> dict[str, Any]:
    return odrl.json_of(text)
