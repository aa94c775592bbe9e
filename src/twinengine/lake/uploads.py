"""Putting bytes into the lake: upload a stream (checksums computed while it flows) or register bytes already
on an endpoint. This is the Python API workflows and streams call to save results and segments.

An upload runs in three short units of work around the byte stream, so no database lock is held while bytes
flow: (1) reserve the file and a COPYING replica, (2) stream into a temp file / multipart upload with adler32
and sha256 on the fly, (3) make the bytes durable and only then mark the replica AVAILABLE. A mismatch with a
checksum the caller declared aborts the write and removes the reservation: nothing is left behind.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.groups import check_owner_group
from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.errors import (
    ChecksumMismatch,
    Conflict,
    DataCorrupted,
    DidConflict,
    PermissionDenied,
    StorageFull,
    ValidationFailed,
)
from twinengine.formats import media_type_for
from twinengine.lake.checksums import Checksums, Hasher, normalize_adler32, normalize_sha256
from twinengine.lake.context import Lake
from twinengine.lake.dids import attach, get_did, parse_did
from twinengine.lake.endpoints import get_endpoint, take_quota, usage
from twinengine.lake.grants import may_read, require_change
from twinengine.lake.models import Did, Endpoint, Replica, Transfer
from twinengine.lake.schemas import DidType, ReplicaState
from twinengine.lake.storage import CHUNK
from twinengine.lake.storage.background import BackgroundWriter
from twinengine.lake.storage.buffers import BufferPool, pooled_chunks
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["Expected", "UploadOutcome", "file_chunks", "register_replica", "replica_path", "upload", "upload_file"]


# Chunks of a file upload and how many may wait for the writer: small enough that hashing and writing overlap
# from the first megabyte on, enough of them that neither side waits for the other (other streams, whose
# chunk size the caller picks, keep a queue of 4).
UPLOAD_CHUNK = 1024 * 1024
WRITE_AHEAD = 16


def replica_path(scope: str, name: str) -> str:
    """Where a file lives on every endpoint: ``scope/ab/cd/name``, spread by a hash like Rucio's layout."""
    digest = hashlib.md5(f"{scope}:{name}".encode(), usedforsecurity=False).hexdigest()
    return f"{scope}/{digest[:2]}/{digest[2:4]}/{name}"


@dataclass(frozen=True)
class Expected:
    """Checksums the caller vouches for; a mismatch rejects the bytes."""

    sha256: str | None = None
    adler32: str | None = None
    bytes: int | None = None

    @classmethod
    def parse(cls, sha256: str | None, adler32: str | None, size: int | None = None) -> Expected:
        try:
            return cls(normalize_sha256(sha256) if sha256 else None,
                       normalize_adler32(adler32) if adler32 else None, size)
        except ValueError as exc:
            raise ChecksumMismatch(str(exc), details=[{"loc": "sha256" if "sha256" in str(exc) else "adler32",
                                                       "msg": str(exc)}]) from None

    def check(self, got: Checksums, *, what: str) -> None:
        for field, want, have in (("sha256", self.sha256, got.sha256), ("adler32", self.adler32, got.adler32),
                                  ("bytes", self.bytes, got.bytes)):
            if want is not None and want != have:
                raise ChecksumMismatch(f"{what}: {field} is {have}, but {want} was declared; nothing was stored",
                                       details=[{"loc": field, "msg": f"expected {want}, got {have}"}])


@dataclass
class UploadOutcome:
    did: str
    endpoint: str
    checksums: Checksums
    created: bool


