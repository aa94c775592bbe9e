"""Negotiations a provider starts: an offer proposed to a participant on another engine.

Provider: the offer's owner proposes it to a participant; the negotiation is INITIAL, its ``ContractOfferMessage``
owed, until the consumer's answer (or its next message) names the consumer's process: then OFFERED. From there the
state machine is the one of every negotiation (``negotiation``). The message goes to the consumer's callback
address (``consumer_callback``): the one the register records for the participant ("configured"), else the latest
one the participant gave in its own requests ("given"), else ``<its DSP base>/callback`` ("assumed", as this
engine lays its own out); the negotiation keeps which (``callback_source``).

Consumer: the initial offer names, in its ``assignee``, whom on this engine it is for: the participant itself
(this engine's admins decide) or ``<participant id>#<user>`` / ``#group:<name>``. The negotiation is OFFERED and
belongs to nobody until one of those people takes a step on it (accepts, counters or terminates), which makes it
theirs; nobody else sees it.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth import odrl
from twinengine.auth.audit import record
from twinengine.auth.principal import Principal
from twinengine.dataspace.catalog import context_of, permit
from twinengine.dataspace.connector import Connector
from twinengine.dataspace.identity import callback_on
from twinengine.dataspace.models import Negotiation, Offer, Participant, TransferProcess
from twinengine.dataspace.negotiation import as_message, queue
from twinengine.dataspace.protocol import BASE_PATH, CALLBACK_PATH, DspError, NegotiationState, Role, new_pid, valid
from twinengine.dataspace.schemas import ADDRESSEE
from twinengine.errors import TokenInvalid, ValidationFailed

__all__ = ["ASSUMED", "CONFIGURED", "GIVEN", "addressed", "assignee_of", "claim", "consumer_callback", "known_callback",
           "offered", "start_provider"]

N = NegotiationState
_ADDRESSEE = re.compile(ADDRESSEE)
CALLBACK_SUFFIX = CALLBACK_PATH.removeprefix(BASE_PATH)  # where an engine's callbacks lie below its DSP base
CONFIGURED, GIVEN, ASSUMED = "configured", "given", "assumed"  # where a proposal's callback address came from


def assignee_of(participant: str, addressee: str | None) -> str:
    """The offer's ``assignee`` for ``addressee`` (a user, ``group:NAME``; None: the participant as a whole)."""
    return participant if addressee is None else f"{participant}#{addressee}"


def addressee_of(assignee: Any, participant: str) -> str | None:
    """Whom on this engine (``participant``) an initial offer's ``assignee`` is for; 400 for another
    participant's, or a name this engine cannot have."""
    if assignee is None or assignee == participant:
        return None
    if isinstance(assignee, str) and assignee.startswith(participant + "#"):
        name = assignee[len(participant) + 1:]
        if _ADDRESSEE.fullmatch(name):
            return name
        raise DspError(400, f"the offer's assignee names no user or group:NAME of {participant}")
    raise DspError(400, f"the offer is for {assignee!r}, not for this participant ({participant})")


def addressed(principal: Principal, addressee: str | None) -> bool:
    """Whether ``principal`` may see and take up a proposal for ``addressee``: that user, a member of that group;
    the admins always (the data space's stewards: a proposal for nobody in particular is theirs)."""
    if principal.is_admin:
        return True
    if addressee is None:
        return False
    if addressee.startswith("group:"):
        return addressee.removeprefix("group:") in principal.groups
    return addressee == principal.name


# -- provider ---------------------------------------------------------------------------------------------------


def _on_origin(address: str | None, participant: str) -> str | None:
    try:
        return callback_on(address, participant) if address else None
    except (ValueError, TokenInvalid):
        return None  # not (or no longer) on the participant's origin: not its address


def known_callback(session: Session, participant: str) -> tuple[str, str] | None:
    """The callback address this engine knows for ``participant`` and where it came from: the register's
    (``CONFIGURED``), else the latest one the participant gave in a negotiation or transfer request of its own
    (``GIVEN``: checked on arrival to lie on its origin, as here again); None when neither is known."""
    registered = session.get(Participant, participant)
    configured = _on_origin(registered.callback if registered is not None else None, participant)
    if configured is not None:
        return configured, CONFIGURED
    given: list[tuple[Any, int, str]] = []
    for model, where in ((Negotiation, Negotiation.callback_source.is_(None)), (TransferProcess, None)):
        query = select(model.created_at, model.id, model.peer_base).where(
            model.role == Role.PROVIDER.value, model.peer == participant)
        if where is not None:
            query = query.where(where)  # a proposal's address is this engine's choice, not one it was given
        latest = session.execute(query.order_by(model.created_at.desc(), model.id.desc()).limit(1)).first()
        if latest is not None:
            given.append((latest[0], latest[1], latest[2]))
    for _at, _id, address in sorted(given, key=lambda g: (g[0], g[1]), reverse=True):
        found = _on_origin(address, participant)
        if found is not None:
            return found, GIVEN
    return None


