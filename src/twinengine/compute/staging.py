"""Staging: before a run starts on its site, the lake inputs that no endpoint near the site holds are
replicated there by lake rules, and the run's outputs are sent to an endpoint near the user's data.

The copying is the lake's own: a rule (owned by the engine, ``system``) for one copy of each input dataset
on the site's endpoints, evaluated at once (the judge's ``evaluate``), and its transfers run here by the
conveyor's ``perform`` (the conveyor may take some of them first; the staging then waits for those). A
second run needing the same input on the same site finds the replica there and copies nothing; two runs
staging it at once share one transfer (the rule's locks prefer a copy on its way). Rules live for
``LIFETIME``, so a site keeps what it staged for the runs that follow, and the reaper frees it after.

``bytes_transferred`` (the run's usage record reads it) counts the transfers this staging's evaluation
queued, whoever performed them: a copy shared by two runs is charged to the run that queued it, not to both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from twinengine.auth.principal import SYSTEM, Principal
from twinengine.compute.models import ComputeSite
from twinengine.compute.placement import collection_inputs
from twinengine.errors import DuplicateRule
from twinengine.lake import terms
from twinengine.lake.context import Lake
from twinengine.lake.grants import may_read
from twinengine.lake.models import Attachment, Did, Endpoint, Replica, Rule, Transfer
from twinengine.lake.rules import add_rule, evaluate
from twinengine.lake.schemas import ReplicaState, RuleState
from twinengine.lake.transfers import perform
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["LIFETIME", "Staging", "describe", "stage"]

LIFETIME = "7d"  # how long a site keeps what was staged for it (the staging rule's lifetime)
WAIT_SECONDS = 0.2  # between looks at transfers another worker runs
REPORT_SECONDS = 0.5  # between progress reports
_BATCH = 500  # transfer ids per query: well under the bound parameters a statement may have


@dataclass
class _Input:
    did: str
    files: dict[int, int]  # file id -> bytes, of the files no near endpoint holds
    held_on: list[str]  # endpoints holding the whole dataset now (the user's data)


@dataclass
class Staging:
    """What staging did for one run: kept in the run's options (``staging``), its status and provenance."""

    site: str
    endpoints: list[str]
    percent: float = 0.0
    staged: list[dict[str, Any]] = field(default_factory=list)  # {did, rule, files, bytes}
    near: list[str] = field(default_factory=list)  # inputs an endpoint near the site held already
    bytes_total: int = 0
    bytes_transferred: int = 0
    outputs_endpoint: str | None = None
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "endpoints": self.endpoints, "percent": round(self.percent, 1),
                "staged": self.staged, "near": self.near, "bytes_total": self.bytes_total,
                "bytes_transferred": self.bytes_transferred, "outputs_endpoint": self.outputs_endpoint,
                "seconds": round(self.seconds, 3), "error": self.error}


def _near_endpoints(session: Session, site: str) -> list[Endpoint]:
    names = session.scalar(select(ComputeSite.endpoints).where(ComputeSite.name == site)) or []
    if not names:
        return []
    return list(session.scalars(select(Endpoint).where(Endpoint.name.in_(names), Endpoint.write.is_(True))
                                .order_by(Endpoint.name)))


