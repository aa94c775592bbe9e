"""The transfer process state machine, in both roles, kept in the store (HttpData-PULL and HttpData-PUSH).

The provider accepts a request only under a finalized, unrevoked agreement with the requesting participant, and
only when the policy permits one more transfer (``count`` is counted here: a transfer counts once the provider
accepts it). Under a stream offer it first takes the snapshot of the history the transfer serves. Its start
message carries a data address with a token of its own, short-lived and bound to the
transfer and so to the agreement (``dataspace.dataplane``). The consumer then pulls, lands what it pulled in its
lake and sends completion: both sides end COMPLETED.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth import odrl
from twinengine.auth.audit import record
from twinengine.dataspace.agreements import finalized_by_use
from twinengine.dataspace.bucket_address import sealed
from twinengine.dataspace.catalog import context_of, permit
from twinengine.dataspace.connector import Connector
from twinengine.dataspace.identity import callback_on
from twinengine.dataspace.models import Agreement, Offer, TransferProcess
from twinengine.dataspace.protocol import (
    FORMATS,
    PULL,
    PUSH,
    S3_PUSH,
    TRANSFER_FINAL,
    TRANSFER_MOVES,
    DspError,
    Role,
    TransferState,
    acknowledged,
    message,
    new_pid,
    queried,
    valid,
)
from twinengine.errors import NotFound
from twinengine.store.base import utcnow

__all__ = ["Role", "as_message", "consumer_receive", "due", "first_step", "offer_of", "provider_receive",
           "provider_request", "queue", "settle", "start_consumer_transfer", "steward"]

T = TransferState
KINDS = {"start": "TransferStartMessage", "completion": "TransferCompletionMessage",
         "termination": "TransferTerminationMessage", "suspension": "TransferSuspensionMessage"}
ACTION_OF = {"start": "start", "completion": "complete", "termination": "terminate", "suspension": "suspend"}


def as_message(row: TransferProcess) -> dict[str, Any]:
    return message("TransferProcess", providerPid=row.provider_pid, consumerPid=row.consumer_pid, state=row.state)


def queue(row: TransferProcess, action: str | None, detail: dict[str, Any] | None = None) -> None:
    row.pending, row.pending_detail, row.attempts = action, detail, 0
    row.due_at = utcnow() if action else None
    row.claimed_until = None
    row.updated_at = utcnow()


def _move(row: TransferProcess, action: str, sender: Role) -> None:
    _sources, target = TRANSFER_MOVES[(action, sender)]
    row.state = target.value
    row.updated_at = utcnow()
    if target in TRANSFER_FINAL and row.format == S3_PUSH and row.role == Role.PROVIDER.value:
        row.data_address = None  # the consumer's bucket keys (sealed): kept no longer than the transfer runs
    if target in TRANSFER_FINAL or target == T.SUSPENDED:
        row.token_expires_at = row.token_expires_at if target == T.SUSPENDED else None
        if row.pending not in (None, "terminate"):
            queue(row, None)


def _settle_pending(row: TransferProcess, action: str, sender: Role) -> None:
    if row.pending is None or (row.pending, Role(row.role)) not in TRANSFER_MOVES:
        return
    sources, target = TRANSFER_MOVES[(row.pending, Role(row.role))]
    if T(row.state) in sources and target in TRANSFER_MOVES[(action, sender)][0]:
        _move(row, row.pending, Role(row.role))
        queue(row, None)


def _allowed(row: TransferProcess, action: str, sender: Role, kind: str) -> bool:
    sources, target = TRANSFER_MOVES[(action, sender)]
    state = T(row.state)
    if state == target:
        return False
    if state not in sources:
        raise DspError(400, f"a {kind} is not allowed in state {state}", kind="transfer",
                       provider_pid=row.provider_pid, consumer_pid=row.consumer_pid)
    return True


def find(session: Session, role: Role, peer: str, pid: str, *, provider_pid: Any = None) -> TransferProcess:
    """The transfer ``pid`` (ours in ``role``) of ``peer``, else 404; ``provider_pid`` as in negotiations."""
    column = TransferProcess.provider_pid if role is Role.PROVIDER else TransferProcess.consumer_pid
    row = session.scalars(select(TransferProcess).where(TransferProcess.role == role.value, column == pid)
                          .with_for_update()).first()
    if row is not None and row.peer == peer and row.state == T.INITIAL:
        acknowledged(row, provider_pid)
    if row is None or row.peer != peer or row.state == T.INITIAL:
        raise DspError(404, f"no transfer process {pid!r}", kind="transfer", code="404",
                       provider_pid=pid if role is Role.PROVIDER else None,
                       consumer_pid=pid if role is Role.CONSUMER else None)
    return row


def _audit(session: Session, row: TransferProcess, what: str, **detail: Any) -> None:
    record(session, actor=row.peer if what.startswith("received") else row.owner, action="dataspace.transfer",
           target=row.provider_pid or row.consumer_pid or "", outcome="success",
           detail={"event": what, "role": row.role, "state": row.state, "agreement": row.agreement_id, **detail})


def _reason(msg: dict[str, Any]) -> str:
    parts = [str(msg.get("code") or ""), *(str(r) for r in msg.get("reason", []) or [])]
    return "; ".join(p for p in parts if p)[:2000] or "terminated by the other side"


# -- provider ---------------------------------------------------------------------------------------------------


def transfer_gate(session: Session, agreement: Agreement, phase: odrl.Phase, *, transfers: int,
                  now: datetime | None = None, footprint: Any = None) -> str | None:
    """Why a transfer (or a data access) under ``agreement`` is refused now; None when the policy permits it.
    ``footprint``: what a data access reads (``odrl.Context.footprint``)."""
    if agreement.revoked_at is not None:
        return f"agreement {agreement.id} was revoked"
    if not agreement.finalized:
        return f"agreement {agreement.id} is not finalized"
    return permit(odrl.json_of(agreement.policy),
                  context_of(session, agreement.consumer, phase, purpose=agreement.purpose,
                             agreed_at=agreement.signed_at, transfers=transfers, now=now, footprint=footprint))


def provider_request(session: Session, connector: Connector, peer: str, body: Any) -> tuple[int, dict[str, Any]]:
    """``POST /transfers/request``: a new transfer process (201), or the one this consumer process has."""
    msg = valid(body, "TransferRequestMessage", error_kind="transfer")
    existing = session.scalars(select(TransferProcess).where(
        TransferProcess.role == Role.PROVIDER.value, TransferProcess.peer == peer,
        TransferProcess.consumer_pid == msg["consumerPid"]).with_for_update()).first()
    if existing is not None:
        return 201, as_message(existing)
    if session.scalar(select(TransferProcess.id).where(TransferProcess.role == Role.PROVIDER.value,
                                                       TransferProcess.consumer_pid == msg["consumerPid"])):
        raise DspError(400, "consumerPid names another participant's transfer", kind="transfer",
                       consumer_pid=msg["consumerPid"])
    pids = {"consumer_pid": msg["consumerPid"]}
    agreement = session.scalars(select(Agreement).where(Agreement.id == msg["agreementId"],
                                                        Agreement.role == Role.PROVIDER.value)).first()
    if agreement is None or agreement.consumer != peer:
        raise DspError(400, f"no agreement {msg['agreementId']!r} with {peer}", kind="transfer", **pids)
    # Locks in the courier's order, the negotiation before its agreement (mark_finalized): the other order
    # deadlocked on PostgreSQL with the courier finalizing the same negotiation.
    if not agreement.finalized:
        finalized_by_use(session, agreement)
    session.flush()  # what finalized_by_use changed, before the row is read again under its lock (not lost)
    session.refresh(agreement, with_for_update=True)
    offered = session.get(Offer, agreement.offer_id)
    formats = FORMATS if offered is None or offered.collection is None else (PULL,)  # queries are pulled
    if msg["format"] not in formats:
        raise DspError(400, f"format {msg['format']!r} is not offered ({', '.join(formats)})", kind="transfer",
                       **pids)
    try:
        callback = callback_on(msg.get("callbackAddress"), peer)
        address = _push_address(msg, peer) if msg["format"] == PUSH else \
            sealed(connector, msg.get("dataAddress")) if msg["format"] == S3_PUSH else None
    except ValueError as exc:
        raise DspError(400, str(exc), kind="transfer", **pids) from None
    row = TransferProcess(role=Role.PROVIDER.value, provider_pid=new_pid(), consumer_pid=msg["consumerPid"],
                          agreement_id=agreement.id, state=T.REQUESTED.value, format=msg["format"], peer=peer,
                          peer_base=callback, owner=agreement.owner, data_address=address)
    session.add(row)
    session.flush()
    why = transfer_gate(session, agreement, odrl.Phase.TRANSFER, transfers=agreement.transfers + 1)
    if why is not None:
        row.error = why
        queue(row, "terminate", {"code": "policy", "reason": why})
    else:
        agreement.transfers += 1
        if offered is None or not offered.manual:
            queue(row, first_step(session, row))
    _audit(session, row, "received request", refused=why)
    return 201, as_message(row)


def _push_address(msg: dict[str, Any], peer: str) -> dict[str, Any]:
    """The consumer's address a push goes to: on the origin of the consumer's DID (the engine pushes nowhere
    else), with a bearer token; ``ValueError`` says what is wrong."""
    address = msg.get("dataAddress")
    if not isinstance(address, dict):
        raise ValueError(f"a {PUSH} transfer needs the consumer's dataAddress")
    try:
        endpoint = callback_on(address.get("endpoint"), peer)
    except ValueError as exc:
        raise ValueError(str(exc).replace("callbackAddress", "the dataAddress's endpoint")) from None
    token = next((p.get("value") for p in address.get("endpointProperties") or []
                  if isinstance(p, dict) and p.get("name") == "authorization"), None)
    if not isinstance(token, str) or not token:
        raise ValueError("the dataAddress has no authorization property")
    return {"@type": "DataAddress", "endpointType": address.get("endpointType"), "endpoint": endpoint,
            "endpointProperties": [{"@type": "EndpointProperty", "name": "authorization", "value": token}]}


def offer_of(session: Session, row: TransferProcess) -> Offer | None:
    """The offer a provider's transfer serves (through its agreement)."""
    return session.scalar(select(Offer).join(Agreement, Agreement.offer_id == Offer.id).where(
        Agreement.id == row.agreement_id, Agreement.role == Role.PROVIDER.value))


