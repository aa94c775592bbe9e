"""The contract negotiation state machine, in both roles, kept in the store.

A received message is validated against its schema, checked against the process's state (an illegal transition
is refused with 400 and changes nothing) and applied in the request's unit of work; what this side owes in return
is recorded as the process's ``pending`` message, which the courier sends once that unit of work has committed.
A message that proves the other side received our pending one (it moves on from the state ours led to) counts as
its acknowledgement, so an answer that overtakes the acknowledgement is never refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth import odrl
from twinengine.auth.audit import record
from twinengine.dataspace.agreements import mark_finalized
from twinengine.dataspace.catalog import context_of, permit, visible_offer
from twinengine.dataspace.connector import Connector
from twinengine.dataspace.identity import callback_on
from twinengine.dataspace.models import Agreement, Negotiation, Offer
from twinengine.dataspace.protocol import (
    NEGOTIATION_FINAL,
    NEGOTIATION_MOVES,
    DspError,
    NegotiationState,
    Role,
    acknowledged,
    message,
    new_pid,
    valid,
)
from twinengine.errors import ValidationFailed
from twinengine.store.base import utcnow

__all__ = ["Role", "as_message", "consumer_receive", "due", "provider_receive", "provider_request", "queue", "settle"]

N = NegotiationState
EVENT_MOVE = {"ACCEPTED": "accept", "FINALIZED": "finalize"}


def as_message(row: Negotiation) -> dict[str, Any]:
    """The ``ContractNegotiation`` answer for ``row``."""
    return message("ContractNegotiation", providerPid=row.provider_pid, consumerPid=row.consumer_pid,
                   state=row.state)


def queue(row: Negotiation, action: str | None, detail: dict[str, Any] | None = None) -> None:
    """Owe the other side ``action`` (None: nothing); the courier sends it at once."""
    row.pending, row.pending_detail, row.attempts = action, detail, 0
    row.due_at = utcnow() if action else None
    row.claimed_until = None
    row.updated_at = utcnow()


def _move(row: Negotiation, action: str, sender: Role) -> None:
    _sources, target = NEGOTIATION_MOVES[(action, sender)]
    row.state = target.value
    row.updated_at = utcnow()
    if target in NEGOTIATION_FINAL:
        row.pending = row.pending if action == "terminate" and row.pending == "terminate" else None


def _settle_pending(row: Negotiation, action: str, sender: Role) -> None:
    """The other side moved on from the state our pending message led to: it received it."""
    if row.pending is None or row.pending == "terminate":
        return
    ours = (row.pending, Role(row.role))
    if ours not in NEGOTIATION_MOVES or (action, sender) not in NEGOTIATION_MOVES:
        return
    sources, target = NEGOTIATION_MOVES[ours]
    if N(row.state) in sources and target in NEGOTIATION_MOVES[(action, sender)][0]:
        _move(row, row.pending, Role(row.role))
        queue(row, None)


def _allowed(row: Negotiation, action: str, sender: Role, kind: str) -> bool:
    """Whether ``action`` from ``sender`` applies to ``row`` (False: a duplicate with no further effect); raises
    400 for an illegal transition."""
    sources, target = NEGOTIATION_MOVES[(action, sender)]
    state = N(row.state)
    if state == target and action != "request":
        return False  # delivered again: acknowledged, nothing changes
    if state not in sources:
        raise DspError(400, f"a {kind} is not allowed in state {state} (negotiation {row.provider_pid})",
                       provider_pid=row.provider_pid, consumer_pid=row.consumer_pid)
    return True


def _locked(session: Session, role: Role, *, provider_pid: str | None = None,
            consumer_pid: str | None = None) -> Negotiation | None:
    query = select(Negotiation).where(Negotiation.role == role.value)
    query = query.where(Negotiation.provider_pid == provider_pid) if provider_pid is not None else \
        query.where(Negotiation.consumer_pid == consumer_pid)
    return session.scalars(query.with_for_update()).first()


def find(session: Session, role: Role, peer: str, pid: str, *, provider_pid: Any = None,
         consumer_pid: Any = None) -> Negotiation:
    """The negotiation ``pid`` (ours in ``role``) of ``peer``: an unknown one, or another participant's, is 404.
    ``provider_pid``, ``consumer_pid``: the other side's process its message names, which proves our first
    message arrived though its answer was never applied here (``acknowledged``, ``_offer_acknowledged``)."""
    row = _locked(session, role, **({"provider_pid": pid} if role is Role.PROVIDER else {"consumer_pid": pid}))
    if row is not None and row.peer == peer and row.state == N.INITIAL:
        if role is Role.CONSUMER:
            acknowledged(row, provider_pid)
        else:
            _offer_acknowledged(row, consumer_pid)
    if row is None or row.peer != peer or row.state == N.INITIAL:
        raise DspError(404, f"no negotiation {pid!r}", provider_pid=pid if role is Role.PROVIDER else None,
                       consumer_pid=pid if role is Role.CONSUMER else None, code="404")
    return row


def _offer_acknowledged(row: Negotiation, consumer_pid: Any) -> None:
    """A provider's initial offer reached the consumer, whose answer was never applied here: the consumer's next
    message, naming its process, counts as that answer."""
    if row.pending == "offer" and isinstance(consumer_pid, str) and consumer_pid:
        row.consumer_pid, row.state = consumer_pid, N.OFFERED.value
        queue(row, None)


def _audit(session: Session, row: Negotiation, what: str, **detail: Any) -> None:
    record(session, actor=row.peer if what.startswith("received") else row.owner, action="dataspace.negotiation",
           target=row.provider_pid or row.consumer_pid or "", outcome="success",
           detail={"event": what, "role": row.role, "state": row.state, **detail})


# -- provider ---------------------------------------------------------------------------------------------------


def _offer_check(session: Session, row: Negotiation, offer_json: dict[str, Any]) -> str | None:
    """Why the provider will not agree to the consumer's latest offer (None: it agrees): the rules must be the
    catalog offer's, byte for byte, and the policy must permit the negotiation."""
    offer = session.get(Offer, row.offer_id) if row.offer_id else None
    if offer is None or offer.withdrawn_at is not None:
        return "the offer was withdrawn"
    ours = odrl.json_of(offer.policy)
    try:
        odrl.check({k: v for k, v in offer_json.items() if k in odrl.RULE_KEYS})
    except odrl.PolicyError as exc:
        return f"the offer cannot be enforced: {exc}"
    if odrl.rules_text(offer_json) != odrl.rules_text(ours):
        return "the offer's rules differ from the catalog's (a counter-offer this provider does not take)"
    return permit(ours, context_of(session, row.peer, odrl.Phase.NEGOTIATION, purpose=row.purpose))