def consumer_callback(session: Session, participant: str, consumer_base: str | None) -> tuple[str, str]:
    """Where a proposal to ``participant`` goes, and why there: ``known_callback``, else
    ``<consumer_base>/callback`` (``ASSUMED``); 422 naming ``url`` when nothing is known and no base was read."""
    known = known_callback(session, participant)
    if known is not None:
        return known
    if consumer_base is None:
        raise ValidationFailed.one("url", f"no callback address is known for {participant}: give its engine's URL")
    return consumer_base + CALLBACK_SUFFIX, ASSUMED


def start_provider(session: Session, *, principal: Principal, offer: Offer, participant: str,
                   consumer_base: str | None, addressee: str | None, purpose: str | None) -> Negotiation:
    """The provider's negotiation for ``offer`` proposed to ``participant`` (its DSP base ``consumer_base``, None
    when it was not read): INITIAL, the initial offer owed (the courier sends it once the caller's unit of work
    commits) to the consumer's callback address (``consumer_callback``). 422 naming ``offer_id`` for a withdrawn
    offer, ``participant`` where the offer's policy does not permit it."""
    if offer.withdrawn_at is not None:
        raise ValidationFailed.one("offer_id", "the offer was withdrawn")
    policy = odrl.json_of(offer.policy)
    why = permit(policy, context_of(session, participant, odrl.Phase.NEGOTIATION, purpose=purpose))
    if why is not None:
        raise ValidationFailed.one("participant", f"the offer does not permit {participant}: {why}")
    callback, source = consumer_callback(session, participant, consumer_base)
    sent = {**policy, "assignee": assignee_of(participant, addressee)}
    row = Negotiation(role=Role.PROVIDER.value, provider_pid=new_pid(), state=N.INITIAL.value, peer=participant,
                      peer_base=callback, callback_source=source, dataset_id=offer.dataset_id, offer_id=offer.id,
                      offer=odrl.canonical(sent), offered_by=Role.PROVIDER.value, purpose=purpose,
                      owner=offer.owner, addressee=addressee)
    session.add(row)
    session.flush()
    queue(row, "offer")
    record(session, actor=principal.name, role=principal.role.value, action="dataspace.negotiation",
           target=row.provider_pid or "", outcome="success",
           detail={"event": "proposed", "consumer": participant, "addressee": addressee, "offer": offer.id,
                   "dataset": offer.dataset_id, "callback": callback, "callback_source": source})
    return row


# -- consumer ---------------------------------------------------------------------------------------------------


def offered(session: Session, connector: Connector, peer: str, body: Any) -> tuple[int, dict[str, Any]]:
    """``POST <callback>/negotiations/offers``: a provider's initial offer, a new negotiation OFFERED (201), or
    the one this provider process already has (the same message again)."""
    msg = valid(body, "ContractOfferMessage", error_kind="negotiation")
    provider_pid = msg["providerPid"]
    if "consumerPid" in msg:
        raise DspError(400, "an initial offer names no consumerPid (send it to /negotiations/{consumerPid}/offers)",
                       provider_pid=provider_pid, consumer_pid=msg["consumerPid"])
    existing = session.scalars(select(Negotiation).where(Negotiation.role == Role.CONSUMER.value,
                                                         Negotiation.provider_pid == provider_pid)
                               .with_for_update()).first()
    if existing is not None:
        if existing.peer != peer:
            raise DspError(400, "providerPid names another participant's negotiation", provider_pid=provider_pid)
        return 201, as_message(existing)  # delivered again
    try:
        callback = callback_on(msg.get("callbackAddress"), peer)
    except ValueError as exc:
        raise DspError(400, str(exc), provider_pid=provider_pid) from None
    offer = msg["offer"]
    try:
        addressee = addressee_of(offer.get("assignee"), connector.did)
    except DspError as exc:
        exc.provider_pid = provider_pid
        raise
    row = Negotiation(role=Role.CONSUMER.value, provider_pid=provider_pid, consumer_pid=new_pid(),
                      state=N.OFFERED.value, peer=peer, peer_base=callback, dataset_id=offer["target"],
                      offer_id=offer["@id"], offer=odrl.canonical(offer), offered_by=Role.PROVIDER.value, owner="",
                      addressee=addressee)
    session.add(row)
    session.flush()
    record(session, actor=peer, action="dataspace.negotiation", target=row.consumer_pid or "", outcome="success",
           detail={"event": "received offer", "role": row.role, "state": row.state, "addressee": addressee,
                   "offer": row.offer_id, "dataset": row.dataset_id})
    return 201, as_message(row)


def claim(session: Session, row: Negotiation, principal: Principal, action: str) -> None:
    """A proposal nobody had taken up becomes ``principal``'s with its first step (and its agreement with it)."""
    row.owner = principal.name
    record(session, actor=principal.name, role=principal.role.value, action="dataspace.negotiation",
           target=row.consumer_pid or "", outcome="success",
           detail={"event": "taken up", "step": action, "addressee": row.addressee, "provider": row.peer})
