"""Replication rules: keep N copies of every file under a DID on endpoints an expression selects.

``evaluate`` is the judge's core: it places locks (preferring endpoints that already hold the file, then those
whose quota has room for it; stuck locks on a full endpoint are placed again), queues a
transfer for each missing or BAD copy, and counts lock states into the rule's state. It works in bulk so a
rule over 100,000 files is evaluated in one pass.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import and_, case, delete, exists, func, insert, literal, or_, select, text, update
from sqlalchemy.orm import Session, aliased

from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.errors import DuplicateRule, InvalidExpression, PermissionDenied, RuleNotFound, ValidationFailed
from twinengine.lake.dids import file_ids_under, get_did
from twinengine.lake.expression import ExpressionError, select_endpoints
from twinengine.lake.grants import Readers, require_read, runs_storage
from twinengine.lake.models import Did, Endpoint, Replica, Rule, RuleLock, Transfer
from twinengine.lake.schemas import ReplicaState, RuleRead, RuleState
from twinengine.store.base import lock_for_delete, utcnow
from twinengine.timeutil import parse_duration

__all__ = ["LockState", "add_rule", "delete_rule", "evaluate", "get_rule", "list_rules", "recount", "release_locks",
           "rule_read", "set_suspended"]

_CHUNK = 2000
# Aliases of a rule's evaluation, built once per process (an alias per chunk is garbage for the collector).
_EP, _REP = aliased(Endpoint, name="ep"), aliased(Replica, name="rep")
_SRC, _SRC_EP = aliased(Replica, name="src"), aliased(Endpoint, name="src_ep")


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
    if not runs_storage(principal):
        require_read(session, principal, row)
    # Rules on one DID are added in turn (its row stays locked until commit: FOR NO KEY UPDATE on PostgreSQL,
    # SQLite's writers take turns anyway), so two identical requests at once cannot both pass the check below.
    session.execute(select(Did.id).where(Did.id == row.id).with_for_update(key_share=True))
    same = session.scalar(select(Rule.id).where(Rule.did_id == row.id, Rule.owner == principal.name,
                                                Rule.expression == expression, Rule.copies == copies))
    if same is not None:
        raise DuplicateRule(f"{principal.name} has a rule for {copies} copies of {did} on {expression!r} already: "
                            f"{same}", details=[{"loc": "endpoints", "msg": "a rule like it exists", "rule": same}])
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
    if not runs_storage(principal):  # rules on data the caller may read (lake.grants), then the page
        readers = Readers(session, principal)
        rows = session.execute(select(Rule, Did).join(Did, Did.id == Rule.did_id)
                               .where(Rule.id.in_(query.with_only_columns(Rule.id)))
                               .order_by(Rule.created_at, Rule.id))
        readable = [rule for rule, did_row in rows if readers(did_row)]
        return readable[offset:offset + limit], len(readable)
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
    lock_for_delete(session, rule, RuleNotFound(f"no replication rule {rule_id!r}"))
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


def evaluate(session: Session, rule: Rule) -> None:
    """Place and repair the rule's locks, queue the transfers they need, and recount."""
    if rule.state == RuleState.SUSPENDED:
        rule.dirty = False
        return
    did = session.get_one(Did, rule.did_id)
    chosen = _select(session, rule.expression)
    candidates = [e.id for e in chosen if e.write]
    room = _room(session, candidates)
    _release_full(session, rule, room)
    files = file_ids_under(session, did)
    # PostgreSQL plans each chunk from table statistics; a big pass (or one right after bulk registrations)
    # makes them stale, and a planner that believes a table is tiny loops over all of it for every row. So a
    # pass over several chunks refreshes them before its first chunk and whenever it has doubled what it wrote
    # (ANALYZE samples: its cost is bounded, and it runs about log2(chunks) times).
    refresh = len(files) > _CHUNK and session.get_bind().dialect.name == "postgresql"
    error: str | None = None
    for number, start in enumerate(range(0, len(files), _CHUNK)):
        if refresh and number & (number - 1) == 0:  # 0, 1, 2, 4, 8, ...
            session.execute(text("ANALYZE lake_replicas, lake_locks, lake_transfers"))
        error = _evaluate_files(session, rule, files[start:start + _CHUNK], candidates, room) or error
    recount(session, rule)
    if error:
        rule.last_error = error
        if error.startswith("only"):  # too few writable endpoints: not a state the conveyor can fix
            rule.state = RuleState.STUCK
    rule.dirty, rule.evaluated_at = False, utcnow()