def _decide(session: Session, row: Negotiation, provider: str) -> None:
    """An offer without a steward's hand: agree when the policy permits, terminate saying why otherwise."""
    offer = session.get(Offer, row.offer_id) if row.offer_id else None
    if offer is None or offer.manual:
        return
    why = _offer_check(session, row, odrl.json_of(row.offer or "{}"))
    if why is None:
        prepare_agreement(session, row, offer, provider)
        queue(row, "agree")
    else:
        row.error = why
        queue(row, "terminate", {"code": "policy", "reason": why})


def prepare_agreement(session: Session, row: Negotiation, offer: Offer, provider: str) -> Agreement:
    """The agreement the provider sends (kept before it is sent, so a retry sends the same one): the latest
    offer's rules byte for byte, the catalog offer's target, both parties and the time."""
    if row.agreement_id:
        existing = session.scalar(select(Agreement).where(Agreement.id == row.agreement_id,
                                                          Agreement.role == Role.PROVIDER.value))
        if existing is not None:
            return existing
    rules = odrl.json_of(row.offer) if row.offer else odrl.json_of(offer.policy)  # the latest offer's: the
    # catalog's (checked byte for byte where no steward decides) or a counter-offer the steward agreed to
    agreement_id, now = new_pid(), utcnow().replace(microsecond=0)
    policy = {"@id": agreement_id, "@type": "Agreement", **{k: rules[k] for k in odrl.RULE_KEYS if k in rules},
              "target": offer.dataset_id, "timestamp": now.isoformat().replace("+00:00", "Z"),
              "assigner": provider, "assignee": row.peer}
    agreement = Agreement(id=agreement_id, role=Role.PROVIDER.value, negotiation_id=row.id, provider=provider,
                          consumer=row.peer, dataset_id=offer.dataset_id, offer_id=offer.id,
                          policy=odrl.canonical(policy), purpose=row.purpose, owner=offer.owner,
                          peer_base=row.peer_base, signed_at=now)
    session.add(agreement)
    row.agreement_id = agreement_id
    return agreement



