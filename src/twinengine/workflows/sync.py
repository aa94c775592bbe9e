"""Synchronous execution: a stored run executed while its caller waits (API ``mode: sync``, openEO ``/result``).

Where the runtime lends the engine a ``sync_processes`` service (``sync_isolation = process``, the default),
the run is evaluated in a child process under a memory limit and killed at its time budget
(``twinengine.sync_processes``); otherwise here, in the caller's thread.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from twinengine import telemetry
from twinengine.errors import ProcessingTimeLimit, TwinEngineError
from twinengine.store.base import utcnow
from twinengine.workflows.models import RunLog, WorkflowRun
from twinengine.workflows.runner import claim, execute, forget_results
from twinengine.workflows.schemas import RunStatus

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["hold", "overdue_error", "refuse_result", "run_here", "run_now"]


def hold(engine: WorkflowEngine, run: WorkflowRun) -> None:
    """Take a run its caller will wait for (``run_now``) in the transaction that stores it: no background
    worker of any engine can claim it then, so it is evaluated only where ``run_now`` puts it."""
    now = utcnow()
    run.status, run.worker = RunStatus.RUNNING, engine.worker_id
    run.started_at = run.heartbeat_at = run.updated_at = now


def run_now(engine: WorkflowEngine, session: Session, run_id: str, *, time_limit: float | None = None) -> WorkflowRun:
    """Execute a committed, queued run (in a sync process, else here; unless a worker got it first), then
    reload it in ``session``.

    The caller's session must hold no open transaction (it has committed the run): the run writes its
    progress in transactions of its own, and other threads write meanwhile (a ``train_model`` node waits on
    the training loop's progress). With a ``time_limit`` (seconds), a run still going then is stopped at its
    next node or Dask task and ends as an error ``ProcessingTimeLimit``, so a request holds its thread for a
    bounded time (a sync process is killed then, whatever it was doing)."""
    isolated = engine.services.get("sync_processes")
    if isolated is not None:
        engine.executing.add(run_id)  # alive while its process evaluates it (the heartbeat; never reaped here)
        try:
            isolated.run(engine, run_id, time_limit=time_limit)
        finally:
            engine.executing.discard(run_id)
    else:
        _run_here(engine, run_id, time_limit=time_limit, held_by=engine.worker_id)
    session.expire_all()
    run = session.get(WorkflowRun, run_id)
    assert run is not None
    return run


def refuse_result(engine: WorkflowEngine, session: Session, run: WorkflowRun, error: TwinEngineError) -> None:
    """End a synchronous run whose result its caller may not have (found too large only once it ended, e.g.
    results a cache hit brought) as ``error``, committed in ``session``, and remove everything it kept."""
    run.status, run.error, run.assets, run.value = RunStatus.ERROR, error.to_dict(), [], None
    run.updated_at = utcnow()
    session.add(RunLog(run_id=run.id, level="error", message=error.message))
    session.commit()
    forget_results(engine, run.id)


def run_here(engine: WorkflowEngine, run_id: str, *, held_by: str) -> None:
    """Execute a committed run queued or ``held_by`` that worker in this thread, or wait for the worker that
    claimed it first to end it."""
    _run_here(engine, run_id, time_limit=None, held_by=held_by)


def _run_here(engine: WorkflowEngine, run_id: str, *, time_limit: float | None, held_by: str | None = None) -> None:
    timer = None
    if time_limit is not None:
        timer = threading.Timer(time_limit, _overdue, args=(engine, run_id, time_limit))
        timer.daemon = True
        timer.start()
    try:
        if claim(engine, run_id, held_by=held_by):
            with telemetry.span("run", {"twin.run.id": run_id, "twin.run.mode": "sync"}) as span:  # the request's
                status = execute(engine, run_id)
                if span is not None:
                    span.set_attribute("twin.run.status", status)
        else:
            while True:  # a background worker claimed it a moment earlier: wait for its end
                with engine.db.session(readonly=True) as probe:
                    row = probe.get(WorkflowRun, run_id)
                    if row is None or row.status not in ("queued", "running"):
                        break
                time.sleep(0.1)
    finally:
        if timer is not None:
            timer.cancel()
            if engine.overdue.pop(run_id, None) is not None:  # fired as the run ended: nothing left to stop
                engine.cancel_requests.discard(run_id)


def overdue_error(limit: float) -> dict[str, Any]:
    """Why a synchronous run past its budget ended."""
    error = ProcessingTimeLimit(f"synchronous processing took longer than its {limit:g} s budget (sync_timeout); "
                                "run it as a batch job instead")
    return {"code": error.code, "message": error.message, "details": error.details}


def _overdue(engine: WorkflowEngine, run_id: str, limit: float) -> None:
    """Stop a synchronous run past its budget, recording why (the runner ends it with this error)."""
    engine.overdue[run_id] = overdue_error(limit)
    engine.cancel([run_id])
