"""Sending what each process owes the other side: claim it in a short unit of work, send it with none open (the
network never waits inside a transaction: ``store.guard``), apply the answer in another short one.

A message that fails to arrive is retried (1 s, doubling) up to ``dataspace_attempts`` times, then the process is
terminated on this side. A 4xx answer means the other side refuses it: the process is terminated (and the other
side told, unless what was refused was the termination itself). A restart loses nothing: the claim expires and
the message is sent again, which the other side acknowledges without a second effect; a pull cut off by a restart
is pulled again once the lake hands over the reservation of the file it was writing (``lake_stale_after``), and
a stream offer's snapshot cut off likewise is taken again (or found taken).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth import odrl
from twinengine.dataspace import (
    bucket_address,
    bucket_push,
    copies,
    dataplane,
    negotiation,
    peers,
    push,
    snapshots,
    transfer,
)
from twinengine.dataspace.agreements import mark_finalized
from twinengine.dataspace.connector import Connector
from twinengine.dataspace.models import Agreement, Negotiation, TransferProcess
from twinengine.dataspace.protocol import (
    ENDPOINT_TYPE,
    PULL,
    PUSH,
    S3_PUSH,
    NegotiationState,
    Role,
    TransferState,
    message,
)
from twinengine.errors import Conflict
from twinengine.store.base import utcnow

__all__ = ["deliver", "run_once"]

log = logging.getLogger("twinengine.dataspace")
N, T = NegotiationState, TransferState
EVENT = {"accept": "ACCEPTED", "finalize": "FINALIZED"}
PATH = {"request": "request", "accept": "events", "verify": "agreement/verification", "terminate": "termination",
        "offer": "offers", "agree": "agreement", "finalize": "events"}
TRANSFER_PATH = {"start": "start", "complete": "completion", "suspend": "suspension", "terminate": "termination"}
TRANSFER_KIND = {"start": "TransferStartMessage", "complete": "TransferCompletionMessage",
                 "suspend": "TransferSuspensionMessage", "terminate": "TransferTerminationMessage"}


@dataclass
class Job:
    model: type[Negotiation] | type[TransferProcess]
    id: int
    action: str
    url: str = ""
    body: dict[str, Any] | None = None
    audience: str = ""
    local: dict[str, Any] = field(default_factory=dict)  # a pull: what it needs


def _negotiation_job(connector: Connector, row: Negotiation) -> Job:
    action, pids = row.pending or "", {"providerPid": row.provider_pid, "consumerPid": row.consumer_pid}
    detail = row.pending_detail or {}
    if row.role == Role.CONSUMER:
        if action == "request" and row.state == N.INITIAL:
            body = message("ContractRequestMessage", consumerPid=row.consumer_pid,
                           offer={**odrl.json_of(row.offer or "{}"), "target": row.dataset_id},
                           callbackAddress=connector.callback, purpose=row.purpose)
            return Job(Negotiation, row.id, action, f"{row.peer_base}/negotiations/request", body, row.peer)
        url = f"{row.peer_base}/negotiations/{row.provider_pid}/{PATH[action]}"
    elif action == "offer" and row.state == N.INITIAL:  # a proposal: the offer that starts the negotiation
        body = message("ContractOfferMessage", providerPid=row.provider_pid,
                       offer={**odrl.json_of(row.offer or "{}"), "target": row.dataset_id},
                       callbackAddress=connector.base)
        return Job(Negotiation, row.id, action, f"{row.peer_base}/negotiations/offers", body, row.peer)
    else:
        url = f"{row.peer_base}/negotiations/{row.consumer_pid}/{PATH[action]}"
    if action == "request":
        body = message("ContractRequestMessage", **pids, offer=odrl.json_of(row.offer or "{}"))
    elif action in EVENT:
        body = message("ContractNegotiationEventMessage", **pids, eventType=EVENT[action])
    elif action == "verify":
        body = message("ContractAgreementVerificationMessage", **pids)
    elif action == "terminate":
        body = message("ContractNegotiationTerminationMessage", **pids, code=str(detail.get("code") or "terminated"),
                       reason=[str(detail.get("reason") or row.error or "terminated")[:1000]])
    elif action == "offer":
        body = message("ContractOfferMessage", **pids, offer={**odrl.json_of(row.offer or "{}"),
                                                               "target": row.dataset_id})
    else:  # agree
        raise RuntimeError("an agreement job is built with its agreement")
    return Job(Negotiation, row.id, action, url, body, row.peer)


def _claim(session: Session, connector: Connector, model: Any, row_id: int) -> Job | None:
    row = session.scalars(select(model).where(model.id == row_id).with_for_update()).first()
    now = utcnow()
    if row is None or row.pending is None or (row.due_at and row.due_at > now) or \
            (row.claimed_until and row.claimed_until > now):
        return None
    row.attempts += 1
    row.claimed_until = now + connector.settings.dataspace_message_timeout * 2 + timedelta(seconds=5)
    if model is Negotiation:
        if row.pending == "agree":
            agreement = session.scalar(select(Agreement).where(Agreement.id == row.agreement_id,
                                                               Agreement.role == Role.PROVIDER.value))
            if agreement is None:
                row.pending, row.error = None, "the agreement to send is gone"
                return None
            body = message("ContractAgreementMessage", providerPid=row.provider_pid, consumerPid=row.consumer_pid,
                           agreement=odrl.json_of(agreement.policy))
            return Job(Negotiation, row.id, "agree", f"{row.peer_base}/negotiations/{row.consumer_pid}/agreement",
                       body, row.peer)
        return _negotiation_job(connector, row)
    return _transfer_job(session, connector, row)


def _transfer_job(session: Session, connector: Connector, row: TransferProcess) -> Job:
    action = row.pending or ""
    pids = {"providerPid": row.provider_pid, "consumerPid": row.consumer_pid}
    if action == "request":
        fields: dict[str, Any] = {}
        if row.format == PUSH and row.consumer_pid is not None:  # where the provider pushes, and its bearer
            fields["dataAddress"] = {"@type": "DataAddress", "endpointType": ENDPOINT_TYPE,
                                     "endpoint": connector.push_url(row.consumer_pid), "endpointProperties": [
                                         {"@type": "EndpointProperty", "name": "authorization",
                                          "value": connector.push_token(row.consumer_pid)},
                                         {"@type": "EndpointProperty", "name": "authType", "value": "bearer"}]}
        if row.format == S3_PUSH and row.consumer_pid is not None:  # the bucket the provider writes into
            fields["dataAddress"] = bucket_address.address_for(session, connector, str((row.target or {}).get(
                "endpoint")), row.consumer_pid)
        body = message("TransferRequestMessage", consumerPid=row.consumer_pid, agreementId=row.agreement_id,
                       format=row.format, callbackAddress=connector.callback, **fields)
        return Job(TransferProcess, row.id, action, f"{row.peer_base}/transfers/request", body, row.peer)
    if action in ("push", "land"):
        return Job(TransferProcess, row.id, action, local={"transfer": row.id, "format": row.format})
    if action == "snapshot":
        return Job(TransferProcess, row.id, action, local={"transfer": row.id})
    if action == "pull":
        agreement = session.scalar(select(Agreement).where(Agreement.id == row.agreement_id,
                                                           Agreement.role == Role.CONSUMER.value))
        return Job(TransferProcess, row.id, action, local={
            "address": row.data_address or {}, "target": row.target or {}, "provider": row.peer,
            "agreement": odrl.json_of(agreement.policy) if agreement else {}, "pid": row.consumer_pid})
    own = row.consumer_pid if row.role == Role.PROVIDER else row.provider_pid
    url = f"{row.peer_base}/transfers/{own}/{TRANSFER_PATH[action]}"
    fields = {}
    if action == "start" and row.role == Role.PROVIDER and row.format == PULL:
        fields["dataAddress"] = dataplane.data_address(session, connector, row, dataplane.new_token(row, connector))
    if action in ("terminate", "suspend"):
        detail = row.pending_detail or {}
        fields.update(code=str(detail.get("code") or action), reason=[str(detail.get("reason") or row.error or
                                                                          action)[:1000]])
    return Job(TransferProcess, row.id, action, url, message(TRANSFER_KIND[action], **pids, **fields), row.peer)


def _perform(connector: Connector, job: Job) -> tuple[int, Any]:
    if job.action == "snapshot":
        return 200, snapshots.take(connector, job.local["transfer"])
    if job.action == "push":
        sender = bucket_push.push if job.local.get("format") == S3_PUSH else push.push
        return 200, sender(connector, job.local["transfer"])
    if job.action == "land":
        return 200, bucket_push.land(connector, job.local["transfer"])
    if job.action == "pull":
        pulled = dataplane.land(connector, address=job.local["address"], target=job.local["target"],
                                agreement=job.local["agreement"], provider=job.local["provider"],
                                transfer_pid=job.local["pid"])
        return 200, pulled
    return connector.send(job.url, job.body, job.audience)


def _apply(session: Session, connector: Connector, job: Job, status: int | None, answer: Any,
           failure: str | None, wait: timedelta = timedelta(0)) -> None:
    row: Any = session.scalars(select(job.model).where(job.model.id == job.id).with_for_update()).first()
    if row is not None and job.action == "push" and status is not None and 200 <= status < 300:
        row.files, row.bytes = answer.files, answer.bytes  # delivered, whatever was asked of the row meanwhile
    if row is None or row.pending != job.action:
        return
    machine: Any = negotiation if job.model is Negotiation else transfer
    final = {N.TERMINATED.value, N.FINALIZED.value, T.COMPLETED.value}
    if status is not None and 200 <= status < 300:
        if job.action == "pull":
            row.landed, row.files, row.bytes = answer.did, answer.files, answer.bytes
            machine.queue(row, "complete")
            return
        if job.action == "land":  # after the provider's completion: the files it wrote, registered
            row.landed, row.files, row.bytes, row.error = answer.did, answer.files, answer.bytes, None
            machine.queue(row, None)
            return
        if job.action == "snapshot":
            from twinengine.lake.dids import get_did

            held = get_did(session, answer)
            row.snapshot, row.files = answer, [{"name": answer.rsplit("/", 1)[-1], "bytes": held.bytes,
                                                "sha256": held.sha256}]
            machine.queue(row, "start")
            return
        if job.action == "push":
            if answer.again:  # a live stream: what arrives next, after a while
                machine.queue(row, "push")
                row.due_at = utcnow() + connector.settings.dataspace_live_interval
            else:
                machine.queue(row, "complete")  # the provider ends a push: the consumer checks that all arrived
            return
        machine.settle(row, job.action, answer)
        if job.model is Negotiation and row.state == N.FINALIZED:
            mark_finalized(session, row)
        elif job.model is TransferProcess and job.action == "start" and row.role == Role.PROVIDER \
                and row.format in transfer.PUSHED and row.state == T.STARTED:
            machine.queue(row, "push")
        return
    if status is not None and 400 <= status < 500:
        refused = _reason_of(answer) or f"HTTP {status}"
        row.error = f"{job.action} refused by the other side: {refused}"[:2000]
        if job.action == "terminate" or status == 404 or row.state in final or row.state == N.INITIAL:
            row.state = N.TERMINATED.value
            machine.queue(row, None)
        else:
            machine.queue(row, "terminate", {"code": "refused", "reason": row.error})
        return
    row.error = failure or f"HTTP {status}"
    if job.action == "land" and (row.attempts >= connector.settings.dataspace_attempts or status is not None):
        machine.queue(row, None)  # COMPLETED, its files not registered: the error says why
        return
    if row.attempts >= connector.settings.dataspace_attempts:
        if job.action in ("snapshot", "push"):  # the consumer waits for data: tell it why none comes
            machine.queue(row, "terminate", {"code": "snapshot", "reason": row.error})
            return
        row.state = N.TERMINATED.value
        machine.queue(row, None)
        return
    row.claimed_until = None
    row.due_at = utcnow() + max(wait, timedelta(seconds=min(60, 2 ** (row.attempts - 1))))


def _reason_of(answer: Any) -> str | None:
    if isinstance(answer, dict):
        reason = answer.get("reason")
        if isinstance(reason, list):
            return "; ".join(str(r) for r in reason)[:1000]
        if isinstance(answer.get("message"), str):
            return str(answer["message"])[:1000]
    return None


def deliver(connector: Connector, model: Any, row_id: int) -> bool:
    """Claim, send and settle one process's pending message; False when it was not due or taken elsewhere."""
    with connector.db.session() as session:
        job = _claim(session, connector, model, row_id)
    if job is None:
        return False
    status: int | None = None
    answer: Any = None
    failure: str | None = None
    wait = timedelta(0)  # the least time before a retry
    try:
        status, answer = _perform(connector, job)
    except peers.PeerUnreachable as exc:
        failure = str(exc)
        if job.action == "push" and " answered HTTP 409" in failure:
            # the consumer still holds a file of this push as being written (by a push that stopped with this
            # engine): its lake hands the reservation over once stale; not a reason to end the transfer
            wait = connector.lake.tuning.stale_after
        elif job.action in ("pull", "push") and " answered HTTP 4" in failure:
            status, answer = 403, {"reason": [failure]}
    except Exception as exc:  # recorded on the process, retried, never a crash of the loop
        log.warning("dataspace %s of %s %s failed: %s", job.action, job.model.__tablename__, job.id, exc)
        failure = f"{type(exc).__name__}: {exc}"
        if job.action in ("pull", "snapshot") and type(exc) is Conflict:
            # a file of the landing dataset is being written: by a pull of this transfer that stopped with its
            # engine (kill -9), whose reservation the lake hands over once stale; not a reason to end the transfer
            wait = connector.lake.tuning.stale_after
        elif job.action == "pull" or (job.action == "push" and isinstance(exc, push.PushRefused)):
            status, answer = 422, {"reason": [failure]}  # a pull that failed, or a push the policy refuses
    with connector.db.session() as session:
        _apply(session, connector, job, status, answer, failure, wait)
    return True


def run_once(connector: Connector) -> int:
    """Send what is due now; returns how many were handled."""
    now = utcnow()
    with connector.db.session(readonly=True) as session:
        work = [(Negotiation, i) for i in negotiation.due(session, now)] + \
            [(TransferProcess, i) for i in transfer.due(session, now)]
    handled = 0
    for model, row_id in work:
        handled += int(deliver(connector, model, row_id))
    return handled + copies.delete_due(connector)  # a consumer's copies whose delete duty is due
