"""The queue term of placement (``compute.placement``): how many runs wait or run on each site now."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.compute.sites import DEFAULT_SITE
from twinengine.workflows.models import WorkflowRun
from twinengine.workflows.schemas import RunStatus

__all__ = ["site_queues"]

MEMBER = "member"  # an ensemble's member: counted with its ensemble, which carries the site


def site_queues(session: Session) -> dict[str, int]:
    """Runs queued or running per site (their options' ``site``); an ensemble counts as its members."""
    counts: dict[str, int] = {}
    rows = session.execute(select(WorkflowRun.options).where(
        WorkflowRun.status.in_((RunStatus.QUEUED, RunStatus.RUNNING)), WorkflowRun.kind != MEMBER))
    for (options,) in rows:
        options = options or {}
        members = (options.get("ensemble") or {}).get("members")
        site = str(options.get("site") or DEFAULT_SITE)
        counts[site] = counts.get(site, 0) + (len(members) if isinstance(members, list) and members else 1)
    return counts