def _reserve(session: Session, *, principal: Principal, did: str, endpoint: str, size_hint: int | None,
             media_type: str | None, meta: dict[str, Any] | None, dataset: str | None,
             stale_before: datetime | None = None,
             group: str | None = None) -> tuple[int, int, str, bool, bool] | Checksums:
    """Unit (1): the file row (new ones have no checksums yet) and a COPYING replica on the endpoint. A new
    file is ``group``'s, or else the group's or the twin's whose dataset it goes into (the dataset's readers read
    its files); a file goes only into a dataset the caller may change (``lake.grants.may_change``)."""
    require(principal, "lake.write")
    scope, name = parse_did(did)
    twin: str | None = None
    if dataset is not None:
        holder = require_change(session, principal, get_did(session, dataset, loc="dataset"), loc="dataset")
        if holder.type != DidType.DATASET:  # refused before a byte is written
            raise ValidationFailed.one("dataset", f"{dataset} is not a dataset; files go into datasets")
        twin = holder.owner_twin if group is None else None
        group = group if group is not None else holder.owner_group
    if group is not None:
        check_owner_group(session, principal, group, what="datasets")
    ep = get_endpoint(session, endpoint)
    if not ep.write:
        raise PermissionDenied(f"endpoint {ep.name} does not take writes (its write switch is off)")
    if ep.quota_bytes is not None:  # reservations on an endpoint with a quota take turns (see endpoints.take_quota)
        session.execute(select(Endpoint.id).where(Endpoint.id == ep.id).with_for_update(key_share=True))
    if ep.quota_bytes is not None and size_hint is not None and usage(session, ep.id)[0] + size_hint > ep.quota_bytes:
        raise StorageFull(f"endpoint {ep.name}: {size_hint} more bytes exceed its quota of {ep.quota_bytes}")
    row = session.scalar(select(Did).where(Did.scope == scope, Did.name == name))
    new_did = row is None
    if row is None:
        row = Did(scope=scope, name=name, type=DidType.FILE.value, media_type=media_type or media_type_for(name),
                  meta=dict(meta or {}),
                  created_by=principal.name, owner_group=group, owner_twin=twin)
        session.add(row)
        session.flush()
    elif not may_read(session, principal, row):
        raise _taken(did)
    elif row.type != DidType.FILE:
        raise DidConflict(f"{did} is a {row.type}, not a file")
    replica = session.scalar(select(Replica).where(Replica.did_id == row.id, Replica.endpoint_id == ep.id))
    if replica is not None:
        if replica.state == ReplicaState.AVAILABLE and row.sha256:
            return Checksums(row.bytes or 0, row.adler32 or "", row.sha256)
        abandoned = (replica.state == ReplicaState.COPYING and stale_before is not None
                     and replica.updated_at <= stale_before and not _moving(session, row.id, ep.id))
        if replica.state in (ReplicaState.COPYING, ReplicaState.BEING_DELETED) and not abandoned:
            raise Conflict(f"{did} is being written to or deleted from {ep.name} right now; try again later")
        replica.state, replica.updated_at, replica.error = ReplicaState.COPYING, utcnow(), None
        replica.path = replica_path(scope, name)
        new_replica = False
    else:
        replica = Replica(did_id=row.id, endpoint_id=ep.id, state=ReplicaState.COPYING,
                          path=replica_path(scope, name), bytes=size_hint)
        session.add(replica)
        new_replica = True
    session.flush()
    return row.id, replica.id, replica.path, new_did, new_replica


def _taken(did: str) -> DidConflict:
    """The one answer for a name held by a DID its caller may not read, whatever it is and holds, and before a
    byte is read: a difference (its type, its bytes equal or not) would tell what another's private DID is."""
    return DidConflict(f"{did} is taken; choose another name", details=[{"loc": "did", "msg": "taken"}])


def _moving(session: Session, did_id: int, endpoint_id: int) -> bool:
    return session.scalar(select(Transfer.id).where(
        Transfer.did_id == did_id, Transfer.dest_endpoint_id == endpoint_id,
        Transfer.state.in_(("QUEUED", "ACTIVE"))).limit(1)) is not None


def _release(db: Database, did_id: int, replica_id: int, *, new_did: bool, new_replica: bool) -> None:
    with db.session() as session:
        replica = session.get(Replica, replica_id)
        if replica is not None:
            if new_replica:
                session.delete(replica)
            else:
                replica.state = ReplicaState.BAD
        if new_did:
            row = session.get(Did, did_id)
            if row is not None and row.sha256 is None:
                session.delete(row)