def provider_request(session: Session, connector: Connector, peer: str, body: Any) -> tuple[int, dict[str, Any]]:
    """``POST /negotiations/request``: a new negotiation (201), or the one this consumer process already has."""
    msg = valid(body, "ContractRequestMessage", error_kind="negotiation")
    if "providerPid" in msg:
        raise DspError(400, "an initial request names no providerPid (send it to /negotiations/{providerPid}/request)",
                       provider_pid=msg["providerPid"], consumer_pid=msg["consumerPid"])
    existing = session.scalars(
        select(Negotiation).where(Negotiation.role == Role.PROVIDER.value, Negotiation.peer == peer,
                                  Negotiation.consumer_pid == msg["consumerPid"]).with_for_update()).first()
    if existing is not None:
        return 201, as_message(existing)  # delivered again
    if session.scalar(select(Negotiation.id).where(Negotiation.role == Role.PROVIDER.value,
                                                   Negotiation.consumer_pid == msg["consumerPid"])) is not None:
        raise DspError(400, "consumerPid names another participant's negotiation", consumer_pid=msg["consumerPid"])
    callback = _callback(msg.get("callbackAddress"), peer, consumer_pid=msg["consumerPid"])
    offer_json = msg["offer"]
    target = offer_json.get("target")
    try:
        offer, _policy = visible_offer(session, peer, offer_id=offer_json["@id"])
    except DspError:
        raise DspError(400, f"no offer {offer_json['@id']!r} in this catalog", consumer_pid=msg["consumerPid"]) \
            from None
    if target is not None and target != offer.dataset_id:
        raise DspError(400, f"offer {offer.id} is not for dataset {target!r}", consumer_pid=msg["consumerPid"])
    purpose = msg.get("purpose") if isinstance(msg.get("purpose"), str) else None
    row = Negotiation(role=Role.PROVIDER.value, provider_pid=new_pid(), consumer_pid=msg["consumerPid"],
                      state=N.REQUESTED.value, peer=peer, peer_base=callback, dataset_id=offer.dataset_id,
                      offer_id=offer.id, offer=odrl.canonical(offer_json), offered_by=Role.CONSUMER.value,
                      purpose=purpose[:200] if purpose else None, owner=offer.owner)
    session.add(row)
    session.flush()
    _audit(session, row, "received request", offer=offer.id, dataset=offer.dataset_id)
    _decide(session, row, connector.did)
    return 201, as_message(row)


def _callback(address: Any, peer: str, consumer_pid: str | None) -> str:
    try:
        return callback_on(address, peer)
    except ValueError as exc:
        raise DspError(400, str(exc), consumer_pid=consumer_pid) from None


