"""The data plane of HttpData-PULL: the provider serves an offer's files to the bearer of a transfer's token, and
the consumer pulls them into its lake.

Provider: ``GET /dsp/data/{providerPid}`` lists the files (name, size, SHA-256) and ``.../{name}`` sends one. Every
access checks the token (its SHA-256 against the transfer's, not expired), the transfer (STARTED), the agreement
(finalized, not revoked) and the policy at the access phase, and is recorded (``ds_accesses`` and the audit log),
refused ones too; a refusal sends no byte of data.

Consumer: the files land as one lake dataset of the person who asked (or of the twin they named), each file
checked against the SHA-256 the provider listed, the dataset's ``meta.dataspace`` saying where it came from, under
which agreement and policy. Pulling waits on the network: it runs outside every unit of work.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth import odrl
from twinengine.auth.audit import record
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.dataspace import peers
from twinengine.dataspace.connector import Connector
from twinengine.dataspace.models import Access, Agreement, Offer, TransferProcess
from twinengine.dataspace.offers import PROVENANCE_KEY
from twinengine.dataspace.protocol import EDR_CONFORMANCE, ENDPOINT_TYPE, TransferState, address_property
from twinengine.dataspace.transfer import offer_of, transfer_gate
from twinengine.lake.dids import children_of, get_did
from twinengine.lake.replicas import open_replica
from twinengine.lake.schemas import DidType
from twinengine.store.base import utcnow

__all__ = ["DataRefused", "Pulled", "data_address", "file_name", "files_of", "land", "landing", "new_token",
           "open_file", "queried_collection", "record_access"]

T = TransferState


class DataRefused(Exception):
    """Raised when the data address refuses a request (no or a wrong token, a transfer or agreement that no
    longer allows it); ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def new_token(row: TransferProcess, connector: Connector) -> str:
    """A fresh token for ``row``'s data address (its SHA-256 is kept; the token itself only travels)."""
    token = secrets.token_urlsafe(32)
    row.token_hash = hashlib.sha256(token.encode()).hexdigest()
    row.token_expires_at = utcnow() + connector.settings.dataspace_token_ttl
    return token


def data_address(session: Session, connector: Connector, row: TransferProcess, token: str) -> dict[str, Any]:
    """Where the consumer pulls: the files' listing, or, under an EDR collection offer, an OGC API - EDR root
    (``conformsTo`` and ``collection`` say so) that answers queries of that collection only."""
    assert row.provider_pid is not None
    offer = offer_of(session, row)
    queried = offer is not None and offer.collection is not None
    properties: list[dict[str, Any]] = [{"@type": "EndpointProperty", "name": "authorization", "value": token},
                  {"@type": "EndpointProperty", "name": "authType", "value": "bearer"}]
    if queried:
        assert offer is not None
        properties += [{"@type": "EndpointProperty", "name": "conformsTo", "value": EDR_CONFORMANCE},
                       {"@type": "EndpointProperty", "name": "collection", "value": offer.collection}]
    endpoint = connector.edr_url(row.provider_pid) if queried else connector.data_url(row.provider_pid)
    return {"@type": "DataAddress", "endpointType": ENDPOINT_TYPE, "endpoint": endpoint,
            "endpointProperties": properties}


def record_access(session: Session, row: TransferProcess | None, *, outcome: str, reason: str | None = None,
            file: str | None = None, size: int = 0, peer: str | None = None) -> None:
    session.add(Access(agreement_id=row.agreement_id if row else None, transfer_id=row.id if row else None,
                       participant=row.peer if row else peer, file=file, bytes=size, outcome=outcome, reason=reason))
    record(session, actor=row.peer if row else (peer or "anonymous"), action="dataspace.data",
           target=(row.provider_pid if row else None) or "", outcome="success" if outcome == "served" else "denied",
           detail={"file": file, "bytes": size, "agreement": row.agreement_id if row else None, "reason": reason})


