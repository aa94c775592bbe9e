"""Workers that execute queued runs, the heartbeat of runs in progress (which also stops those whose
identity may no longer operate their twin: ``twins.standing``), and the reaper of runs whose engine died
(they end as ``error`` with the reason, never stuck in ``running``)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from twinengine import telemetry
from twinengine.daemons import workflows_triggers
from twinengine.daemons.supervisor import Loop
from twinengine.store.base import utcnow
from twinengine.twins import standing
from twinengine.workflows.models import WorkflowRun
from twinengine.workflows.run_endings import abandon, reap
from twinengine.workflows.runner import claim, execute
from twinengine.workflows.schemas import RunStatus

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["STOP_GRACE", "abandon", "heartbeat", "heartbeat_loop", "loops_of", "reap", "run_once", "stop_lost",
           "worker_loop"]

log = logging.getLogger("twinengine.workflows")

STOP_GRACE = 4.0  # seconds a stopping engine gives its runs, cancelled, to end; then they are recorded as ended


def run_once(engine: WorkflowEngine) -> int:
    """Claim and execute the oldest queued run, if any. Returns how many runs were executed (0 or 1)."""
    with engine.db.session(readonly=True) as session:
        candidates = list(session.scalars(select(WorkflowRun.id).where(WorkflowRun.status == RunStatus.QUEUED)
                                          .order_by(WorkflowRun.queued_at, WorkflowRun.id).limit(5)))
    for run_id in candidates:
        with engine.working():  # a stopping engine waits for the run it claims here to record its ending
            if claim(engine, run_id):
                with telemetry.span("run", {"twin.run.id": run_id}) as span:  # a trace of its own per run
                    status = execute(engine, run_id)
                    if span is not None:
                        span.set_attribute("twin.run.status", status)
                return 1
    return 0


def loops_of(engine: WorkflowEngine) -> list[Loop]:
    """The engine's loops: its workers, the heartbeat of its runs and the trigger scheduler. Stopping a worker
    cancels the runs in progress (``WorkflowEngine.halt``); it then has ``STOP_GRACE`` seconds to end."""
    return [*(worker_loop(engine, i) for i in range(engine.workers)), heartbeat_loop(engine),
            workflows_triggers.loop(engine)]


def worker_loop(engine: WorkflowEngine, number: int) -> Loop:
    """A worker: executes queued runs one after another. A run queued in this process wakes every worker once
    its transaction commits; the poll only finds runs queued elsewhere, so the workers share it: together they
    look once per ``poll_seconds``, not each of them (idle CPU)."""
    def wait(stop: threading.Event) -> None:
        engine.wake.wait(engine.poll_seconds * max(1, engine.workers))
        engine.wake.clear()

    return Loop(f"workflow-worker-{number}", lambda: 0 if engine.stopping.is_set() else run_once(engine),
                rush=True, wait=wait,
                interrupt=engine.halt, grace=STOP_GRACE)


def heartbeat_loop(engine: WorkflowEngine) -> Loop:
    """Every ``heartbeat_seconds``: this engine's runs are alive, their cancel requests seen, dead engines'
    runs reaped."""
    return Loop("workflow-heartbeat", lambda: None if engine.stopping.is_set() else heartbeat(engine),
                interval=engine.heartbeat_seconds,
                interrupt=engine.halt, grace=STOP_GRACE)


def stop_lost(engine: WorkflowEngine, session: Session, run_ids: list[str]) -> list[str]:
    """The runs among ``run_ids`` whose identity was disabled, or may no longer operate their twin: each is marked
    to stop and will end as ``error`` ``GrantRevoked`` (the reason kept in ``engine.overdue`` for its runner)."""
    stopped = []
    rows = session.execute(select(WorkflowRun.id, WorkflowRun.owner, WorkflowRun.twin_id, WorkflowRun.options)
                           .where(WorkflowRun.id.in_(run_ids)))
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
    """One beat: mark this engine's runs alive, pick up cancel requests, reap dead engines' runs."""
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