def provider_receive(session: Session, connector: Connector, peer: str, provider_pid: str, kind: str,
                     body: Any) -> dict[str, Any]:
    """A message to ``/negotiations/{providerPid}/...``: ``request`` (a counter-offer), ``events`` (ACCEPTED),
    ``verification`` or ``termination``."""
    schema = {"request": "ContractRequestMessage", "events": "ContractNegotiationEventMessage",
              "verification": "ContractAgreementVerificationMessage",
              "termination": "ContractNegotiationTerminationMessage"}[kind]
    msg = valid(body, schema, error_kind="negotiation", provider_pid=provider_pid)
    if msg.get("providerPid") != provider_pid:
        raise DspError(400, "providerPid differs from the path's", provider_pid=provider_pid,
                       consumer_pid=msg.get("consumerPid"))
    row = find(session, Role.PROVIDER, peer, provider_pid, consumer_pid=msg.get("consumerPid"))
    if msg["consumerPid"] != row.consumer_pid:
        raise DspError(400, "consumerPid is not this negotiation's", provider_pid=provider_pid,
                       consumer_pid=msg["consumerPid"])
    action = {"request": "request", "verification": "verify", "termination": "terminate"}.get(kind) or \
        EVENT_MOVE.get(msg["eventType"], "")
    if action != "accept" and kind == "events":
        raise DspError(400, "a consumer sends no FINALIZED event", provider_pid=provider_pid,
                       consumer_pid=row.consumer_pid)
    _settle_pending(row, action, Role.CONSUMER)
    if action == "accept" and row.offered_by != Role.PROVIDER.value and N(row.state) == N.OFFERED:
        raise DspError(400, "the current offer is the consumer's: there is nothing of ours to accept",
                       provider_pid=provider_pid, consumer_pid=row.consumer_pid)
    if not _allowed(row, action, Role.CONSUMER, schema):
        return as_message(row)
    _move(row, action, Role.CONSUMER)
    if action == "terminate":
        row.error = _reason(msg)
        queue(row, None)
    elif action == "request":
        row.offer, row.offered_by = odrl.canonical(msg["offer"]), Role.CONSUMER.value
        _decide(session, row, connector.did)
    elif action == "accept":
        offer = session.get(Offer, row.offer_id) if row.offer_id else None
        if offer is not None and not offer.manual:
            prepare_agreement(session, row, offer, connector.did)
            queue(row, "agree")
    elif action == "verify":
        offer = session.get(Offer, row.offer_id) if row.offer_id else None
        if offer is None or not offer.manual:
            queue(row, "finalize")
    _audit(session, row, f"received {action}")
    return as_message(row)


def _reason(msg: dict[str, Any]) -> str:
    parts = [str(msg.get("code") or ""), *(str(r) for r in msg.get("reason", []) or [])]
    return "; ".join(p for p in parts if p)[:2000] or "terminated by the other side"


# -- consumer ---------------------------------------------------------------------------------------------------


def consumer_receive(session: Session, connector: Connector, peer: str, consumer_pid: str, kind: str,
                     body: Any) -> dict[str, Any]:
    """A message to ``<callback>/negotiations/{consumerPid}/...``: ``offers``, ``agreement``, ``events``
    (FINALIZED) or ``termination``."""
    schema = {"offers": "ContractOfferMessage", "agreement": "ContractAgreementMessage",
              "events": "ContractNegotiationEventMessage",
              "termination": "ContractNegotiationTerminationMessage"}[kind]
    msg = valid(body, schema, error_kind="negotiation", consumer_pid=consumer_pid)
    if msg.get("consumerPid") != consumer_pid:
        raise DspError(400, "consumerPid differs from the path's", consumer_pid=consumer_pid,
                       provider_pid=msg.get("providerPid"))
    row = find(session, Role.CONSUMER, peer, consumer_pid, provider_pid=msg.get("providerPid"))
    if msg.get("providerPid") != row.provider_pid:
        raise DspError(400, "providerPid is not this negotiation's", provider_pid=msg.get("providerPid"),
                       consumer_pid=consumer_pid)
    action = {"offers": "offer", "agreement": "agree", "termination": "terminate"}.get(kind) or \
        EVENT_MOVE.get(msg["eventType"], "")
    if kind == "events" and action != "finalize":
        raise DspError(400, "a provider sends no ACCEPTED event", provider_pid=row.provider_pid,
                       consumer_pid=consumer_pid)
    _settle_pending(row, action, Role.PROVIDER)
    if action == "agree" and N(row.state) == N.AGREED and msg["agreement"].get("@id") != row.agreement_id:
        raise DspError(400, "another agreement was received for this negotiation already",
                       provider_pid=row.provider_pid, consumer_pid=consumer_pid)
    if not _allowed(row, action, Role.PROVIDER, schema):
        return as_message(row)
    if action == "agree":
        why = _agreement_problem(row, connector, msg["agreement"])
        if why is not None:
            row.error = why
            queue(row, "terminate", {"code": "agreement", "reason": why})
            raise DspError(400, why, provider_pid=row.provider_pid, consumer_pid=consumer_pid)
    _move(row, action, Role.PROVIDER)
    if action == "terminate":
        row.error = _reason(msg)
        queue(row, None)
    elif action == "offer":
        row.offer, row.offered_by = odrl.canonical(msg["offer"]), Role.PROVIDER.value
    elif action == "agree":
        agreement = msg["agreement"]
        row.agreement_id = agreement["@id"]
        session.add(Agreement(id=agreement["@id"], role=Role.CONSUMER.value, negotiation_id=row.id,
                              provider=agreement["assigner"], consumer=agreement["assignee"],
                              dataset_id=agreement["target"], offer_id=row.offer_id or "",
                              policy=odrl.canonical(agreement), purpose=row.purpose, owner=row.owner,
                              peer_base=row.peer_base, signed_at=_timestamp(agreement.get("timestamp"))))
        if not row.manual:
            queue(row, "verify")
    elif action == "finalize":
        mark_finalized(session, row)
        _after_finalized(session, row, row.then_transfer)
    _audit(session, row, f"received {action}")
    return as_message(row)


