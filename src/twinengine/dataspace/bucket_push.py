"""The data plane of AmazonS3-PUSH, both roles: the provider writes an agreement's files into the consumer's S3
bucket, and the consumer registers what it finds there in its lake, each file checked against its SHA-256.

Consumer: a transfer landing on one of its lake's S3 endpoints whose admins let providers write there
(``options.accept_pushes``) sends, in its request, the bucket, a prefix of its own under the endpoint's
(``dataspace-incoming/<consumer process>/``), the S3 service's address and the endpoint's keys. Those keys leave
the engine: an endpoint that accepts pushes is one whose bucket and keys are meant for incoming data (the
endpoint's option says so; nothing else is writable with them). Once the provider's completion arrives, the
courier reads the provider's listing (``manifest.json`` under the prefix) and registers each listed file as a
replica of the landing dataset at the path the provider wrote, after reading it back and checking its size and
digests; a file that does not match is not registered and the transfer records why.

Provider: after its start message is acknowledged, the courier checks the agreement and its policy at the access
phase (as for every push), writes each file, then the listing, to the consumer's bucket with the keys it was
given (kept sealed by the engine's keyring while the transfer runs, and dropped once it ends), records each in
the usage record and the audit log, and queues the completion. The S3 service's address is checked like any
other participant's (``dataspace_peer_hosts``).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from twinengine.auth import odrl
from twinengine.auth.principal import SYSTEM
from twinengine.dataspace import peers
from twinengine.dataspace.bucket_address import LISTING, incoming, unsealed
from twinengine.dataspace.connector import Connector
from twinengine.dataspace.dataplane import Pulled, file_name, files_of, landing, record_access
from twinengine.dataspace.models import Agreement, Offer, TransferProcess
from twinengine.dataspace.protocol import S3_PUSH, Role, TransferState
from twinengine.dataspace.push import Pushed, PushRefused, permitted

__all__ = ["land", "push"]

T = TransferState
# -- provider -----------------------------------------------------------------------------------------------------

def push(connector: Connector, transfer_id: int) -> Pushed:
    """Write the files of provider transfer ``transfer_id`` into the consumer's bucket, then the listing."""
    from twinengine.lake.replicas import open_replica

    with connector.db.session() as session:
        row = session.get(TransferProcess, transfer_id)
        if row is None or row.role != Role.PROVIDER or row.format != S3_PUSH:
            raise LookupError(f"no provider {S3_PUSH} transfer {transfer_id}")
        agreement = permitted(session, row)
        offer = session.get(Offer, agreement.offer_id)
        listing = [{"name": file_name(d, offer.did if offer else ""), "bytes": d.bytes or 0, "sha256": d.sha256,
                    "adler32": d.adler32, "mediaType": d.media_type, "did": d.did}
                   for d in files_of(session, agreement, row)]
        kept = dict(row.data_address or {})
    peers.check(connector.settings, str(kept.get("endpoint")))  # the S3 service: a host the engine may reach
    try:
        bucket = unsealed(connector, kept)
    except Exception as exc:  # a sealed address this engine cannot open: nothing can be written
        raise PushRefused(f"the consumer's bucket address cannot be read: {exc}") from None
    total = 0
    for item in listing:
        with connector.db.session(readonly=True) as session:
            readable = open_replica(session, connector.lake, principal=SYSTEM, did=str(item["did"]))
        with bucket.writer(str(item["name"]), size_hint=int(item["bytes"])) as writer:
            for chunk in readable.read():
                writer.write(chunk)
            writer.commit()
        with connector.db.session() as session:
            record_access(session, session.get(TransferProcess, transfer_id), outcome="served",
                          file=str(item["name"]), size=int(item["bytes"]))
        total += int(item["bytes"])
    files = [{k: v for k, v in f.items() if k != "did"} for f in listing]
    with bucket.writer(LISTING) as writer:  # last: its presence says every file is whole
        writer.write(json.dumps({"files": files}).encode())
        writer.commit()
    return Pushed(files=[{k: v for k, v in f.items() if k in ("name", "bytes", "sha256")} for f in files],
                  bytes=total)


# -- consumer -----------------------------------------------------------------------------------------------------

def land(connector: Connector, transfer_id: int) -> Pulled:
    """Register what the provider wrote under this transfer's prefix as the landing dataset's files, each read
    back and checked against the listing's size and digests; ``peers.PeerUnreachable`` says what is missing."""
    from twinengine.lake.checksums import Hasher
    from twinengine.lake.dids import attach
    from twinengine.lake.endpoints import get_endpoint
    from twinengine.lake.uploads import register_replica

    with connector.db.session(readonly=True) as session:
        row = session.get(TransferProcess, transfer_id)
        if row is None or row.role != Role.CONSUMER or row.format != S3_PUSH or not row.target \
                or row.consumer_pid is None:
            raise LookupError(f"no consumer {S3_PUSH} transfer {transfer_id}")
        target, pid, provider = dict(row.target), row.consumer_pid, row.peer
        agreement = session.scalar(select(Agreement).where(Agreement.id == row.agreement_id,
                                                           Agreement.role == Role.CONSUMER.value))
        policy = odrl.json_of(agreement.policy) if agreement else {}
        endpoint = str(target.get("endpoint"))
        backend: Any = connector.lake.backend(get_endpoint(session, endpoint))
    prefix = incoming(pid)
    try:
        listed = json.loads(b"".join(backend.read(f"{prefix}/{LISTING}")))
    except Exception as exc:
        raise peers.PeerUnreachable(f"the provider wrote no listing at {prefix}/{LISTING}: {exc}") from None
    files = listed.get("files") if isinstance(listed, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(f.get("name"), str)
                                              and "/" not in f["name"] and f["name"] not in ("", ".", "..")
                                              for f in files):
        raise peers.PeerUnreachable("the provider's listing is not a list of file names")
    principal, did, meta, _ = landing(connector, target={**target, "endpoint": endpoint}, agreement=policy,
                                      provider=provider, transfer_pid=pid)
    landed, total = [], 0
    for f in files:
        path = f"{prefix}/{f['name']}"
        hasher = Hasher()
        try:
            for chunk in backend.read(path):  # read back outside any unit of work
                hasher.update(chunk)
        except Exception as exc:
            raise peers.PeerUnreachable(f"{f['name']} is listed but cannot be read at {path}: {exc}") from None
        sums = hasher.result()
        if (sums.bytes, sums.sha256) != (f.get("bytes"), f.get("sha256")):
            raise peers.PeerUnreachable(f"{f['name']} at {path} is {sums.bytes} bytes with SHA-256 {sums.sha256}, "
                                        f"not the {f.get('bytes')} bytes and {f.get('sha256')} listed")
        with connector.db.session() as session:
            register_replica(session, connector.lake, principal=principal, did=f"{did}/{f['name']}",
                             endpoint=endpoint, checksums=sums, media_type=f.get("mediaType"), meta=meta,
                             path=path, checked=True)
            attach(session, principal=principal, parent=did, children=[f"{did}/{f['name']}"])
        landed.append({"name": f["name"], "bytes": sums.bytes, "sha256": sums.sha256})
        total += sums.bytes
    return Pulled(did=did, files=landed, bytes=total)
