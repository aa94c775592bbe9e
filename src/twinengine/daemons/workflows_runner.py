"""Workers that execute queued runs, the heartbeat of runs in progress (which also stops those whose
identity may no longer operate their twin: ``twins.standing``), and the reaper of runs whose engine died
(they end as ``error`` with the reason, never stuck in ``running``)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from twinengine.store.base import utcnow
from twinengine.twins import standing
from twinengine.workflows.models import RunLog, WorkflowRun
from twinengine.workflows.runner import claim, execute, stopped_error
from twinengine.workflows.schemas import RunStatus

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["abandon", "heartbeat", "reap", "run", "run_once", "stop_lost"]

log = logging.getLogger("twinengine.workflows")


def run_once(engine: WorkflowEngine) -> int:
    """Claim and execute the oldest queued run, if any. Returns how many runs were executed (0 or 1)."""
    with engine.db.session(readonly=True) as session:
        candidates = list(session.scalars(select(WorkflowRun.id).where(WorkflowRun.status == RunStatus.QUEUED)
                                          .order_by(WorkflowRun.queued_at, WorkflowRun.id).limit(5)))
    for run_id in candidates:
        if claim(engine, run_id):
            execute(engine, run_id)
            return 1
    return 0


def run(engine: WorkflowEngine) -> None:
    """Work until stopped. A run queued in this process wakes every worker once its transaction commits;
    the poll only finds runs queued elsewhere, so the workers share it: together they look once per
    ``poll_seconds``, not each of them (idle CPU)."""
    while not engine.stopping.is_set():
        try:
            if run_once(engine):
                continue
        except Exception:  # the loop must outlive a broken store connection
            log.exception("workflow worker step failed")
        engine.wake.wait(engine.poll_seconds * max(1, engine.workers))
        engine.wake.clear()


def reap(engine: WorkflowEngine, *, stale_after: float) -> int:
    """End runs left ``running`` by an engine that stopped (no heartbeat for ``stale_after`` seconds)."""
    now = utcnow()
    limit = now - timedelta(seconds=stale_after)
    with engine.db.session() as session:
        rows = list(session.scalars(select(WorkflowRun).where(WorkflowRun.status == RunStatus.RUNNING,
                                                              WorkflowRun.heartbeat_at < limit)))
        for row in rows:
            if row.id in engine.executing:
                continue
            row.status, row.finished_at, row.updated_at = RunStatus.ERROR, now, now
            row.error = {"code": "EngineRestarted",
                         "message": f"the engine running it ({row.worker}) stopped without finishing it; last "
                                    f"heartbeat {row.heartbeat_at.isoformat() if row.heartbeat_at else 'never'}; "
                                    "start the run again"}
            session.add(RunLog(run_id=row.id, level="error", message=row.error["message"]))
        return len(rows)


def abandon(engine: WorkflowEngine, run_ids: list[str]) -> int:
    """End as ``error`` the runs this engine still executes when it stops (a node that did not return in
    time): they would otherwise stay ``running`` until another engine reaps them."""
    if not run_ids:
        return 0
    now = utcnow()
    error = stopped_error(engine)
    with engine.db.session() as session:
        rows = list(session.scalars(select(WorkflowRun).where(WorkflowRun.id.in_(run_ids),
                                                              WorkflowRun.status == RunStatus.RUNNING)))
        for row in rows:
            row.status, row.error, row.finished_at, row.updated_at = RunStatus.ERROR, error, now, now
            session.add(RunLog(run_id=row.id, level="error", message=error["message"]))
        return len(rows)


def stop_lost(engine: WorkflowEngine, session: Session, run_ids: list[str]) -> list[str]:
    """The runs among ``run_ids`` whose identity may no longer operate their twin: each is marked to stop and
    will end as ``error`` ``GrantRevoked`` (the reason kept in ``engine.overdue`` for its runner)."""
    stopped = []
    rows = session.execute(select(WorkflowRun.id, WorkflowRun.owner, WorkflowRun.twin_id, WorkflowRun.options)
                           .where(WorkflowRun.id.in_(run_ids), WorkflowRun.twin_id.is_not(None)))
    for run_id, owner, twin_id, options in rows:
        if run_id in engine.overdue:
            continue
        reason = standing.lost(session, identity=owner, twin_id=twin_id, role=str((options or {}).get("role", "user")))
        if reason is not None:
            engine.overdue[run_id] = standing.lost_error(reason)
            session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id).values(cancel_requested=True))
            stopped.append(run_id)
    return stopped


def heartbeat(engine: WorkflowEngine) -> None:
    """Every few seconds: mark this engine's runs alive, pick up cancel requests, reap dead engines' runs."""
    while not engine.stopping.wait(engine.heartbeat_seconds):
        try:
            for flush in list(engine.in_progress.values()):  # node statuses of long nodes show up meanwhile
                flush()
            running = list(engine.executing)
            with engine.db.session() as session:
                if running:
                    session.execute(update(WorkflowRun).where(WorkflowRun.id.in_(running))
                                    .values(heartbeat_at=utcnow()))
                    canceled = list(session.scalars(select(WorkflowRun.id).where(
                        WorkflowRun.id.in_(running), WorkflowRun.cancel_requested.is_(True))))
                    engine.cancel(canceled + stop_lost(engine, session, running))
            reap(engine, stale_after=engine.stale_after_seconds)
        except Exception:
            log.exception("workflow heartbeat failed")