def authorize(session: Session, provider_pid: str, authorization: str | None, *,
              footprint: Any = None) -> tuple[TransferProcess, Agreement]:
    """The transfer and agreement a data request may read under (``footprint``: the area it reads, as
    ``odrl.Context`` takes it); ``DataRefused`` (recorded) otherwise."""
    token = (authorization or "").removeprefix("Bearer ").removeprefix("bearer ").strip()
    row = session.scalars(select(TransferProcess).where(TransferProcess.role == "provider",
                                                        TransferProcess.provider_pid == provider_pid)
                          .with_for_update()).first()
    if not token:
        record_access(session, row, outcome="refused", reason="no token")
        raise DataRefused(401, "the data address needs its token (Authorization: Bearer ...)")
    digest = hashlib.sha256(token.encode()).hexdigest()
    if row is None or row.token_hash is None or not secrets.compare_digest(row.token_hash, digest):
        record_access(session, row, outcome="refused", reason="a token of another transfer, or none issued")
        raise DataRefused(403, "this token does not open this data address")
    if row.pending == "start" and T(row.state) in (T.REQUESTED, T.SUSPENDED):
        row.state, row.pending, row.due_at = T.STARTED.value, None, None  # its start reached the consumer
    if T(row.state) != T.STARTED:
        record_access(session, row, outcome="refused", reason=f"transfer {row.state}")
        raise DataRefused(403, f"the transfer is {row.state}: its data address is closed")
    if row.token_expires_at is None or row.token_expires_at <= utcnow():
        record_access(session, row, outcome="refused", reason="token expired")
        raise DataRefused(403, "the data address's token has expired")
    agreement = session.scalar(select(Agreement).where(Agreement.id == row.agreement_id, Agreement.role == "provider"))
    why = "no agreement" if agreement is None else \
        transfer_gate(session, agreement, odrl.Phase.ACCESS, transfers=agreement.transfers, footprint=footprint)
    if why is not None or agreement is None:
        record_access(session, row, outcome="refused", reason=why)
        raise DataRefused(403, why or "no agreement")
    return row, agreement


def queried_collection(session: Session, row: TransferProcess, agreement: Agreement, collection_id: str | None, *,
                       query: str, record: bool = True) -> str:
    """The collection an EDR request of transfer ``row`` may read: the offer's, and only when the request names
    it (None: the offer's, whichever it is; another: 404); recorded as an access (``query``: what was asked),
    or, with ``record`` False, left for ``answered`` to record once the answer's size is known."""
    offer = session.get(Offer, agreement.offer_id)
    if offer is None or offer.collection is None:
        record_access(session, row, outcome="refused", file=query[:200], reason="not an EDR collection offer")
        raise DataRefused(404, "this transfer serves files, not EDR queries")
    if collection_id not in (None, offer.collection):
        record_access(session, row, outcome="refused", file=query[:200], reason="another collection")
        raise DataRefused(404, f"no collection {collection_id!r} under this agreement (it offers "
                               f"{offer.collection!r})")
    if record:
        record_access(session, row, outcome="served", file=query[:200])
    return offer.collection


def answered(session: Session, provider_pid: str, *, query: str, size: int | None, problem: str | None = None) -> None:
    """Record an EDR query of transfer ``provider_pid`` once answered: served with the answer's ``size`` in
    bytes, or refused with the ``problem`` its own parameters had (nothing was served)."""
    row = session.scalars(select(TransferProcess).where(TransferProcess.role == "provider",
                                                        TransferProcess.provider_pid == provider_pid)).first()
    if problem is None:
        record_access(session, row, outcome="served", file=query[:200], size=size or 0)
    else:
        record_access(session, row, outcome="refused", file=query[:200], reason=problem[:500])


def files_of(session: Session, agreement: Agreement, row: TransferProcess | None = None) -> list[Any]:
    """The lake files of the agreement's offer: the file itself, or a dataset's files; under a stream offer, the
    snapshot of the history that transfer ``row`` serves (``dataspace.snapshots``)."""
    offer = session.get(Offer, agreement.offer_id)
    if offer is None or offer.collection is not None:  # a collection's queries are served, never its files
        return []
    if offer.stream is not None:
        return [get_did(session, row.snapshot)] if row is not None and row.snapshot else []
    did = get_did(session, offer.did)
    if did.type == DidType.FILE:
        return [did]
    return sorted((c for c in children_of(session, did) if c.type == DidType.FILE), key=lambda c: c.name)


def file_name(did: Any, offer_did: str) -> str:
    """A file's name in the data address: its name below the offered dataset's (``levels.csv``)."""
    base = offer_did.split(":", 1)[1] + "/"
    name: str = did.name
    return name[len(base):] if name.startswith(base) else name.rsplit("/", 1)[-1]


def manifest(session: Session, connector: Connector, row: TransferProcess, agreement: Agreement) -> dict[str, Any]:
    offer = session.get(Offer, agreement.offer_id)
    if offer is not None and offer.collection is not None:
        record_access(session, row, outcome="refused", file="(list)", reason="an EDR collection offer")
        raise DataRefused(404, f"this transfer serves EDR queries of {offer.collection} at "
                               f"{connector.edr_url(row.provider_pid or '')}, not files")
    files = [{"name": file_name(f, offer.did if offer else ""), "bytes": f.bytes, "sha256": f.sha256,
              "mediaType": f.media_type} for f in files_of(session, agreement, row)]
    record_access(session, row, outcome="served", file="(list)")
    return {"agreement": agreement.id, "dataset": agreement.dataset_id, "files": files}