def first_step(session: Session, row: TransferProcess) -> str:
    """What a provider does to start ``row``: send the start, or, under a stream offer, first take the snapshot
    of the history it serves (``dataspace.snapshots``; the courier then sends the start)."""
    if row.snapshot is None:
        offer = offer_of(session, row)
        if offer is not None and offer.stream is not None and not (offer.live and row.format == PUSH):
            return "snapshot"  # a live push takes its parts as it goes
    return "start"


PUSHED = (PUSH, S3_PUSH)  # formats whose provider sends the data once started


def provider_receive(session: Session, peer: str, provider_pid: str, kind: str, body: Any) -> dict[str, Any]:
    """A consumer's message to ``/transfers/{providerPid}/...``: start (resume), completion, termination or
    suspension."""
    msg = valid(body, KINDS[kind], error_kind="transfer", provider_pid=provider_pid)
    row = _matching(session, Role.PROVIDER, peer, provider_pid, msg)
    action = ACTION_OF[kind]
    _settle_pending(row, action, Role.CONSUMER)
    if not _allowed(row, action, Role.CONSUMER, KINDS[kind]):
        return as_message(row)
    _move(row, action, Role.CONSUMER)
    if action == "start" and row.format in PUSHED:
        queue(row, "push")  # the consumer resumed it: push again (what was pushed lands once)
    if action in ("terminate", "suspend"):
        row.error = _reason(msg) if action == "terminate" else row.error
        if action == "terminate":
            queue(row, None)
    _audit(session, row, f"received {action}")
    return as_message(row)