def _after_finalized(session: Session, row: Negotiation, then: Any) -> None:
    """A negotiation started with a transfer to follow: request it now (``dataspace.transfer``)."""
    if isinstance(then, dict) and row.agreement_id:
        from twinengine.dataspace.transfer import start_consumer_transfer

        start_consumer_transfer(session, agreement_id=row.agreement_id, owner=row.owner, target=then)


def _timestamp(text: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return utcnow()


def _agreement_problem(row: Negotiation, connector: Connector, agreement: dict[str, Any]) -> str | None:
    """Why the consumer refuses an agreement: it must be the latest offer's rules byte for byte, for its
    dataset, between these two participants."""
    if agreement.get("@type") != "Agreement":
        return "the agreement is not an Agreement"
    if agreement.get("assignee") != connector.did or agreement.get("assigner") != row.peer:
        return "the agreement's parties are not this negotiation's"
    if row.dataset_id and agreement.get("target") != row.dataset_id:
        return f"the agreement's target is not {row.dataset_id}"
    offered = odrl.json_of(row.offer or "{}")
    if odrl.rules_text(agreement) != odrl.rules_text(offered):
        return "the agreement's policy is not the offer's, byte for byte"
    return None


def start_consumer(session: Session, connector: Connector, *, owner: str, provider_base: str, provider: str,
                   offer: dict[str, Any], dataset_id: str, purpose: str | None,
                   then_transfer: dict[str, Any] | None, manual: bool = False) -> Negotiation:
    """A negotiation this engine starts as consumer; its request goes out once the caller's unit of work
    commits (the state is INITIAL until the provider acknowledges it)."""
    row = Negotiation(role=Role.CONSUMER.value, consumer_pid=new_pid(), state=N.INITIAL.value, peer=provider,
                      peer_base=provider_base, dataset_id=dataset_id, offer_id=offer.get("@id"),
                      offer=odrl.canonical(offer), offered_by=Role.CONSUMER.value, purpose=purpose, owner=owner,
                      manual=manual)
    session.add(row)
    session.flush()
    row.then_transfer = then_transfer
    queue(row, "request")
    return row


def steward(session: Session, connector: Connector, row: Negotiation, action: str,
            counter: dict[str, Any] | None = None) -> None:
    """A local person's step (the steward's on the provider side, the consumer's own): checked against the
    state now, sent by the courier. ``counter``: the rules of a counter-offer (checked enforceable by the
    caller), which the provider's steward offers instead of the catalog's and the consumer requests instead of
    the provider's last offer. The provider's steward who agrees to the consumer's counter-offer agrees to its
    rules: the engine must be able to enforce them and they must permit this consumer."""
    role = Role(row.role)
    if (action, role) not in NEGOTIATION_MOVES:
        raise DspError(400, f"a {role} does not {action}")
    if counter is not None and (action, role) not in (("offer", Role.PROVIDER), ("request", Role.CONSUMER)):
        raise DspError(400, "a counter-offer's policy goes with an offer (the provider's) or a request (the "
                            "consumer's)")
    sources, _target = NEGOTIATION_MOVES[(action, role)]
    if N(row.state) not in sources or (row.pending is not None and action != "terminate"):
        raise DspError(400, f"cannot {action} in state {row.state}" +
                       (f" while {row.pending} is being sent" if row.pending else ""))
    if action in ("agree", "offer") and role is Role.PROVIDER:
        offer = session.get(Offer, row.offer_id) if row.offer_id else None
        if offer is None:
            raise DspError(400, "the offer is gone")
        if offer.withdrawn_at is not None:
            raise DspError(400, "the offer was withdrawn: nothing more is agreed or offered under it")
        if action == "agree":
            if row.offered_by == Role.CONSUMER.value:
                _may_agree(session, row, odrl.json_of(row.offer or "{}"), "offer")
            prepare_agreement(session, row, offer, connector.did)
        elif counter is not None:
            _may_agree(session, row, counter, "policy")
            row.offer, row.offered_by = _counter_offer(row.offer or offer.policy, counter), Role.PROVIDER.value
        else:
            row.offer, row.offered_by = offer.policy, Role.PROVIDER.value
    elif action == "request" and counter is not None:
        row.offer, row.offered_by = _counter_offer(row.offer or "{}", counter), Role.CONSUMER.value
    queue(row, action, {"code": "steward", "reason": "terminated by the steward"} if action == "terminate" else None)


def _counter_offer(current: str, rules: dict[str, Any]) -> str:
    """The offer that answers ``current`` with other ``rules``: a new ``@id``, the same target and parties."""
    kept = {k: v for k, v in odrl.json_of(current).items() if k not in odrl.RULE_KEYS and k != "@id"}
    return odrl.canonical({"@id": new_pid(), "@type": "Offer", **kept, **rules})


def _may_agree(session: Session, row: Negotiation, policy: dict[str, Any], where: str) -> None:
    """Refuse (422 naming ``where``) rules the engine cannot enforce, or that do not permit this consumer at
    negotiation (a counter-offer nobody could use)."""
    rules = {k: v for k, v in policy.items() if k in odrl.RULE_KEYS}
    try:
        odrl.check(rules)
    except odrl.PolicyError as exc:
        raise ValidationFailed.one(where, f"the engine cannot enforce this offer: {exc}") from None
    why = permit(rules, context_of(session, row.peer, odrl.Phase.NEGOTIATION, purpose=row.purpose))
    if why is not None:
        raise ValidationFailed.one(where, f"the offer does not permit {row.peer}: {why}")


def due(session: Session, now: datetime, limit: int = 20) -> list[int]:
    query = select(Negotiation.id).where(Negotiation.pending.is_not(None), Negotiation.due_at <= now)
    return list(session.scalars(query.order_by(Negotiation.due_at).limit(limit)))


def settle(row: Negotiation, action: str, answer: Any) -> None:
    """Apply the acknowledgement of our ``action`` (the courier calls it in a short unit of work)."""
    role = Role(row.role)
    if row.pending != action:
        return
    if action == "offer" and row.state == N.INITIAL:  # our proposal: the consumer's answer names its process
        consumer_pid = answer.get("consumerPid") if isinstance(answer, dict) else None
        if not isinstance(consumer_pid, str) or answer.get("providerPid") != row.provider_pid:
            row.error, row.state = "the consumer's answer named no consumerPid of this negotiation", N.TERMINATED.value
        else:
            row.consumer_pid, row.state = consumer_pid, N.OFFERED.value
            if answer.get("state") == N.TERMINATED:
                row.state, row.error = N.TERMINATED.value, row.error or "the consumer had terminated it"
        queue(row, None)
        return
    if action == "request" and row.state == N.INITIAL:
        provider_pid = answer.get("providerPid") if isinstance(answer, dict) else None
        if not isinstance(provider_pid, str):
            row.error = "the provider's answer named no providerPid"
            row.state = N.TERMINATED.value
            queue(row, None)
            return
        row.provider_pid, row.state = provider_pid, N.REQUESTED.value
        if answer.get("state") == N.TERMINATED:  # our request again, after the provider had ended it
            row.state, row.error = N.TERMINATED.value, row.error or "the provider had terminated it"
        queue(row, None)
        return
    sources, _target = NEGOTIATION_MOVES[(action, role)]
    if N(row.state) in sources:
        _move(row, action, role)
    queue(row, None)