def _room(session: Session, candidates: list[int]) -> dict[int, int]:
    """Bytes each candidate endpoint with a quota has left for new copies. A copy on its way counts its file's
    size before its transfer reserves the bytes, so the copies this rule planned there already are counted."""
    quotas = {row[0]: row[1] or 0 for row in session.execute(select(Endpoint.id, Endpoint.quota_bytes).where(
        Endpoint.id.in_(candidates), Endpoint.quota_bytes.is_not(None)))}
    if not quotas:
        return {}
    used = {row[0]: int(row[1] or 0) for row in session.execute(
        select(Replica.endpoint_id, func.sum(func.coalesce(Replica.bytes, Did.bytes, 0)))
        .join(Did, Did.id == Replica.did_id)
        .where(Replica.endpoint_id.in_(list(quotas)), Replica.state != ReplicaState.BEING_DELETED.value)
        .group_by(Replica.endpoint_id))}
    return {endpoint: quota - used.get(endpoint, 0) for endpoint, quota in quotas.items()}


def _release_full(session: Session, rule: Rule, room: dict[int, int]) -> None:
    """Let go of the rule's stuck locks on an endpoint without room for their file (a transfer there was
    refused by its quota), where no copy is there or on its way, so that the placement below may choose an
    endpoint with room, as Rucio's repairer moves stuck locks. Where no other endpoint has room, the lock is
    placed there again and stays stuck, naming the quota."""
    if not room:
        return
    size = select(func.coalesce(Did.bytes, 0)).where(Did.id == RuleLock.did_id).scalar_subquery()
    copy_there = exists().where(Replica.did_id == RuleLock.did_id, Replica.endpoint_id == RuleLock.endpoint_id,
                                Replica.state.in_((ReplicaState.AVAILABLE.value, ReplicaState.COPYING.value)))
    session.execute(delete(RuleLock).where(
        RuleLock.rule_id == rule.id, RuleLock.state == LockState.STUCK, RuleLock.endpoint_id.in_(list(room)),
        size > case(room, value=RuleLock.endpoint_id), ~copy_there).execution_options(synchronize_session=False))