def open_file(session: Session, connector: Connector, row: TransferProcess, agreement: Agreement,
              name: str) -> tuple[Any, int, str, str | None]:
    """(readable, size, sha256, media type) of the file ``name`` under the agreement, the access recorded."""
    offer = session.get(Offer, agreement.offer_id)
    for did in files_of(session, agreement, row):
        if offer is not None and file_name(did, offer.did) == name:
            readable = open_replica(session, connector.lake, principal=SYSTEM, did=did.did)
            record_access(session, row, outcome="served", file=name, size=did.bytes or 0)
            row.bytes += did.bytes or 0
            return readable, did.bytes or 0, did.sha256 or "", did.media_type
    record_access(session, row, outcome="refused", file=name, reason="no such file")
    raise DataRefused(404, f"no file {name!r} under this agreement")


# -- consumer -------------------------------------------------------------------------------------------------


@dataclass
class Pulled:
    did: str
    files: list[dict[str, Any]]
    bytes: int


def land(connector: Connector, *, address: dict[str, Any], target: dict[str, Any], agreement: dict[str, Any],
         provider: str, transfer_pid: str) -> Pulled:
    """Pull every file of ``address`` into the dataset ``target['did']`` (checked against the listed SHA-256s);
    network and lake I/O outside any unit of work, the dataset made in short ones of its own."""
    from twinengine.lake.uploads import Expected, upload

    endpoint, token = str(address.get("endpoint") or ""), address_property(address, "authorization")
    listing = _listing(connector, endpoint, token)
    principal, did, meta, lake_endpoint = landing(connector, target=target, agreement=agreement, provider=provider,
                                                  transfer_pid=transfer_pid)
    files, total = [], 0
    for item in listing:
        name = str(item["name"])
        with peers.open_stream(connector.settings, f"{endpoint}/{name}", token) as response:
            outcome = upload(connector.db, connector.lake, principal=principal, did=f"{did}/{name}",
                             endpoint=lake_endpoint, chunks=response.iter_bytes(1 << 20), size_hint=item.get("bytes"),
                             expected=Expected(sha256=item.get("sha256")), dataset=did,
                             media_type=item.get("mediaType"), meta=meta)  # each file carries the terms
        files.append({"name": name, "bytes": outcome.checksums.bytes, "sha256": outcome.checksums.sha256})
        total += outcome.checksums.bytes
    return Pulled(did=did, files=files, bytes=total)


def landing(connector: Connector, *, target: dict[str, Any], agreement: dict[str, Any], provider: str,
            transfer_pid: str) -> tuple[Principal, str, dict[str, Any], str]:
    """(who lands it, the dataset, the metadata each landed DID carries, the lake endpoint): the dataset made
    (once) with the provenance and the terms the copy is held under (``lake.terms`` enforces them)."""
    from twinengine.lake.dids import add_did

    who = target.get("principal") or {}
    principal = Principal(name=str(who.get("name")), role=Role(who.get("role", "user")),
                          groups=frozenset(who.get("groups") or ()))
    did = str(target["did"])
    policy = {k: agreement[k] for k in odrl.RULE_KEYS if k in agreement}
    duties = odrl.obligations(policy)
    provenance: dict[str, Any] = {"provider": provider, "agreement": agreement.get("@id"),
                                  "dataset": agreement.get("target"), "transfer": transfer_pid, "policy": policy,
                                  "signed_at": agreement.get("timestamp"), "obligations": duties}
    if "attribute" in duties:
        provenance["attribution"] = f"data of {provider} ({agreement.get('target')})"
    meta = {PROVENANCE_KEY: provenance}
    with connector.db.session() as session:
        add_did(session, principal=principal, did=did, type=DidType.DATASET, meta=meta, exist_ok=True,
                twin=target.get("twin"))
        lake_endpoint = target.get("endpoint") or default_endpoint(session, connector)
    return principal, did, meta, lake_endpoint


def _listing(connector: Connector, endpoint: str, token: str | None) -> list[dict[str, Any]]:
    with peers.open_stream(connector.settings, endpoint, token) as response:
        body = response.read()
    import json

    try:
        found = json.loads(body)
    except ValueError:
        raise peers.PeerUnreachable("the data address did not list its files") from None
    files = found.get("files") if isinstance(found, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in files):
        raise peers.PeerUnreachable("the data address did not list its files")
    for f in files:
        if "/" in f["name"] or f["name"] in ("", ".", ".."):
            raise peers.PeerUnreachable(f"the data address names a file {f['name']!r}")
    return files


def default_endpoint(session: Session, connector: Connector) -> str:
    from twinengine.lake.models import Endpoint

    if connector.settings.lake_endpoint:
        return connector.settings.lake_endpoint
    name = session.scalar(select(Endpoint.name).where(Endpoint.write.is_(True)).order_by(Endpoint.name).limit(1))
    if name is None:
        raise peers.PeerUnreachable("this engine has no writable lake endpoint to land the data on")
    return str(name)


def stream(readable: Any) -> Iterator[bytes]:
    yield from readable.read()