def _matching(session: Session, role: Role, peer: str, pid: str, msg: dict[str, Any]) -> TransferProcess:
    own, other = ("providerPid", "consumerPid") if role is Role.PROVIDER else ("consumerPid", "providerPid")
    if msg.get(own) != pid:
        mine, theirs = (pid, msg.get(other)) if role is Role.PROVIDER else (msg.get(other), pid)
        raise DspError(400, f"{own} differs from the path's", kind="transfer", provider_pid=mine,
                       consumer_pid=theirs)
    row = find(session, role, peer, pid, provider_pid=msg.get("providerPid") if role is Role.CONSUMER else None)
    if msg.get(other) != getattr(row, _py(other)):
        raise DspError(400, f"{other} is not this transfer's", kind="transfer", provider_pid=row.provider_pid,
                       consumer_pid=row.consumer_pid)
    return row


def _py(name: str) -> str:
    return {"providerPid": "provider_pid", "consumerPid": "consumer_pid"}[name]


# -- consumer ---------------------------------------------------------------------------------------------------


def consumer_receive(session: Session, peer: str, consumer_pid: str, kind: str, body: Any) -> dict[str, Any]:
    """A provider's message to ``<callback>/transfers/{consumerPid}/...``."""
    msg = valid(body, KINDS[kind], error_kind="transfer", consumer_pid=consumer_pid)
    row = _matching(session, Role.CONSUMER, peer, consumer_pid, msg)
    action = ACTION_OF[kind]
    _settle_pending(row, action, Role.PROVIDER)
    if action == "start" and T(row.state) == T.STARTED and msg.get("dataAddress"):
        row.data_address = msg["dataAddress"]  # a start delivered again carries the newest address
        return as_message(row)
    if not _allowed(row, action, Role.PROVIDER, KINDS[kind]):
        return as_message(row)
    if action == "complete" and row.format == PUSH:
        missing = push_missing(row)
        if missing:
            raise DspError(400, f"the push is not complete: {missing}", kind="transfer",
                           provider_pid=row.provider_pid, consumer_pid=row.consumer_pid)
    _move(row, action, Role.PROVIDER)
    if action == "complete" and row.format == S3_PUSH and row.target and row.landed is None:
        queue(row, "land")  # what the provider wrote into our bucket, checked and registered (``bucket_push``)
    if action == "start":
        if msg.get("dataAddress"):
            row.data_address = msg["dataAddress"]
        if row.target and row.landed is None and row.format == PULL and not queried(row.data_address):
            # a push: the provider sends the files to our address, then its completion; an EDR collection's
            # address is kept for the queries its owner sends through this engine (``/transfers/{id}/edr``)
            queue(row, "pull")
    elif action == "terminate":
        row.error = _reason(msg)
        queue(row, None)
    _audit(session, row, f"received {action}")
    return as_message(row)


