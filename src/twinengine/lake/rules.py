"""Replication rules: keep N copies of every file under a DID on endpoints an expression selects.

``evaluate`` is the judge's core: it places locks (preferring endpoints that already hold the file), queues a
transfer for each missing or BAD copy, and counts lock states into the rule's state. It works in bulk so a
rule over 100,000 files is evaluated in one pass.
"""

from __future__ import annotations

import secrets
import zlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.orm import Session

from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.errors import InvalidExpression, PermissionDenied, RuleNotFound, ValidationFailed
from twinengine.lake.dids import file_ids_under, get_did
from twinengine.lake.expression import ExpressionError, select_endpoints
from twinengine.lake.models import Did, Endpoint, Replica, Rule, RuleLock, Transfer
from twinengine.lake.schemas import ReplicaState, RuleRead, RuleState
from twinengine.lake.uploads import replica_path
from twinengine.store.base import utcnow
from twinengine.timeutil import parse_duration

__all__ = ["LockState", "add_rule", "delete_rule", "evaluate", "get_rule", "list_rules", "recount", "release_locks",
           "rule_read", "set_suspended"]

_CHUNK = 2000


class LockState:
    OK = "OK"
    REPLICATING = "REPLICATING"
    STUCK = "STUCK"


def _endpoint_attributes(endpoints: Iterable[Endpoint]) -> dict[str, dict[str, str]]:
    return {e.name: {str(k): str(v) for k, v in (e.attributes or {}).items()} for e in endpoints}


def _select(session: Session, expression: str) -> list[Endpoint]:
    endpoints = list(session.scalars(select(Endpoint).order_by(Endpoint.name)))
    try:
        names = select_endpoints(expression, _endpoint_attributes(endpoints))
    except ExpressionError as exc:
        raise InvalidExpression(f"endpoints: {exc}", details=[{"loc": "endpoints", "msg": exc.message,
                                                               "position": exc.position}]) from None
    return [e for e in endpoints if e.name in names]


def rule_read(session: Session, rule: Rule) -> RuleRead:
    did = session.get_one(Did, rule.did_id)
    total = rule.locks_ok + rule.locks_replicating + rule.locks_stuck
    return RuleRead(id=rule.id, did=did.did, copies=rule.copies, endpoints=rule.expression,
                    state=RuleState(rule.state), owner=rule.owner, comment=rule.comment, expires_at=rule.expires_at,
                    locks_ok=rule.locks_ok, locks_replicating=rule.locks_replicating, locks_stuck=rule.locks_stuck,
                    percent=round(100.0 * rule.locks_ok / total, 1) if total else 0.0, last_error=rule.last_error,
                    created_at=rule.created_at, evaluated_at=rule.evaluated_at)


def add_rule(session: Session, *, principal: Principal, did: str, copies: int, expression: str,
             lifetime: str | None = None, comment: str | None = None) -> Rule:
    require(principal, "lake.rule.create")
    row = get_did(session, did)
    writable = [e for e in _select(session, expression) if e.write]
    if copies > len(writable):
        raise ValidationFailed.one("copies", f"{copies} copies asked, but {expression!r} selects "
                                             f"{len(writable)} writable endpoint(s)")
    expires = None
    if lifetime:
        try:
            span = parse_duration(lifetime)
        except ValueError as exc:
            raise ValidationFailed.one("lifetime", str(exc)) from None
        expires = utcnow() + span if span else None
    rule = Rule(id=secrets.token_hex(16), did_id=row.id, copies=copies, expression=expression,
                state=RuleState.REPLICATING, owner=principal.name, comment=comment, expires_at=expires, dirty=True)
    session.add(rule)
    session.flush()
    return rule


def get_rule(session: Session, rule_id: str) -> Rule:
    rule = session.get(Rule, rule_id) if len(rule_id) <= 32 else None
    if rule is None:
        raise RuleNotFound(f"no replication rule {rule_id!r}")
    return rule


def _may_manage(principal: Principal, rule: Rule) -> None:
    require(principal, "lake.rule.read")
    if rule.owner != principal.name and not principal.is_admin and principal.role.value != "provider":
        raise PermissionDenied(f"{principal.name} may not change rule {rule.id} (owned by {rule.owner})")


def list_rules(session: Session, *, principal: Principal, did: str | None = None, state: RuleState | None = None,
               limit: int = 100, offset: int = 0) -> tuple[list[Rule], int]:
    require(principal, "lake.rule.read")
    query = select(Rule)
    if did:
        query = query.where(Rule.did_id == get_did(session, did).id)
    if state:
        query = query.where(Rule.state == state.value)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return list(session.scalars(query.order_by(Rule.created_at, Rule.id).limit(limit).offset(offset))), total