def upload(db: Database, lake: Lake, *, principal: Principal, did: str, endpoint: str, chunks: Iterable[bytes],
           size_hint: int | None = None, expected: Expected | None = None, dataset: str | None = None,
           media_type: str | None = None, meta: dict[str, Any] | None = None,
           group: str | None = None) -> UploadOutcome:
    """Store a byte stream as file ``did`` on ``endpoint``; returns its checksums. Re-uploading the same bytes
    to the same endpoint is a no-op (``created`` False); other bytes under a registered name are a conflict,
    and a name held by a DID the caller may not read is taken, whatever it holds. A new file is ``group``'s
    (see ``_reserve``)."""
    return _upload(db, lake, principal=principal, did=did, endpoint=endpoint, chunks=chunks, size_hint=size_hint,
                   expected=expected, dataset=dataset, media_type=media_type, meta=meta, group=group)


def _upload(db: Database, lake: Lake, *, principal: Principal, did: str, endpoint: str,
            chunks: Iterable[bytes | memoryview], size_hint: int | None, expected: Expected | None,
            dataset: str | None, media_type: str | None, meta: dict[str, Any] | None,
            pool: BufferPool | None = None, group: str | None = None) -> UploadOutcome:
    """``upload``; chunks from ``pool`` go back to it once hashed and written."""
    with db.session() as session:
        reserved = _reserve(session, principal=principal, did=did, endpoint=endpoint, size_hint=size_hint,
                            media_type=media_type, meta=meta, dataset=dataset, group=group,
                            stale_before=utcnow() - lake.tuning.stale_after)
        ep = get_endpoint(session, endpoint)
        own = None if isinstance(reserved, Checksums) else reserved[1]
        quota, used, endpoint_id = ep.quota_bytes, usage(session, ep.id, excluding=own)[0], ep.id
        backend = lake.backend(ep)
        known = None if isinstance(reserved, Checksums) else session.get(Did, reserved[0])
        known_sums = (Checksums(known.bytes or 0, known.adler32 or "", known.sha256)
                      if known is not None and known.sha256 else None)
    if isinstance(reserved, Checksums):  # already there: still read the stream so a declared checksum is checked
        hasher = Hasher()
        for chunk in chunks:
            hasher.update(chunk)
        got = hasher.result()
        (expected or Expected()).check(got, what=did)
        if got.sha256 != reserved.sha256:
            raise DidConflict(f"{did} is registered with sha256 {reserved.sha256}; these bytes differ")
        if dataset:
            with db.session() as session:
                attach(session, principal=principal, parent=dataset, children=[did])
        return UploadOutcome(did, endpoint, reserved, created=False)
    did_id, replica_id, path, new_did, new_replica = reserved
    try:
        hasher = Hasher(adler_fed_separately=True)  # sha256 here, adler32 in the writer thread

        def written(chunk: bytes | memoryview) -> None:
            hasher.update_adler(chunk)
            if pool is not None:
                pool.release(chunk)

        beat = time.monotonic()
        with BackgroundWriter(backend.writer(path, size_hint=size_hint), on_written=written,
                              depth=WRITE_AHEAD if pool is not None else 4) as writer:
            for chunk in chunks:
                hasher.update(chunk)
                if quota is not None and used + hasher.bytes > quota:
                    raise StorageFull(f"endpoint {endpoint}: the upload exceeds its quota of {quota} bytes")
                writer.write(chunk)
                if time.monotonic() - beat > lake.tuning.heartbeat.total_seconds():
                    beat = time.monotonic()
                    with db.session() as session:  # tells the reaper this reservation is alive
                        session.get_one(Replica, replica_id).updated_at = utcnow()
            writer.finish()
            got = hasher.result()
            (expected or Expected()).check(got, what=did)
            if known_sums is not None and known_sums.sha256 != got.sha256:
                raise DidConflict(f"{did} is registered with sha256 {known_sums.sha256}; these bytes differ")
            if quota is not None:
                take_quota(db, endpoint_id, replica_id, got.bytes, endpoint)
            writer.commit()
    except BaseException:
        _release(db, did_id, replica_id, new_did=new_did, new_replica=new_replica)
        raise
    with db.session() as session:
        row = session.get_one(Did, did_id)
        if row.sha256 is None:
            row.bytes, row.adler32, row.sha256 = got.bytes, got.adler32, got.sha256
        replica = session.get_one(Replica, replica_id)
        replica.state, replica.bytes, replica.verified_at = ReplicaState.AVAILABLE, got.bytes, utcnow()
        replica.updated_at = utcnow()
        if dataset:
            attach(session, principal=principal, parent=dataset, children=[did])
    return UploadOutcome(did, endpoint, got, created=True)


