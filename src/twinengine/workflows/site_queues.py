"""The queue term of placement (``compute.placement``): how much work is left on each site now, each run by
its size (the core-seconds its graph took when it ran before) less what it has done: a running run less the
seconds it has run (one core each), an ensemble only its members that have not ended."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from statistics import median
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from twinengine.compute.models import UsageRecord
from twinengine.compute.placement import QUEUE_SECONDS
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.store.base import utcnow
from twinengine.workflows.models import WorkflowRun
from twinengine.workflows.schemas import FINAL, RunStatus

__all__ = ["expected_core_seconds", "site_queues"]

MEMBER, ENSEMBLE = "member", "ensemble"  # a member is counted with its ensemble, which carries the site
HISTORY = 20  # latest finished executions of a graph its size is taken from


def expected_core_seconds(session: Session, graphs: set[str]) -> dict[str, float]:
    """Per graph (``graph_sha256``): the median core-seconds of its latest finished executions (an
    ensemble's: of its members; its shared part's own record is left out); graphs that never finished here
    are absent (the caller assumes ``QUEUE_SECONDS``)."""
    if not graphs:
        return {}
    latest = (select(WorkflowRun.graph_sha256.label("graph"), UsageRecord.core_seconds.label("core_seconds"),
                     func.row_number().over(partition_by=WorkflowRun.graph_sha256,
                                            order_by=UsageRecord.finished_at.desc()).label("rank"))
              .join(UsageRecord, UsageRecord.run_id == WorkflowRun.id)
              .where(WorkflowRun.graph_sha256.in_(graphs), UsageRecord.status == "finished",
                     UsageRecord.kind != ENSEMBLE)
              .subquery())
    seen: dict[str, list[float]] = defaultdict(list)  # each graph its own latest: a busy one crowds out none
    for graph, core_seconds in session.execute(select(latest.c.graph, latest.c.core_seconds)
                                               .where(latest.c.rank <= HISTORY)):
        seen[graph].append(float(core_seconds))
    return {graph: median(values) for graph, values in seen.items()}


def site_queues(session: Session) -> dict[str, float]:
    """Core-seconds of work left per site (the runs' options' ``site``) in the runs queued or running: each
    run its graph's expected size (``expected_core_seconds``, else ``QUEUE_SECONDS``), less the seconds it
    has run when running (at least nothing); an ensemble counts its members that have not ended, each so."""
    rows = session.execute(select(WorkflowRun.options, WorkflowRun.graph_sha256, WorkflowRun.status,
                                  WorkflowRun.started_at).where(
        WorkflowRun.status.in_((RunStatus.QUEUED, RunStatus.RUNNING)), WorkflowRun.kind != MEMBER)).all()
    sizes = expected_core_seconds(session, {graph for _, graph, _, _ in rows})
    listed = {str(m["run"]) for options, _, _, _ in rows for m in _members(options)}
    members = {run_id: (status, started) for run_id, status, started in session.execute(
        select(WorkflowRun.id, WorkflowRun.status, WorkflowRun.started_at).where(WorkflowRun.id.in_(listed)))
    } if listed else {}
    now = utcnow()

    def left(size: float, status: str | None, started: datetime | None) -> float:
        if status in FINAL:
            return 0.0
        if status == RunStatus.RUNNING and started is not None:
            return max(0.0, size - (now - started).total_seconds())
        return size

    work: dict[str, float] = {}
    for options, graph, status, started in rows:
        size = sizes.get(graph, QUEUE_SECONDS)
        site = str((options or {}).get("site") or DEFAULT_SITE)
        listed_members = _members(options)
        if listed_members:  # a member not yet written counts whole
            todo = sum(left(size, *members.get(str(m["run"]), (None, None))) for m in listed_members)
        else:
            todo = left(size, status, started)
        work[site] = work.get(site, 0.0) + todo
    return work


def _members(options: dict[str, Any] | None) -> list[dict[str, Any]]:
    members = ((options or {}).get("ensemble") or {}).get("members")
    return [m for m in members if isinstance(m, dict) and m.get("run")] if isinstance(members, list) else []
