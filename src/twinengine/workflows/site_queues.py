"""The queue term of placement (``compute.placement``): how much work waits or runs on each site now, each
run by its size: the core-seconds its graph took when it ran before."""

from __future__ import annotations

from collections import defaultdict
from statistics import median

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from twinengine.compute.models import UsageRecord
from twinengine.compute.placement import QUEUE_SECONDS
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.workflows.models import WorkflowRun
from twinengine.workflows.schemas import RunStatus

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
    """Core-seconds of the runs queued or running per site (their options' ``site``): each run its graph's
    expected size (``expected_core_seconds``, else ``QUEUE_SECONDS``); an ensemble counts as its members."""
    rows = session.execute(select(WorkflowRun.options, WorkflowRun.graph_sha256).where(
        WorkflowRun.status.in_((RunStatus.QUEUED, RunStatus.RUNNING)), WorkflowRun.kind != MEMBER)).all()
    sizes = expected_core_seconds(session, {graph for _, graph in rows})
    work: dict[str, float] = {}
    for options, graph in rows:
        options = options or {}
        members = (options.get("ensemble") or {}).get("members")
        site = str(options.get("site") or DEFAULT_SITE)
        runs = len(members) if isinstance(members, list) and members else 1
        work[site] = work.get(site, 0.0) + runs * sizes.get(graph, QUEUE_SECONDS)
    return work
