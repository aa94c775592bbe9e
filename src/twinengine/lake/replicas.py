"""Reading files back (pick an available replica, ranged reads, verify on request) and ``verify``: re-read
replicas, mark corrupted or missing ones BAD, and let the judge re-replicate from a good copy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from twinengine.auth.policy import require
from twinengine.auth.principal import SYSTEM, Principal
from twinengine.errors import ReplicaNotFound, StorageUnavailable, TwinEngineError, ValidationFailed
from twinengine.lake import terms
from twinengine.lake.checksums import Checksums, Hasher
from twinengine.lake.context import Lake
from twinengine.lake.dids import file_ids_under, get_did, replica_read
from twinengine.lake.endpoints import get_endpoint
from twinengine.lake.grants import Readers, require_read, runs_storage
from twinengine.lake.models import Did, Endpoint, Replica, Rule, RuleLock, Transfer
from twinengine.lake.schemas import DidType, ReplicaRead, ReplicaState, VerifyResult
from twinengine.lake.storage import StorageBackend
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["Readable", "check_replica", "open_replica", "replicas_to_verify", "verify", "verify_ids", "verify_one"]


@dataclass
class Readable:
    """A file chosen for reading: where, how big, and its registered checksums."""

    did: str
    endpoint: str
    backend: StorageBackend
    path: str
    checksums: Checksums
    media_type: str | None
    replica_id: int

    def read(self, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        return self.backend.read(self.path, offset=offset, length=length)


def check_replica(backend: StorageBackend, path: str, expected: Checksums) -> tuple[ReplicaState, str] | None:
    """None when the bytes at ``path`` match; else the state the replica deserves and why: BAD when the bytes
    are wrong or missing, UNAVAILABLE when the storage itself cannot be reached."""
    try:
        size = backend.size(path)
        if size is None:
            return ReplicaState.BAD, "missing"
        if size != expected.bytes:
            return ReplicaState.BAD, f"size {size}, registered {expected.bytes}"
        hasher = Hasher()
        for chunk in backend.read(path):
            hasher.update(chunk)
    except StorageUnavailable as exc:
        return ReplicaState.UNAVAILABLE, exc.message
    except TwinEngineError as exc:
        return ReplicaState.BAD, exc.message
    got = hasher.result()
    if got != expected:
        return ReplicaState.BAD, f"checksum mismatch (adler32 {got.adler32}, registered {expected.adler32})"
    return None


def _mark(session: Session, replica: Replica, state: ReplicaState, problem: str) -> None:
    """BAD (or UNAVAILABLE) at once; the rules holding it go back to REPLICATING until it is repaired."""
    from twinengine.lake.rules import LockState, recount

    replica.state, replica.error, replica.updated_at = state, problem, utcnow()
    where = (RuleLock.did_id == replica.did_id, RuleLock.endpoint_id == replica.endpoint_id)
    rule_ids = list(session.scalars(select(RuleLock.rule_id).where(*where)))
    if state == ReplicaState.BAD:
        session.execute(update(RuleLock).where(*where).values(state=LockState.REPLICATING))
    for rule in session.scalars(select(Rule).where(Rule.id.in_(rule_ids))):
        rule.dirty = True
        recount(session, rule)
    session.flush()


def _apply(db: Database, marks: list[tuple[int, ReplicaState, str]]) -> None:
    with db.session() as session:
        for replica_id, state, problem in marks:
            replica = session.get(Replica, replica_id)
            if replica is not None and replica.state == ReplicaState.AVAILABLE:
                _mark(session, replica, state, problem)


def open_replica(session: Session, lake: Lake, *, principal: Principal, did: str, endpoint: str | None = None,
                 verify: bool = False, db: Database | None = None) -> Readable:
    """An AVAILABLE replica on a readable endpoint (the named one, else local folders first) that is really
    there; with ``verify`` its bytes are re-read first. Replicas found missing, corrupted or unreachable are
    marked (through ``db``, in a unit of work of their own) and the next one is tried."""
    require(principal, "lake.read")
    row = require_read(session, principal, get_did(session, did))
    if row.type != DidType.FILE or not row.sha256:
        raise ValidationFailed.one("did", f"{did} is a {row.type}; download its files one by one")
    if principal is not SYSTEM:  # the engine's own reads (serving a stream's history) are not a use of a copy
        terms.require_permitted(row, session=session)  # before anything is read; counted once a replica is found
    query = (select(Replica, Endpoint).join(Endpoint, Endpoint.id == Replica.endpoint_id)
             .where(Replica.did_id == row.id, Replica.state == ReplicaState.AVAILABLE, Endpoint.read.is_(True)))
    if endpoint:
        query = query.where(Endpoint.id == get_endpoint(session, endpoint).id)
    candidates = sorted(session.execute(query).all(), key=lambda p: (p[1].protocol != "file", p[1].name))
    expected = Checksums(row.bytes or 0, row.adler32 or "", row.sha256)
    marks: list[tuple[int, ReplicaState, str]] = []
    unreachable: list[str] = []
    chosen: Readable | None = None
    for replica, ep in candidates:
        backend = lake.backend(ep)
        try:
            size = backend.size(replica.path)
        except StorageUnavailable as exc:
            unreachable.append(f"{ep.name}: {exc.message}")
            marks.append((replica.id, ReplicaState.UNAVAILABLE, exc.message))
            continue
        problem = ((ReplicaState.BAD, "missing" if size is None else f"size {size}, registered {expected.bytes}")
                   if size != expected.bytes else None)
        if problem is None and verify:
            problem = check_replica(backend, replica.path, expected)
        if problem is not None:
            marks.append((replica.id, *problem))
            continue
        chosen = Readable(did, ep.name, backend, replica.path, expected, row.media_type, replica.id)
        break
    if marks and db is not None:
        _apply(db, marks)
    if chosen is not None:
        if principal is not SYSTEM:
            terms.require_use(db, row)  # one use of a copy held under terms (a count is kept per agreement)
        return chosen
    if unreachable:
        raise StorageUnavailable(f"{did} cannot be read right now: {'; '.join(unreachable)}")
    where = f" on {endpoint}" if endpoint else ""
    raise ReplicaNotFound(f"{did} has no available replica{where} that can be read")


def replicas_to_verify(session: Session, *, principal: Principal, did: str | None, endpoint: str | None,
                       action: str = "lake.verify") -> list[int]:
    """Ids of the replicas under ``did`` and/or on ``endpoint`` (listing them needs only ``lake.read``)."""
    require(principal, action)
    if not did and not endpoint:
        raise ValidationFailed.one("did", "name a did or an endpoint to verify")
    query = select(Replica.id).where(Replica.state.in_((ReplicaState.AVAILABLE, ReplicaState.BAD,
                                                        ReplicaState.UNAVAILABLE)))
    listing = action == "lake.read" and not runs_storage(principal)  # only files the caller may read
    readers = Readers(session, principal)
    if did:
        top = get_did(session, did)
        files = file_ids_under(session, require_read(session, principal, top, readers=readers) if listing else top)
        query = query.where(Replica.did_id.in_(files))
    if endpoint:
        query = query.where(Replica.endpoint_id == get_endpoint(session, endpoint).id)
    if not listing:
        return list(session.scalars(query.order_by(Replica.id)))
    rows = session.execute(select(Replica.id, Did).join(Did, Did.id == Replica.did_id)
                           .where(Replica.id.in_(query)).order_by(Replica.id))
    return [replica_id for replica_id, file in rows if readers(file)]


def verify_one(db: Database, lake: Lake, replica_id: int) -> tuple[bool, ReplicaRead | None]:
    """Re-read one replica (no database lock held while reading); returns (ok, the replica if it is bad)."""
    with db.session(readonly=True) as session:
        replica = session.get(Replica, replica_id)
        if replica is None:
            return True, None
        did = session.get_one(Did, replica.did_id)
        ep = session.get_one(Endpoint, replica.endpoint_id)
        backend = lake.backend(ep)
        path, expected = replica.path, Checksums(did.bytes or 0, did.adler32 or "", did.sha256 or "")
    problem = check_replica(backend, path, expected)
    with db.session() as session:
        replica = session.get(Replica, replica_id)
        if replica is None:
            return True, None
        if problem is None:
            replica.verified_at = utcnow()
            if replica.state in (ReplicaState.BAD, ReplicaState.UNAVAILABLE):
                replica.state, replica.error = ReplicaState.AVAILABLE, None
                for rule in session.scalars(select(Rule).join(RuleLock, RuleLock.rule_id == Rule.id).where(
                        RuleLock.did_id == replica.did_id, RuleLock.endpoint_id == replica.endpoint_id)):
                    rule.dirty = True
            return True, None
        _mark(session, replica, *problem)
        return False, replica_read(replica, session.get_one(Did, replica.did_id), session.get_one(Endpoint,
                                                                                                   replica.endpoint_id))


def verify(db: Database, lake: Lake, *, principal: Principal, did: str | None = None, endpoint: str | None = None,
           progress: Callable[[int, int], None] | None = None) -> VerifyResult:
    """Verify every replica under ``did`` and/or on ``endpoint``; BAD ones are queued for repair at once."""
    with db.session(readonly=True) as session:
        ids = replicas_to_verify(session, principal=principal, did=did, endpoint=endpoint)
    return verify_ids(db, lake, principal=principal, ids=ids, progress=progress)


def verify_ids(db: Database, lake: Lake, *, principal: Principal, ids: list[int],
               progress: Callable[[int, int], None] | None = None) -> VerifyResult:
    from twinengine.lake.repair import queue_repairs

    require(principal, "lake.verify")
    started = utcnow()
    bad: list[ReplicaRead] = []
    for i, replica_id in enumerate(ids):
        _, row = verify_one(db, lake, replica_id)
        if row is not None:
            bad.append(row)
        if progress:
            progress(i + 1, len(ids))
    with db.session() as session:
        queue_repairs(session)
        queued = _repairs_since(session, [row.id for row in bad], started)
    return VerifyResult(checked=len(ids), ok=len(ids) - len(bad), bad=bad, repairs_queued=queued)


def _repairs_since(session: Session, replica_ids: list[int], since: datetime) -> int:
    """How many of these bad replicas have a repair queued since ``since``: by this verify or by the judge's pass
    that ran between marking and queueing (counting only this call's own queueing would then say 0)."""
    if not replica_ids:
        return 0
    repaired = exists().where(Transfer.did_id == Replica.did_id, Transfer.dest_endpoint_id == Replica.endpoint_id,
                              Transfer.created_at >= since)
    return session.scalar(select(func.count()).select_from(Replica).where(Replica.id.in_(replica_ids), repaired)) or 0
