"""The reaper: expires rules past their lifetime, deletes replicas nothing needs (tombstoned, unlocked, never
the last good copy) and replicas marked BEING_DELETED, drops upload reservations whose writer died, and
removes leftovers of interrupted writes from the endpoints."""

from __future__ import annotations

import logging

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from twinengine.errors import TwinEngineError
from twinengine.lake.context import Lake
from twinengine.lake.models import Did, Endpoint, Replica, Rule, RuleLock, Transfer
from twinengine.lake.rules import release_locks
from twinengine.lake.schemas import DidType, ReplicaState
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["run_once"]

log = logging.getLogger("twinengine.lake")


def _expire_rules(session: Session, lake: Lake) -> int:
    expired = list(session.scalars(select(Rule).where(Rule.expires_at <= utcnow())))
    for rule in expired:
        release_locks(session, rule.id, lake.tuning.tombstone_grace)
        session.delete(rule)
    session.flush()
    return len(expired)


def _doomed(session: Session, limit: int) -> list[int]:
    """Replicas to delete: BEING_DELETED ones, and tombstoned + unlocked ones, newest first, as long as each file
    keeps at least one available copy (the last good copy is never reaped)."""
    now = utcnow()
    locked = exists().where(RuleLock.did_id == Replica.did_id, RuleLock.endpoint_id == Replica.endpoint_id)
    candidates = session.execute(select(Replica.id, Replica.did_id, Replica.state).join(
        Endpoint, Endpoint.id == Replica.endpoint_id).where(
        Endpoint.delete.is_(True), Replica.tombstone <= now, ~locked, Replica.state != ReplicaState.COPYING)
        .order_by(Replica.created_at.desc(), Replica.id.desc()).limit(limit)).all()
    files = {did_id for _, did_id, _ in candidates}
    available: dict[int, int] = {}
    if files:
        available = {did_id: int(n) for did_id, n in session.execute(
            select(Replica.did_id, func.count()).where(Replica.did_id.in_(files),
                                                       Replica.state == ReplicaState.AVAILABLE)
            .group_by(Replica.did_id))}
    ids: list[int] = []
    for replica_id, did_id, state in candidates:
        if state == ReplicaState.AVAILABLE:
            if available.get(did_id, 0) <= 1:
                continue
            available[did_id] -= 1
        ids.append(replica_id)
    ids += session.scalars(select(Replica.id).where(Replica.state == ReplicaState.BEING_DELETED).limit(limit))
    return ids


def run_once(db: Database, lake: Lake, *, limit: int = 500) -> int:
    """One pass; returns how many things it removed or expired."""
    done: int = 0
    with db.session() as session:
        done += _expire_rules(session, lake)
        ids = _doomed(session, limit)
        for replica in session.scalars(select(Replica).where(Replica.id.in_(ids))):
            replica.state = ReplicaState.BEING_DELETED
        stale = utcnow() - lake.tuning.stale_after
        moving = exists().where(Transfer.did_id == Replica.did_id, Transfer.dest_endpoint_id == Replica.endpoint_id,
                                Transfer.state.in_(("QUEUED", "ACTIVE")))
        abandoned = list(session.scalars(select(Replica.id).where(
            Replica.state == ReplicaState.COPYING, Replica.updated_at <= stale, ~moving).limit(limit)))
        for replica in session.scalars(select(Replica).where(Replica.id.in_(abandoned))):
            replica.state = ReplicaState.BEING_DELETED
        ids += abandoned
    for replica_id in ids:
        done += _erase(db, lake, replica_id)
    with db.session() as session:
        has_replica = exists().where(Replica.did_id == Did.id)
        result = session.execute(delete(Did).where(Did.type == DidType.FILE, Did.sha256.is_(None), ~has_replica)
                                 .execution_options(synchronize_session=False))
        done += int(getattr(result, "rowcount", 0))
        endpoints = list(session.scalars(select(Endpoint)))
        session.expunge_all()
    for ep in endpoints:
        try:
            done += lake.backend(ep).cleanup(older_than=lake.tuning.stale_after)
        except TwinEngineError as exc:
            log.warning("reaper: cannot clean up endpoint %s: %s", ep.name, exc.message)
    return done


def _erase(db: Database, lake: Lake, replica_id: int) -> int:
    with db.session(readonly=True) as session:
        replica = session.get(Replica, replica_id)
        if replica is None or replica.state != ReplicaState.BEING_DELETED:
            return 0
        ep = session.get_one(Endpoint, replica.endpoint_id)
        path = replica.path
        backend = lake.backend(ep)
        shared = session.scalar(select(func.count()).select_from(Replica).where(
            Replica.endpoint_id == ep.id, Replica.path == path, Replica.id != replica_id)) or 0
    try:
        if not shared:
            backend.delete(path)
    except TwinEngineError as exc:
        log.warning("reaper: cannot delete %s from %s (will retry): %s", path, ep.name, exc.message)
        return 0
    with db.session() as session:
        replica = session.get(Replica, replica_id)
        if replica is not None and replica.state == ReplicaState.BEING_DELETED:
            session.delete(replica)
    return 1
