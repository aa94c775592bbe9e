"""Synchronous execution: a stored run executed in the caller's thread (API ``mode: sync``, openEO ``/result``)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from twinengine.errors import ProcessingTimeLimit
from twinengine.workflows.models import WorkflowRun
from twinengine.workflows.runner import claim, execute

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["run_now"]


def run_now(engine: WorkflowEngine, session: Session, run_id: str, *, time_limit: float | None = None) -> WorkflowRun:
    """Execute a committed, queued run here (unless a worker got it first), then reload it in ``session``.

    The caller's session must hold no open transaction (it has committed the run): the run writes its
    progress in transactions of its own, and other threads write meanwhile (a ``train_model`` node waits on
    the training loop's progress). With a ``time_limit`` (seconds), a run still going then is stopped at its
    next node or Dask task and ends as an error ``ProcessingTimeLimit``, so a request holds its thread for a
    bounded time."""
    timer = None
    if time_limit is not None:
        timer = threading.Timer(time_limit, _overdue, args=(engine, run_id, time_limit))
        timer.daemon = True
        timer.start()
    try:
        if claim(engine, run_id):
            execute(engine, run_id)
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
    session.expire_all()
    run = session.get(WorkflowRun, run_id)
    assert run is not None
    return run


def _overdue(engine: WorkflowEngine, run_id: str, limit: float) -> None:
    """Stop a synchronous run past its budget, recording why (the runner ends it with this error)."""
    error = ProcessingTimeLimit(f"synchronous processing took longer than its {limit:g} s budget (sync_timeout); "
                                "run it as a batch job instead")
    engine.overdue[run_id] = {"code": error.code, "message": error.message, "details": error.details}
    engine.cancel([run_id])
