"""Synchronous execution: a stored run executed in the caller's thread (API ``mode: sync``, openEO ``/result``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from twinengine.workflows.models import WorkflowRun
from twinengine.workflows.runner import claim, execute

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["run_now"]


def run_now(engine: WorkflowEngine, session: Session, run_id: str) -> WorkflowRun:
    """Execute a committed, queued run here (unless a worker got it first), then reload it in ``session``.

    The caller's session must hold no open transaction (it has committed the run): the run writes its
    progress in transactions of its own, and other threads write meanwhile (a ``train_model`` node waits on
    the training loop's progress)."""
    if claim(engine, run_id):
        execute(engine, run_id)
    else:
        while True:  # a background worker claimed it a moment earlier: wait for its end
            with engine.db.session(readonly=True) as probe:
                row = probe.get(WorkflowRun, run_id)
                if row is None or row.status not in ("queued", "running"):
                    break
            time.sleep(0.1)
    session.expire_all()
    run = session.get(WorkflowRun, run_id)
    assert run is not None
    return run