def _inputs(session: Session, owner: Principal, collections: list[str], near: set[int]) -> tuple[
        list[_Input], list[str]]:
    """The datasets behind ``collections`` that ``owner`` may read: those with files missing near the site,
    and the names of those held near it already."""
    missing, held = [], []
    for ident in collections:
        scope, _, name = ident.partition(".")
        dataset = session.scalar(select(Did).where(Did.scope == scope, Did.name == name.replace("~", "/")))
        if dataset is None or not may_read(session, owner, dataset) \
                or terms.refusal(dataset, session=session) is not None:
            continue  # not a lake dataset, not the owner's to read, or a copy its terms keep from use: the run says so
        files = {int(f): int(b) for f, b in session.execute(select(Did.id, func.coalesce(Did.bytes, 0)).join(
            Attachment, Attachment.child_id == Did.id).where(Attachment.parent_id == dataset.id))}
        where: dict[int, set[int]] = {}
        for did_id, endpoint_id in session.execute(select(Replica.did_id, Replica.endpoint_id).where(
                Replica.did_id.in_(list(files)), Replica.state == ReplicaState.AVAILABLE)):
            where.setdefault(endpoint_id, set()).add(did_id)
        lacking = {f: int(b) for f, b in files.items() if not any(f in where.get(e, set()) for e in near)}
        if not lacking:
            held.append(dataset.did)
            continue
        holders = [e for e, got in where.items() if got >= set(files)]
        names = list(session.scalars(select(Endpoint.name).where(Endpoint.id.in_(holders), Endpoint.write.is_(True))
                                     .order_by(Endpoint.name)))
        missing.append(_Input(did=dataset.did, files=lacking, held_on=names))
    return missing, held


def _rule_for(session: Session, did: str, expression: str, run_id: str, site: str) -> tuple[Rule, set[int]]:
    """A new staging rule, or the one staging made for this dataset and site before (its copies reused), and
    the transfers its evaluation here queued (those are this run's to pay for)."""
    try:
        rule = add_rule(session, principal=SYSTEM, did=did, copies=1, expression=expression, lifetime=LIFETIME,
                        comment=f"staged for run {run_id} on site {site}")
    except DuplicateRule as exc:
        rule = session.get_one(Rule, exc.details[0]["rule"])
        if rule.state == RuleState.SUSPENDED:
            rule.state = RuleState.REPLICATING
    mine = select(Transfer.id).where(Transfer.rule_id == rule.id)
    before = set(session.scalars(mine))
    evaluate(session, rule)  # the judge's pass, now: the run waits for these transfers
    return rule, set(session.scalars(mine)) - before


def _claim(db: Database, rule_ids: list[str], worker: str, stale_after: timedelta) -> list[int]:
    """The rules' due transfers, each taken only if still queued (the conveyor may hold some), or held by a
    worker that stopped beating (as the conveyor takes those back)."""
    now, taken = utcnow(), []
    free = or_(Transfer.state == "QUEUED", and_(Transfer.state == "ACTIVE", Transfer.heartbeat_at < now - stale_after))
    with db.session() as session:
        due = list(session.scalars(select(Transfer.id).where(Transfer.rule_id.in_(rule_ids), free,
                                                            Transfer.next_attempt_at <= now)))
        for transfer_id in due:
            result = session.execute(update(Transfer).where(Transfer.id == transfer_id, free)
                                     .values(state="ACTIVE", claimed_by=worker, heartbeat_at=now, updated_at=now))
            if getattr(result, "rowcount", 0) == 1:
                taken.append(transfer_id)
    return taken


def _arrived(db: Database, files: list[int], endpoints: list[int]) -> int:
    with db.session(readonly=True) as session:
        return int(session.scalar(select(func.coalesce(func.sum(Did.bytes), 0)).where(Did.id.in_(select(
            Replica.did_id).where(Replica.did_id.in_(files), Replica.endpoint_id.in_(endpoints),
                                  Replica.state == ReplicaState.AVAILABLE)))) or 0)