def _evaluate_files(session: Session, rule: Rule, files: list[int], candidates: list[int],
                    room: dict[int, int]) -> str | None:
    """One chunk of files, set-based: a handful of INSERT … SELECT / UPDATE statements, whatever the number of
    files (the database joins files, endpoints, replicas, locks and transfers; Python sees no per-file row)."""
    now = utcnow()
    stamp = literal(now, Transfer.__table__.c.created_at.type)
    lock_state = Replica.__table__.c.state.type

    # 1. Missing locks: rank the candidate endpoints per file (holders of the file first, then those receiving
    #    it, then those whose quota has room for it, then a stable spread) and take as many as the file lacks.
    ep, rep = _EP, _REP
    held = (select(func.count()).select_from(RuleLock).where(RuleLock.rule_id == rule.id, RuleLock.did_id == Did.id)
            .correlate(Did).scalar_subquery())
    preference = case((rep.state == ReplicaState.AVAILABLE.value, 0), (rep.state == ReplicaState.COPYING.value, 1),
                      else_=2)
    # A multiplicative hash per endpoint (portable SQL, no overflow): files spread evenly over equal endpoints.
    spread = ((Did.id % 1000003) * (ep.id * 16807 + 48271)) % 1000003
    full = (case((case(room, value=ep.id) < func.coalesce(Did.bytes, 0), 1), else_=0) if room
            else literal(0))  # no room left there for this file (within the quota)
    ranked = (select(Did.id.label("did_id"), ep.id.label("endpoint_id"), held.label("held"),
                     func.row_number().over(partition_by=Did.id, order_by=(preference, full, spread)).label("rank"),
                     case((rep.state == ReplicaState.AVAILABLE.value, LockState.OK),
                          else_=LockState.REPLICATING).label("initial"))
              .select_from(Did).join(ep, ep.id.in_(candidates))
              .outerjoin(rep, and_(rep.did_id == Did.id, rep.endpoint_id == ep.id))
              .where(Did.id.in_(files), ~exists().where(RuleLock.rule_id == rule.id, RuleLock.did_id == Did.id,
                                                         RuleLock.endpoint_id == ep.id))
              .subquery())
    session.execute(insert(RuleLock).from_select(
        ["rule_id", "did_id", "endpoint_id", "state"],
        select(literal(rule.id), ranked.c.did_id, ranked.c.endpoint_id, ranked.c.initial)
        .where(ranked.c.rank <= rule.copies - ranked.c.held)))

    # 2. Every lock whose replica is neither there nor on its way gets a COPYING replica (a new row at the place
    #    the file has everywhere, i.e. the source's path, or its BAD/UNAVAILABLE row reset), stamped with this
    #    pass's time, when a source exists; 3. each stamped replica gets its transfer.
    src, src_ep = _SRC, _SRC_EP
    has_source = exists().where(src.did_id == RuleLock.did_id, src.state == ReplicaState.AVAILABLE.value,
                                src_ep.id == src.endpoint_id, src_ep.read.is_(True))
    # A counted subquery, not EXISTS: planners turn EXISTS into a join over every queued transfer, while this
    # stays one index lookup per lock however long the queue is.
    queued = (select(func.count()).select_from(Transfer).where(
        Transfer.did_id == RuleLock.did_id, Transfer.dest_endpoint_id == RuleLock.endpoint_id,
        Transfer.state.in_(("QUEUED", "ACTIVE"))).scalar_subquery())
    pending = queued > 0
    at_lock = and_(Replica.did_id == RuleLock.did_id, Replica.endpoint_id == RuleLock.endpoint_id)
    here = select(Replica.state).where(at_lock).scalar_subquery()
    mine = and_(RuleLock.rule_id == rule.id, RuleLock.did_id.in_(files))
    source_path = (select(func.min(src.path)).where(src.did_id == RuleLock.did_id,
                                                    src.state == ReplicaState.AVAILABLE.value).scalar_subquery())
    session.execute(insert(Replica).from_select(
        ["did_id", "endpoint_id", "state", "path", "created_at", "updated_at"],
        select(RuleLock.did_id, RuleLock.endpoint_id, literal(ReplicaState.COPYING.value, lock_state), source_path,
               stamp, stamp)
        .where(mine, ~exists().where(at_lock), queued == 0, has_source)))
    reset = list(session.scalars(select(Replica.id).join(RuleLock, at_lock).where(
        mine, Replica.state.not_in((ReplicaState.AVAILABLE.value, ReplicaState.COPYING.value)), queued == 0,
        has_source)))  # usually none: driven from the chunk's locks, so planners cannot pick a table scan
    if reset:
        session.execute(update(Replica).where(Replica.id.in_(reset))
                        .values(state=ReplicaState.COPYING.value, updated_at=stamp, tombstone=None)
                        .execution_options(synchronize_session=False))
    stamped = select(Replica.id).where(at_lock, Replica.state == ReplicaState.COPYING.value,
                                       Replica.updated_at == stamp)
    session.execute(insert(Transfer).from_select(
        ["did_id", "dest_endpoint_id", "rule_id", "state", "attempts", "next_attempt_at", "bytes_done", "created_at",
         "updated_at"],
        select(RuleLock.did_id, RuleLock.endpoint_id, literal(rule.id), literal("QUEUED"), literal(0), stamp,
               literal(0), stamp, stamp)
        .where(mine, exists(stamped), queued == 0)))

    # 4. Lock states from what is there now; a locked replica is needed again (no tombstone).
    state = case((here == ReplicaState.AVAILABLE.value, LockState.OK),
                 (or_(pending, here == ReplicaState.COPYING.value), LockState.REPLICATING),
                 (~has_source, LockState.STUCK), else_=LockState.REPLICATING)
    settled = and_(RuleLock.state == LockState.OK,  # most locks: one lookup
                   func.coalesce(here, "") == ReplicaState.AVAILABLE.value)
    session.execute(update(RuleLock).where(mine, ~settled, RuleLock.state != state).values(state=state)
                    .execution_options(synchronize_session=False))
    session.execute(update(Replica).where(
        Replica.did_id.in_(files), Replica.tombstone.is_not(None),
        exists().where(RuleLock.rule_id == rule.id, RuleLock.did_id == Replica.did_id,
                       RuleLock.endpoint_id == Replica.endpoint_id))
        .values(tombstone=None).execution_options(synchronize_session=False))

    # 5. What the conveyor cannot fix: too few endpoints, or nothing to copy from.
    placed: dict[int, int] = {did: count for did, count in session.execute(
        select(RuleLock.did_id, func.count()).where(mine).group_by(RuleLock.did_id)
        .having(func.count() < rule.copies))}
    with_locks = session.scalar(select(func.count(func.distinct(RuleLock.did_id))).where(mine)) or 0
    if placed or with_locks < len(files):
        fewest = 0 if with_locks < len(files) else min(placed.values())
        return f"only {fewest} of {rule.copies} endpoints are writable for some files"
    if session.scalar(select(RuleLock.did_id).where(mine, RuleLock.state == LockState.STUCK).limit(1)) is not None:
        return "no available replica to copy from"
    return None
