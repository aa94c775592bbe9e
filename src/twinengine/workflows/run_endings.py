"""How runs end when their engine stops: those it still executes are recorded as ``error`` (``abandon``), and
those an engine left ``running`` without a heartbeat are ended by the next one (``reap``), so no run stays
``running``. The engine calls both itself, on start and on stop; the loops that run runs live in
``daemons.workflows_runner``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select

from twinengine.store.base import utcnow
from twinengine.workflows.models import RunLog, WorkflowRun
from twinengine.workflows.schemas import RunStatus

if TYPE_CHECKING:
    from twinengine.store.engine import Database

__all__ = ["EndingEngine", "abandon", "end_unfinished", "reap", "stopped_error"]


class EndingEngine(Protocol):
    """What ending runs uses of their engine (``workflows.engine.WorkflowEngine`` is one)."""

    @property
    def db(self) -> Database: ...

    @property
    def worker_id(self) -> str: ...

    @property
    def executing(self) -> set[str]: ...


def stopped_error(engine: EndingEngine) -> dict[str, Any]:
    """Why a run ended when its engine stopped in the middle of it."""
    return {"code": "EngineStopped", "message": f"the engine running it ({engine.worker_id}) stopped before the "
                                               "run ended; start the run again"}



def reap(engine: EndingEngine, *, stale_after: float) -> int:
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


def abandon(engine: EndingEngine, run_ids: list[str]) -> int:
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


def end_unfinished(db: Database, run_id: str, error: dict[str, Any]) -> bool:
    """End a run that is still queued or running as ``error`` for a reason found outside its executor (the
    process evaluating it was killed at its budget, or died); False if it had ended meanwhile."""
    now = utcnow()
    with db.session() as session:
        row = session.scalar(select(WorkflowRun).where(
            WorkflowRun.id == run_id, WorkflowRun.status.in_([RunStatus.QUEUED, RunStatus.RUNNING])))
        if row is None:
            return False
        row.status, row.error, row.finished_at, row.updated_at = RunStatus.ERROR, error, now, now
        session.add(RunLog(run_id=run_id, level="error", message=error["message"]))
        return True