def stage(db: Database, lake: Lake, *, run_id: str, owner: Principal, site: str, process: dict[str, Any],
          worker: str, report: Callable[[Staging], None], check: Callable[[], None] | None = None,
          parameter_sets: list[dict[str, Any]] | None = None) -> Staging | None:
    """Replicate the run's inputs to endpoints near ``site``; None when there is nothing to weigh (no lake
    input, or a site with no endpoints listed near it). ``parameter_sets``: the run's parameters (an
    ensemble's members'), for inputs a parameter names. ``report`` gets the progress as it goes; ``check``
    raises to stop (a canceled run). A staging that cannot finish (a rule stuck) is reported in ``error``
    and the run reads its inputs where they are."""
    collections = collection_inputs(process, *(parameter_sets or []))
    if not collections:
        return None
    started = time.monotonic()
    with db.session() as session:
        near = _near_endpoints(session, site)
        if not near:
            return None
        near_ids = [e.id for e in near]
        missing, held = _inputs(session, owner, collections, set(near_ids))
        staging = Staging(site=site, endpoints=[e.name for e in near], near=held)
        homes = [name for item in missing for name in item.held_on]
        staging.outputs_endpoint = homes[0] if homes else None
        if not missing:
            staging.percent = 100.0
            return staging
        expression = "|".join(e.name for e in near)
        made = {item.did: _rule_for(session, item.did, expression, run_id, site) for item in missing}
        rules = {did: rule for did, (rule, _) in made.items()}
        queued = [t for _, transfers in made.values() for t in transfers]
        rule_ids = [r.id for r in rules.values()]
        staging.staged = [{"did": item.did, "rule": rules[item.did].id, "files": len(item.files),
                           "bytes": sum(item.files.values())} for item in missing]
    files = [f for item in missing for f in item.files]
    staging.bytes_total = sum(sum(item.files.values()) for item in missing)
    moving, arrived = 0, 0
    last_report = 0.0

    def progress(n: int) -> None:
        nonlocal moving, last_report
        moving += n
        if time.monotonic() - last_report >= REPORT_SECONDS:
            last_report = time.monotonic()
            staging.percent = min(99.9, 100.0 * (arrived + moving) / max(1, staging.bytes_total))
            report(staging)

    report(staging)
    while True:
        if check is not None:
            check()
        for transfer_id in _claim(db, rule_ids, worker, lake.tuning.stale_after):
            moving = 0
            perform(db, lake, transfer_id, progress=progress)
            arrived = _arrived(db, files, near_ids)
        arrived = _arrived(db, files, near_ids)
        with db.session(readonly=True) as session:
            states = {r.id: (r.state, r.last_error) for r in session.scalars(select(Rule).where(Rule.id.in_(rule_ids)))}
        stuck = [f"rule {rid}: {error or 'stuck'}" for rid, (state, error) in states.items()
                 if state in (RuleState.STUCK, RuleState.SUSPENDED)]
        if stuck or arrived >= staging.bytes_total or all(s == RuleState.OK for s, _ in states.values()):
            staging.error = "; ".join(stuck) or None
            break
        staging.percent = min(99.9, 100.0 * arrived / max(1, staging.bytes_total))
        report(staging)
        time.sleep(WAIT_SECONDS)
    with db.session(readonly=True) as session:
        staging.bytes_transferred = sum(int(session.scalar(select(func.coalesce(func.sum(Transfer.bytes_done), 0))
                                                           .where(Transfer.id.in_(queued[start:start + _BATCH]),
                                                                  Transfer.state == "DONE")) or 0)
                                        for start in range(0, len(queued), _BATCH))
    staging.percent = 100.0 if staging.error is None else 100.0 * arrived / max(1, staging.bytes_total)
    staging.seconds = time.monotonic() - started
    report(staging)
    return staging


def describe(staging: Staging) -> str:
    """One log line: what was staged where, or that nothing had to be."""
    if staging.error:
        return f"staging on site {staging.site} stopped: {staging.error}; the run reads its inputs where they are"
    if not staging.staged:
        return f"inputs already near site {staging.site} ({', '.join(staging.near)}): nothing staged"
    what = ", ".join(f"{s['did']} ({s['files']} files, {s['bytes']} bytes)" for s in staging.staged)
    return (f"staged {what} to {', '.join(staging.endpoints)} near site {staging.site} in {staging.seconds:.3g} s "
            f"({staging.bytes_transferred} bytes transferred)")