def push_missing(row: TransferProcess) -> str | None:
    """What a consumer's push transfer still lacks before it may complete: the provider's listing, or files of
    it not landed whole (``dataspace.push``); None when everything listed is here."""
    if not row.files:
        return "the provider listed no files"
    waiting = [str(f.get("name")) for f in row.files if not f.get("landed")]
    return f"{len(waiting)} listed files have not arrived ({', '.join(waiting[:5])})" if waiting else None


def start_consumer_transfer(session: Session, *, agreement_id: str, owner: str,
                            target: dict[str, Any] | None) -> TransferProcess:
    """A transfer this engine requests as consumer under its finalized agreement; ``target`` says where the pulled
    (or, with its ``format`` HttpData-PUSH, pushed) data lands (None: a pull whose data address is kept for the
    caller to use)."""
    format = str((target or {}).get("format") or PULL)
    if format not in FORMATS:
        raise DspError(400, f"format {format!r} is not spoken here ({', '.join(FORMATS)})", kind="transfer")
    if format in PUSHED and not target:
        raise DspError(400, f"a {format} transfer lands in this engine's lake: name where", kind="transfer")
    agreement = session.scalar(select(Agreement).where(Agreement.id == agreement_id,
                                                       Agreement.role == Role.CONSUMER.value))
    if agreement is None:
        raise NotFound(f"no agreement {agreement_id!r}")
    if not agreement.finalized:
        raise DspError(400, f"agreement {agreement_id} is not finalized yet", kind="transfer")
    due = odrl.delete_by(odrl.json_of(agreement.policy), agreement.signed_at) if target else None
    row = TransferProcess(role=Role.CONSUMER.value, consumer_pid=new_pid(), agreement_id=agreement.id,
                          state=T.INITIAL.value, format=format, peer=agreement.provider,
                          peer_base=agreement.peer_base, target=target, owner=owner, delete_by=due)
    session.add(row)
    session.flush()
    queue(row, "request")
    return row


def steward(session: Session, row: TransferProcess, action: str) -> None:
    """A local step on a transfer (start, suspend, complete, terminate): checked now, sent by the courier."""
    role = Role(row.role)
    if (action, role) not in TRANSFER_MOVES:
        raise DspError(400, f"a {role} does not {action} a transfer", kind="transfer")
    sources, _target = TRANSFER_MOVES[(action, role)]
    busy = row.pending is not None and row.pending != "push"  # a push (a live one never ends) may be interrupted
    if T(row.state) not in sources or (busy and action != "terminate"):
        raise DspError(400, f"cannot {action} a transfer in state {row.state}" +
                       (f" while {row.pending} is under way" if row.pending else ""), kind="transfer")
    if action == "start" and role is Role.PROVIDER:
        action = first_step(session, row)
    queue(row, action, {"code": "steward", "reason": f"{action} by {role}"} if action == "terminate" else None)


def due(session: Session, now: datetime, limit: int = 20) -> list[int]:
    query = select(TransferProcess.id).where(TransferProcess.pending.is_not(None), TransferProcess.due_at <= now)
    return list(session.scalars(query.order_by(TransferProcess.due_at).limit(limit)))


def settle(row: TransferProcess, action: str, answer: Any) -> None:
    """Apply the acknowledgement of our ``action`` in a short unit of work."""
    if row.pending != action:
        return
    if action == "request" and row.state == T.INITIAL:
        provider_pid = answer.get("providerPid") if isinstance(answer, dict) else None
        if not isinstance(provider_pid, str):
            row.error, row.state = "the provider's answer named no providerPid", T.TERMINATED.value
        else:
            row.provider_pid, row.state = provider_pid, T.REQUESTED.value
            if answer.get("state") == T.TERMINATED:  # our request again, after the provider had ended it
                row.state, row.error = T.TERMINATED.value, row.error or "the provider had terminated it"
        queue(row, None)
        return
    role = Role(row.role)
    sources, _target = TRANSFER_MOVES[(action, role)]
    if T(row.state) in sources:
        _move(row, action, role)
    queue(row, None)