def release_locks(session: Session, rule_id: str, grace: timedelta) -> int:
    """Drop a rule's locks; replicas no other rule holds get a tombstone (the reaper deletes them later)."""
    pairs = list(session.execute(select(RuleLock.did_id, RuleLock.endpoint_id).where(RuleLock.rule_id == rule_id)))
    session.execute(delete(RuleLock).where(RuleLock.rule_id == rule_id))
    session.execute(update(Transfer).where(Transfer.rule_id == rule_id, Transfer.state == "QUEUED")
                    .values(state="CANCELLED", updated_at=utcnow()))
    tombstone = utcnow() + grace
    marked = 0
    for start in range(0, len(pairs), _CHUNK):
        chunk = pairs[start:start + _CHUNK]
        held = set(session.execute(select(RuleLock.did_id, RuleLock.endpoint_id).where(
            RuleLock.did_id.in_({d for d, _ in chunk}))))
        for did_id, endpoint_id in chunk:
            if (did_id, endpoint_id) not in held:
                result = session.execute(update(Replica).where(
                    Replica.did_id == did_id, Replica.endpoint_id == endpoint_id, Replica.tombstone.is_(None))
                    .values(tombstone=tombstone))
                marked += int(getattr(result, "rowcount", 0))
    return marked


def delete_rule(session: Session, *, principal: Principal, rule_id: str, grace: timedelta) -> None:
    rule = get_rule(session, rule_id)
    _may_manage(principal, rule)
    release_locks(session, rule.id, grace)
    session.delete(rule)
    session.flush()


def set_suspended(session: Session, *, principal: Principal, rule_id: str, suspended: bool) -> Rule:
    rule = get_rule(session, rule_id)
    _may_manage(principal, rule)
    if suspended:
        rule.state = RuleState.SUSPENDED
        session.execute(update(Transfer).where(Transfer.rule_id == rule.id, Transfer.state == "QUEUED")
                        .values(state="CANCELLED", updated_at=utcnow()))
    else:
        rule.state, rule.dirty = RuleState.REPLICATING, True
    rule.updated_at = utcnow()
    session.flush()
    return rule


def recount(session: Session, rule: Rule) -> None:
    """Lock counts and the state that follows from them."""
    counts = {state: int(n) for state, n in session.execute(
        select(RuleLock.state, func.count()).where(RuleLock.rule_id == rule.id).group_by(RuleLock.state))}
    rule.locks_ok = counts.get(LockState.OK, 0)
    rule.locks_replicating = counts.get(LockState.REPLICATING, 0)
    rule.locks_stuck = counts.get(LockState.STUCK, 0)
    if rule.state != RuleState.SUSPENDED:
        rule.state = (RuleState.STUCK if rule.locks_stuck else
                      RuleState.REPLICATING if rule.locks_replicating else RuleState.OK)
        if rule.state == RuleState.OK:
            rule.last_error = None
    rule.updated_at = utcnow()


def _spread(did_id: int, name: str) -> int:
    return zlib.crc32(f"{did_id}/{name}".encode())


def _preference(state: str | None) -> int:
    """Endpoints that hold the file already come first, then those receiving it, then the rest."""
    return {ReplicaState.AVAILABLE.value: 0, ReplicaState.COPYING.value: 1}.get(state or "", 2)


def evaluate(session: Session, rule: Rule) -> None:
    """Place and repair the rule's locks, queue the transfers they need, and recount."""
    if rule.state == RuleState.SUSPENDED:
        rule.dirty = False
        return
    did = session.get_one(Did, rule.did_id)
    chosen = _select(session, rule.expression)
    candidates = {e.id: e for e in chosen if e.write}
    readable = {e.id for e in session.scalars(select(Endpoint).where(Endpoint.read.is_(True)))}
    files = file_ids_under(session, did)
    error: str | None = None
    for start in range(0, len(files), _CHUNK):
        chunk = files[start:start + _CHUNK]
        error = _evaluate_files(session, rule, chunk, candidates, readable) or error
    recount(session, rule)
    if error:
        rule.last_error = error
        if error.startswith("only"):  # too few writable endpoints: not a state the conveyor can fix
            rule.state = RuleState.STUCK
    rule.dirty, rule.evaluated_at = False, utcnow()


