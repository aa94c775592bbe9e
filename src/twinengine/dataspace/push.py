"""The data plane of HttpData-PUSH, both roles: the provider sends an agreement's files to the address the consumer
gave in its transfer request, and the consumer lands what arrives in its lake.

Consumer: its request carries ``/dsp/push/{consumerPid}`` and a bearer only this engine can make
(``Connector.push_token``: a keyed digest of the process id, so a request sent again names the same one). Once the
transfer is STARTED, ``POST`` there takes the provider's listing (name, bytes, SHA-256 of each file) and makes the
landing dataset, with the provenance and terms a pulled copy gets; ``PUT .../{name}`` streams one listed file into
it, checked against the listed SHA-256 while it is written (a mismatch leaves nothing behind and is refused). The
provider's completion is accepted only once every listed file has landed whole (``transfer.push_missing``).

A live stream offer's transfer goes on: every ``dataspace_live_interval`` the provider lists and pushes the part of
the stream that arrived since the last (``snapshots.take_part``: named by its offsets, so parts follow each other
without a gap or a repeat), until the transfer is suspended (it resumes where it stopped) or ended.

Provider: after its start message is acknowledged, the courier checks the agreement and its policy at the access
phase (as every read of a pull is checked), sends the listing, then each file, recording every one in the usage
record and the audit log, then queues the completion. Every request goes through the guarded client of
``peers``, to an address on the consumer's origin (checked when the request arrived); all of it outside any unit
of work.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth import odrl
from twinengine.auth.principal import SYSTEM
from twinengine.dataspace import peers, snapshots
from twinengine.dataspace.connector import Connector
from twinengine.dataspace.dataplane import DataRefused, file_name, files_of, landing, record_access
from twinengine.dataspace.models import Agreement, Offer, TransferProcess
from twinengine.dataspace.protocol import PUSH, Role, TransferState, address_property
from twinengine.dataspace.transfer import transfer_gate

__all__ = ["PushRefused", "Pushed", "accept_file", "accept_listing", "permitted", "push"]

T = TransferState
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_FILES = 10_000


class PushRefused(Exception):
    """Raised on the provider when its policy no longer permits the push (revoked, expired): the transfer ends."""


@dataclass
class Pushed:
    files: list[dict[str, Any]]
    bytes: int
    again: bool = False  # a live stream: push what arrives next, after ``dataspace_live_interval``


# -- provider -----------------------------------------------------------------------------------------------------

def push(connector: Connector, transfer_id: int) -> Pushed:
    """Send the files of provider transfer ``transfer_id`` to the consumer's address: listing, then each file.
    Under a live stream offer, send the part of the stream that arrived since the last one (none: nothing)."""
    from twinengine.lake.dids import get_did
    from twinengine.lake.replicas import open_replica

    with connector.db.session() as session:
        row = _provider_row(session, transfer_id)
        agreement = permitted(session, row)
        offer = session.get(Offer, agreement.offer_id)
        live = offer is not None and offer.live and offer.stream is not None
        done = [dict(f) for f in row.files or []] if live else []
        before = row.bytes if live else 0
        listing = [] if live else [
            {"name": file_name(d, offer.did if offer else ""), "bytes": d.bytes or 0, "sha256": d.sha256,
             "mediaType": d.media_type, "did": d.did} for d in files_of(session, agreement, row)]
        address = dict(row.data_address or {})
    if live:
        part = snapshots.take_part(connector, transfer_id, done[-1]["offsets"][1] if done else 0)
        if part is None:
            return Pushed(files=done, bytes=before, again=True)
        with connector.db.session(readonly=True) as session:
            held = get_did(session, part.did)
            listing = [{"name": part.name, "bytes": held.bytes or 0, "sha256": held.sha256,
                        "mediaType": held.media_type, "did": part.did, "offsets": [part.start, part.end]}]
    endpoint, token = str(address.get("endpoint") or ""), address_property(address, "authorization")
    if not endpoint or token is None:
        raise PushRefused("the consumer gave no address to push to")
    with connector.db.session() as session:
        record_access(session, session.get(TransferProcess, transfer_id), outcome="served", file="(list)")
    status, answer = peers.post_json(connector.settings, endpoint, {"files": [
        {k: v for k, v in f.items() if k not in ("did", "offsets")} for f in listing]}, token)
    if not 200 <= status < 300:
        raise peers.PeerUnreachable(f"{endpoint} answered HTTP {status}: {str(answer)[:300]}")
    total = before
    for item in listing:
        with connector.db.session(readonly=True) as session:
            readable = open_replica(session, connector.lake, principal=SYSTEM, did=str(item["did"]))
        peers.put_stream(connector.settings, f"{endpoint}/{item['name']}", token, readable.read(),
                         size=int(item["bytes"]), media_type=item["mediaType"])
        with connector.db.session() as session:
            record_access(session, session.get(TransferProcess, transfer_id), outcome="served",
                          file=str(item["name"]), size=int(item["bytes"]))
        total += int(item["bytes"])
    sent = [{k: v for k, v in f.items() if k not in ("did", "mediaType")} for f in listing]
    return Pushed(files=done + sent, bytes=total, again=live)


def permitted(session: Session, row: TransferProcess) -> Agreement:
    """The agreement a push of provider transfer ``row`` goes under, once its policy permits the access now;
    ``PushRefused`` otherwise (the refusal recorded and committed)."""
    if row.state != T.STARTED:
        raise PushRefused(f"the transfer is {row.state}")
    agreement = session.scalar(select(Agreement).where(Agreement.id == row.agreement_id,
                                                       Agreement.role == Role.PROVIDER.value))
    why = "no agreement" if agreement is None else \
        transfer_gate(session, agreement, odrl.Phase.ACCESS, transfers=agreement.transfers)
    if why is not None or agreement is None:
        record_access(session, row, outcome="refused", reason=why)
        session.commit()
        raise PushRefused(why or "no agreement")
    return agreement


def _provider_row(session: Session, transfer_id: int) -> TransferProcess:
    row = session.get(TransferProcess, transfer_id)
    if row is None or row.role != Role.PROVIDER or row.format != PUSH:
        raise LookupError(f"no provider push transfer {transfer_id}")
    return row


# -- consumer -----------------------------------------------------------------------------------------------------

def _bearer(connector: Connector, consumer_pid: str, authorization: str | None) -> None:
    """``DataRefused`` unless ``authorization`` is the bearer this engine gave for ``consumer_pid``."""
    token = (authorization or "").removeprefix("Bearer ").removeprefix("bearer ").strip()
    if not token:
        raise DataRefused(401, "the push address needs its token (Authorization: Bearer ...)")
    if not secrets.compare_digest(token, connector.push_token(consumer_pid)):
        raise DataRefused(403, "this token does not open this push address")


def _authorize(session: Session, connector: Connector, consumer_pid: str, authorization: str | None) -> TransferProcess:
    """The consumer's push transfer ``consumer_pid`` when ``authorization`` is its bearer and it is STARTED;
    ``DataRefused`` otherwise (nothing is written)."""
    _bearer(connector, consumer_pid, authorization)
    row = session.scalars(select(TransferProcess).where(TransferProcess.role == Role.CONSUMER.value,
                                                        TransferProcess.consumer_pid == consumer_pid)
                          .with_for_update()).first()
    if row is None or row.format != PUSH or not row.target:
        raise DataRefused(404, "no push transfer here")
    if row.state == T.SUSPENDED and row.pending == "start":
        # our resumption reached the provider (it pushes again) before its acknowledgement reached us
        row.state, row.pending, row.due_at = T.STARTED.value, None, None
    if row.state != T.STARTED:
        raise DataRefused(403, f"the transfer is {row.state}: its push address is closed")
    return row


def _checked_listing(body: Any) -> list[dict[str, Any]]:
    files = body.get("files") if isinstance(body, dict) else None
    if not isinstance(files, list) or not files or len(files) > MAX_FILES:
        raise DataRefused(400, f"files: a list of 1 to {MAX_FILES} files")
    seen: set[str] = set()
    for i, f in enumerate(files):
        name = f.get("name") if isinstance(f, dict) else None
        if not isinstance(name, str) or not name or "/" in name or name in (".", "..") or len(name) > 200 \
                or name in seen:
            raise DataRefused(400, f"files[{i}].name: a file name, once, without '/'")
        if not isinstance(f.get("bytes"), int) or f["bytes"] < 0:
            raise DataRefused(400, f"files[{i}].bytes: a size in bytes")
        if not isinstance(f.get("sha256"), str) or not _SHA256.match(f["sha256"]):
            raise DataRefused(400, f"files[{i}].sha256: 64 lower-case hex digits")
        if f.get("mediaType") is not None and (not isinstance(f["mediaType"], str) or len(f["mediaType"]) > 128):
            raise DataRefused(400, f"files[{i}].mediaType: a media type")
        seen.add(name)
    return [{"name": f["name"], "bytes": f["bytes"], "sha256": f["sha256"], "mediaType": f.get("mediaType"),
             "landed": False} for f in files]


def _where(session: Session, row: TransferProcess) -> dict[str, Any]:
    """What ``dataplane.landing`` needs of consumer transfer ``row``: its target, agreement, provider, pid."""
    agreement = session.scalar(select(Agreement).where(Agreement.id == row.agreement_id,
                                                       Agreement.role == Role.CONSUMER.value))
    return {"target": dict(row.target or {}), "agreement": odrl.json_of(agreement.policy) if agreement else {},
            "provider": row.peer, "transfer_pid": row.consumer_pid}


def accept_listing(connector: Connector, consumer_pid: str, authorization: str | None, body: Any) -> dict[str, Any]:
    """The provider's listing: kept on the transfer (files listed again must be the same; a live push adds its
    parts), and the landing dataset made with its provenance and terms."""
    _bearer(connector, consumer_pid, authorization)
    listing = _checked_listing(body)
    with connector.db.session() as session:
        row = _authorize(session, connector, consumer_pid, authorization)
        held = {f["name"]: f for f in row.files or []}
        if any(f["name"] in held and held[f["name"]]["sha256"] != f["sha256"] for f in listing):
            raise DataRefused(409, "a file listed before is listed again with other bytes")
        if len(held) + len(listing) > MAX_FILES:
            raise DataRefused(400, f"files: more than {MAX_FILES} files in one transfer")
        row.files = [*held.values(), *(f for f in listing if f["name"] not in held)]  # a live push adds parts
        where = _where(session, row)
    _principal, did, _meta, _endpoint = landing(connector, **where)
    with connector.db.session() as session:
        row = _authorize(session, connector, consumer_pid, authorization)
        row.landed = did
    return {"landing": did, "files": len(listing)}


def accept_file(connector: Connector, consumer_pid: str, authorization: str | None, name: str,
                chunks: Iterable[bytes], size: int | None) -> dict[str, Any]:
    """One listed file, streamed into the landing dataset and checked against the listed SHA-256."""
    from twinengine.lake.uploads import Expected, upload

    with connector.db.session() as session:
        row = _authorize(session, connector, consumer_pid, authorization)
        item = next((f for f in row.files or [] if f.get("name") == name), None)
        if item is None:
            raise DataRefused(404, f"no file {name!r} in this transfer's listing")
        where = _where(session, row)
    principal, did, meta, endpoint = landing(connector, **where)
    outcome = upload(connector.db, connector.lake, principal=principal, did=f"{did}/{name}", endpoint=endpoint,
                     chunks=chunks, size_hint=size, expected=Expected(sha256=item["sha256"], bytes=item["bytes"]),
                     dataset=did, media_type=item.get("mediaType"), meta=meta)
    with connector.db.session() as session:
        row = _authorize(session, connector, consumer_pid, authorization)
        row.files = [{**f, "landed": True} if f.get("name") == name else f for f in row.files or []]
        row.bytes = sum(int(f["bytes"]) for f in row.files if f.get("landed"))
    return {"name": name, "bytes": outcome.checksums.bytes, "sha256": outcome.checksums.sha256}