def file_chunks(path: Path, chunk_size: int = CHUNK) -> Iterable[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            yield chunk


def upload_file(db: Database, lake: Lake, *, principal: Principal, path: Path, did: str, endpoint: str,
                expected: Expected | None = None, dataset: str | None = None, media_type: str | None = None,
                meta: dict[str, Any] | None = None) -> UploadOutcome:
    """Upload a local file (what workflows call to save a result into the lake): read into recycled buffers,
    sha256 here while a writer thread writes the same buffers and sums adler32 over them."""
    size = path.stat().st_size
    pool = BufferPool(UPLOAD_CHUNK)
    return _upload(db, lake, principal=principal, did=did, endpoint=endpoint, chunks=pooled_chunks(path, pool),
                   size_hint=size, expected=expected, dataset=dataset, media_type=media_type, meta=meta, pool=pool)


def register_replica(session: Session, lake: Lake, *, principal: Principal, did: str, endpoint: str,
                     checksums: Checksums, media_type: str | None = None, meta: dict[str, Any] | None = None,
                     verify: bool = True, path: str | None = None, checked: bool = False) -> Did:
    """Register bytes that already sit at the file's path on ``endpoint`` (streams write compacted segments
    there themselves; ``path``: elsewhere on it, where another wrote them). With ``verify`` the bytes are re-read
    and must match ``checksums``; ``checked``: the caller read them back and they did (outside any unit of
    work: nothing is read here)."""
    require(principal, "lake.write")
    scope, name = parse_did(did)
    ep: Endpoint = get_endpoint(session, endpoint)
    path = path or replica_path(scope, name)
    backend = lake.backend(ep)
    row = session.scalar(select(Did).where(Did.scope == scope, Did.name == name))
    if row is not None and not may_read(session, principal, row):  # before its bytes are looked at
        raise _taken(did)
    if checked:
        pass
    elif verify:
        hasher = Hasher()
        for chunk in backend.read(path):
            hasher.update(chunk)
        got = hasher.result()
        if got != checksums:
            raise DataCorrupted(f"the bytes at {ep.name}:{path} do not match the checksums given for {did}")
    elif backend.size(path) != checksums.bytes:
        raise DataCorrupted(f"{ep.name}:{path} is missing or not {checksums.bytes} bytes long")
    if row is None:
        row = Did(scope=scope, name=name, type=DidType.FILE.value, bytes=checksums.bytes, adler32=checksums.adler32,
                  sha256=checksums.sha256, media_type=media_type or media_type_for(name), meta=dict(meta or {}),
                  created_by=principal.name)
        session.add(row)
        session.flush()
    elif row.type != DidType.FILE or (row.sha256 and row.sha256 != checksums.sha256):
        raise DidConflict(f"{did} is registered already with other content")
    replica = session.scalar(select(Replica).where(Replica.did_id == row.id, Replica.endpoint_id == ep.id))
    if replica is None:
        session.add(Replica(did_id=row.id, endpoint_id=ep.id, state=ReplicaState.AVAILABLE, path=path,
                            bytes=checksums.bytes, verified_at=utcnow() if verify else None))
    else:
        replica.state, replica.bytes, replica.updated_at = ReplicaState.AVAILABLE, checksums.bytes, utcnow()
    session.flush()
    return get_did(session, did)