def _evaluate_files(session: Session, rule: Rule, files: list[int], candidates: dict[int, Endpoint],
                    readable: set[int]) -> str | None:
    """One chunk of files: plain rows in, bulk inserts and updates out (no ORM objects per file)."""
    replicas: dict[int, dict[int, tuple[int, str, Any]]] = defaultdict(dict)
    for rid, did_id, ep_id, state, tombstone in session.execute(
            select(Replica.id, Replica.did_id, Replica.endpoint_id, Replica.state, Replica.tombstone)
            .where(Replica.did_id.in_(files))):
        replicas[did_id][ep_id] = (rid, state, tombstone)
    locks: dict[int, dict[int, str]] = defaultdict(dict)
    for did_id, ep_id, state in session.execute(select(RuleLock.did_id, RuleLock.endpoint_id, RuleLock.state)
                                                .where(RuleLock.rule_id == rule.id, RuleLock.did_id.in_(files))):
        locks[did_id][ep_id] = state
    pending: set[tuple[int, int]] = {(d, e) for d, e in session.execute(
        select(Transfer.did_id, Transfer.dest_endpoint_id).where(
            Transfer.did_id.in_(files), Transfer.state.in_(("QUEUED", "ACTIVE"))))}
    names = {r[0]: (r[1], r[2]) for r in session.execute(select(Did.id, Did.scope, Did.name).where(Did.id.in_(files)))}
    new_locks: list[dict[str, object]] = []
    new_transfers: list[dict[str, object]] = []
    new_replicas: list[dict[str, object]] = []
    untombstone: list[int] = []
    to_copying: list[int] = []
    lock_changes: dict[str, list[tuple[int, int]]] = defaultdict(list)
    error = None
    now = utcnow()
    for file_id in files:
        have = replicas.get(file_id, {})
        held = locks.get(file_id, {})
        sources = [ep for ep, (_, state, _) in have.items() if state == ReplicaState.AVAILABLE and ep in readable]
        places = list(held)
        if len(places) < rule.copies:
            spare = sorted((ep for ep in candidates if ep not in held),
                           key=lambda ep, have=have, f=file_id: (  # type: ignore[misc]
                               _preference(have[ep][1] if ep in have else None), _spread(f, candidates[ep].name)))
            places += spare[:rule.copies - len(places)]
        for ep_id in places:
            replica = have.get(ep_id)
            if replica is not None and replica[1] == ReplicaState.AVAILABLE:
                state = LockState.OK
                if replica[2] is not None:
                    untombstone.append(replica[0])
            elif (file_id, ep_id) in pending or (replica is not None and replica[1] == ReplicaState.COPYING):
                state = LockState.REPLICATING
            elif not sources:
                state, error = LockState.STUCK, "no available replica to copy from"
            else:
                state = LockState.REPLICATING
                if replica is None:
                    scope, name = names[file_id]
                    new_replicas.append({"did_id": file_id, "endpoint_id": ep_id, "state": ReplicaState.COPYING.value,
                                         "path": replica_path(scope, name), "created_at": now, "updated_at": now})
                else:
                    to_copying.append(replica[0])
                new_transfers.append({"did_id": file_id, "dest_endpoint_id": ep_id, "rule_id": rule.id,
                                      "state": "QUEUED", "attempts": 0, "next_attempt_at": now, "bytes_done": 0,
                                      "created_at": now, "updated_at": now})
                pending.add((file_id, ep_id))
            if ep_id not in held:
                new_locks.append({"rule_id": rule.id, "did_id": file_id, "endpoint_id": ep_id, "state": state})
            elif held[ep_id] != state:
                lock_changes[state].append((file_id, ep_id))
        if len(places) < rule.copies:
            error = f"only {len(places)} of {rule.copies} endpoints are writable for some files"
    if untombstone:
        session.execute(update(Replica).where(Replica.id.in_(untombstone)).values(tombstone=None))
    if to_copying:
        session.execute(update(Replica).where(Replica.id.in_(to_copying))
                        .values(state=ReplicaState.COPYING.value, updated_at=now, tombstone=None))
    for state, pairs in lock_changes.items():
        for did_id, ep_id in pairs:
            session.execute(update(RuleLock).where(RuleLock.rule_id == rule.id, RuleLock.did_id == did_id,
                                                   RuleLock.endpoint_id == ep_id).values(state=state))
    for model, rows in ((Replica, new_replicas), (RuleLock, new_locks), (Transfer, new_transfers)):
        if rows:  # Core inserts of the tables: no ORM bookkeeping per row
            session.execute(insert(cast(Table, model.__table__)), rows)
    return error
