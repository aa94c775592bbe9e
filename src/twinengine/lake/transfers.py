"""The conveyor's core: claim queued transfers, copy endpoint to endpoint inside the engine (the client never
relays bytes; each side uses its own endpoint's credential), verify at the destination, retry with backoff.

A claim carries a heartbeat; a transfer whose worker died (kill -9) is claimed again once the heartbeat is
stale. The destination is written through a temp file / multipart upload, so a half-copied file never
becomes visible, and the replica turns AVAILABLE only after the bytes re-read at the destination matched.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from twinengine.errors import DataCorrupted, ReplicaNotFound, TwinEngineError
from twinengine.lake.checksums import Checksums, Hasher
from twinengine.lake.context import Lake
from twinengine.lake.endpoints import take_quota
from twinengine.lake.models import Did, Endpoint, Replica, Rule, RuleLock, Transfer
from twinengine.lake.rates import Pace, rate_limit
from twinengine.lake.rules import LockState, recount
from twinengine.lake.schemas import ReplicaState, RuleState
from twinengine.lake.storage.background import BackgroundWriter
from twinengine.lake.storage.buffers import BufferPool
from twinengine.lake.storage.local import LocalStorage
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["claim", "copy_file", "perform"]

Progress = Callable[[int], None]

# Kernel-copied and read back per step between local folders: the read-back of one overlaps the next copy.
COPY_CHUNK = 8 * 1024 * 1024


def claim(session: Session, *, worker: str, limit: int, stale_after: timedelta) -> list[int]:
    """Requeue transfers whose worker stopped beating, then take up to ``limit`` due ones."""
    now = utcnow()
    session.execute(update(Transfer).where(Transfer.state == "ACTIVE", Transfer.heartbeat_at < now - stale_after)
                    .values(state="QUEUED", claimed_by=None, updated_at=now))
    query = (select(Transfer).where(Transfer.state == "QUEUED", Transfer.next_attempt_at <= now)
             .order_by(Transfer.next_attempt_at, Transfer.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(session.scalars(query))
    for row in rows:
        row.state, row.claimed_by, row.heartbeat_at, row.updated_at = "ACTIVE", worker, now, now
    session.flush()
    return [r.id for r in rows]


def copy_file(lake: Lake, source: Endpoint, dest: Endpoint, path: str, expected: Checksums, *,
              progress: Progress | None = None) -> Checksums:
    """Copy ``path`` from ``source`` to ``dest`` and make it durable only if the bytes at ``dest`` match the
    registered size, adler32 and sha256. Between local folders the kernel copies and the copy is read back;
    otherwise the bytes stream through the engine and the destination is re-read after the commit."""
    src, dst = lake.backend(source), lake.backend(dest)
    if isinstance(src, LocalStorage) and isinstance(dst, LocalStorage):
        return _copy_local(src, dst, source, dest, path, expected, progress)
    hasher = Hasher(adler_fed_separately=True)  # sha256 here, adler32 in the writer thread
    with BackgroundWriter(dst.writer(path, size_hint=expected.bytes), on_written=hasher.update_adler) as writer:
        for chunk in src.read(path):
            hasher.update(chunk)
            writer.write(chunk)
            if progress:
                progress(len(chunk))
        writer.finish()
        got = hasher.result()
        if got != expected:
            raise DataCorrupted(f"the source replica on {source.name} does not match the registered checksums "
                                f"(sha256 {got.sha256[:12]}…, registered {expected.sha256[:12]}…)")
        writer.commit()
    adler, size = 1, 0
    for chunk in dst.read(path):
        adler = zlib.adler32(chunk, adler)
        size += len(chunk)
    if size != expected.bytes or f"{adler & 0xFFFFFFFF:08x}" != expected.adler32:
        dst.delete(path)
        raise DataCorrupted(f"the copy on {dest.name} does not match after writing; removed it")
    return got


def _copy_local(src: LocalStorage, dst: LocalStorage, source: Endpoint, dest: Endpoint, path: str,
                expected: Checksums, progress: Progress | None) -> Checksums:
    """Kernel copy (copy_file_range) with both checksums over the bytes read back at the destination; the
    temp file is committed only when they match. On a mismatch the source is hashed to tell who is wrong."""
    pool = BufferPool(COPY_CHUNK)
    hasher = Hasher(release=pool.release)

    def consume(view: memoryview) -> None:
        n = len(view)
        hasher.update(view)
        if progress:
            progress(n)

    writer = dst.copy_in(src, path, size_hint=expected.bytes, pool=pool, consume=consume)
    with writer:
        got = hasher.result()
        if got != expected:
            writer.abort()
            source_sums = Hasher()
            for chunk in src.read(path):
                source_sums.update(chunk)
            if source_sums.result() != expected:
                raise DataCorrupted(f"the source replica on {source.name} does not match the registered "
                                    f"checksums (sha256 {got.sha256[:12]}…, registered {expected.sha256[:12]}…)")
            raise DataCorrupted(f"the copy on {dest.name} does not match after writing; removed it")
        writer.commit()
    return got

def _pick_source(session: Session, did_id: int, dest_id: int) -> Endpoint:
    rows = session.execute(select(Endpoint).join(Replica, Replica.endpoint_id == Endpoint.id).where(
        Replica.did_id == did_id, Replica.state == ReplicaState.AVAILABLE, Endpoint.read.is_(True),
        Endpoint.id != dest_id).order_by(Endpoint.name)).scalars().all()
    if not rows:
        raise ReplicaNotFound("no available replica on a readable endpoint to copy from")
    return rows[0]


def perform(db: Database, lake: Lake, transfer_id: int, *, progress: Progress | None = None) -> bool:
    """Run one claimed transfer to its end; True when the copy is AVAILABLE, False when it will be retried
    or failed for good (the rule then reports STUCK with the error)."""
    with db.session() as session:
        transfer = session.get_one(Transfer, transfer_id)
        did = session.get_one(Did, transfer.did_id)
        dest = session.get_one(Endpoint, transfer.dest_endpoint_id)
        expected = Checksums(did.bytes or 0, did.adler32 or "", did.sha256 or "")
        replica = session.scalar(select(Replica).where(Replica.did_id == did.id, Replica.endpoint_id == dest.id))
        try:
            source = _pick_source(session, did.id, dest.id)
        except ReplicaNotFound as exc:
            _failed(session, lake, transfer, replica, str(exc))
            return False
        transfer.source_endpoint_id = source.id
        path = replica.path if replica is not None else ""
        source_path = session.scalar(select(Replica.path).where(Replica.did_id == did.id,
                                                                Replica.endpoint_id == source.id)) or path
        rate = rate_limit(source, dest)
    last_beat = time.monotonic()
    done = 0
    pace = Pace(rate) if rate else None  # the endpoints' rate_limit (lake.rates)

    def beat(n: int) -> None:
        nonlocal last_beat, done
        done += n
        if pace is not None:
            pace(n)
        if progress:
            progress(n)
        if time.monotonic() - last_beat > lake.tuning.heartbeat.total_seconds():
            last_beat = time.monotonic()
            with db.session() as s:
                s.execute(update(Transfer).where(Transfer.id == transfer_id)
                          .values(heartbeat_at=utcnow(), bytes_done=done))

    try:
        if replica is None or not path or source_path != path:
            raise DataCorrupted("the destination replica row is missing; the judge will queue a new transfer")
        if dest.quota_bytes is not None:  # held to the quota as uploads are: counted before a byte is written
            take_quota(db, dest.id, replica.id, expected.bytes, dest.name)
        copy_file(lake, source, dest, path, expected, progress=beat)
    except (TwinEngineError, OSError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        with db.session() as session:
            transfer = session.get_one(Transfer, transfer_id)
            if isinstance(exc, DataCorrupted) and "source replica" in message:
                session.execute(update(Replica).where(Replica.did_id == did.id, Replica.endpoint_id == source.id)
                                .values(state=ReplicaState.BAD, error=message, updated_at=utcnow()))
            replica = session.scalar(select(Replica).where(Replica.did_id == did.id,
                                                           Replica.endpoint_id == dest.id))
            _failed(session, lake, transfer, replica, f"{source.name} → {dest.name}: {message}")
        return False
    with db.session() as session:
        transfer = session.get_one(Transfer, transfer_id)
        replica = session.scalar(select(Replica).where(Replica.did_id == did.id, Replica.endpoint_id == dest.id))
        if replica is None:  # the rule went away meanwhile and the row with it; keep the record honest
            transfer.state, transfer.updated_at = "DONE", utcnow()
            return True
        now = utcnow()
        replica.state, replica.bytes, replica.verified_at, replica.updated_at = (
            ReplicaState.AVAILABLE, expected.bytes, now, now)
        replica.error = None
        transfer.state, transfer.bytes_done, transfer.updated_at = "DONE", expected.bytes, now
        transfer.last_error = None
        _set_locks(session, did.id, dest.id, LockState.OK, None)
    return True


def _set_locks(session: Session, did_id: int, endpoint_id: int, state: str, error: str | None) -> None:
    rule_ids = list(session.scalars(select(RuleLock.rule_id).where(RuleLock.did_id == did_id,
                                                                   RuleLock.endpoint_id == endpoint_id)))
    if not rule_ids:
        return
    session.execute(update(RuleLock).where(RuleLock.did_id == did_id, RuleLock.endpoint_id == endpoint_id)
                    .values(state=state))
    for rule in session.scalars(select(Rule).where(Rule.id.in_(rule_ids))):
        recount(session, rule)
        if error:
            rule.last_error = error


def _failed(session: Session, lake: Lake, transfer: Transfer, replica: Replica | None, message: str) -> None:
    transfer.attempts += 1
    transfer.last_error = message
    transfer.updated_at = utcnow()
    if transfer.attempts < lake.tuning.transfer_attempts:
        transfer.state = "QUEUED"
        transfer.next_attempt_at = utcnow() + lake.tuning.transfer_backoff * (2 ** (transfer.attempts - 1))
        transfer.claimed_by = None
        return
    transfer.state = "FAILED"
    if replica is not None and replica.state == ReplicaState.COPYING:
        if replica.verified_at is None:  # never held good bytes here: drop the reservation
            session.delete(replica)
        else:
            replica.state, replica.error = ReplicaState.BAD, message
    session.flush()
    _set_locks(session, transfer.did_id, transfer.dest_endpoint_id, LockState.STUCK, message)
    for rule in session.scalars(select(Rule).join(RuleLock, RuleLock.rule_id == Rule.id).where(
            RuleLock.did_id == transfer.did_id, RuleLock.endpoint_id == transfer.dest_endpoint_id)):
        if rule.state != RuleState.SUSPENDED:
            rule.state = RuleState.STUCK
