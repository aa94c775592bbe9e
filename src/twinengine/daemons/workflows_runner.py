"""Workers that execute queued runs, the heartbeat of runs in progress (which also stops those whose
identity may no longer operate their twin: ``twins.standing``), and the reaper of runs whose engine died
(they end as ``error`` with the reason, never stuck in ``running``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from twinengine.daemons import workflows_triggers
from twinengine.store.base import utcnow
from twinengine.twins import standing
from twinengine.workflows.models import WorkflowRun
from twinengine.workflows.run_endings import abandon, reap
from twinengine.workflows.runner import claim, execute
from twinengine.workflows.schemas import RunStatus

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["abandon", "heartbeat", "loops_of", "reap", "run", "run_once", "stop_lost"]

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


def loops_of(engine: WorkflowEngine) -> list[tuple[str, Callable[[WorkflowEngine], None]]]:
    """The engine's loops, named for their threads: its workers, the heartbeat and the triggers."""
    loops: list[tuple[str, Callable[[WorkflowEngine], None]]] = [
        (f"workflow-worker-{i}", run) for i in range(engine.workers)]
    return [*loops, ("workflow-heartbeat", heartbeat), ("workflow-triggers", workflows_triggers.run)]


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
