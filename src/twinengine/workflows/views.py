"""Turning run rows into API models (shared by the engine's REST API and the openEO API)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.twins.models import Twin
from twinengine.workflows import service
from twinengine.workflows.initial_state import start_read
from twinengine.workflows.models import Trigger, WorkflowRun
from twinengine.workflows.schemas import NodeRead, RunRead, RunStatus, RunSummary, TriggerRead

__all__ = ["run_page_items", "run_read", "run_summary", "trigger_read"]


def _summary(session: Session | None, run: WorkflowRun) -> dict[str, Any]:
    links = [{"rel": "self", "href": f"/api/v1/runs/{run.id}"},
             {"rel": "provenance", "href": f"/api/v1/runs/{run.id}/provenance"}]
    links += [{"rel": "item", "href": f"/api/v1/runs/{run.id}/results/{a['name']}"} for a in run.assets]
    return {"id": run.id, "kind": run.kind, "status": RunStatus(run.status), "progress": run.progress,
            "owner": run.owner, "title": run.title, "twin_id": run.twin_id, "twin_name": run.twin_name,
            "what_if_of": _what_if_of(session, run), "app": run.app, "workflow": run.workflow,
            "graph_sha256": run.graph_sha256, "trigger_id": run.trigger_id, "executor": run.executor,
            "error": run.error, "assets": run.assets, "created_at": run.created_at, "updated_at": run.updated_at,
            "started_at": run.started_at, "finished_at": run.finished_at, "links": links}


def run_summary(session: Session | None, run: WorkflowRun) -> RunSummary:
    """A run as lists show it (``RunSummary``): no value, parameters or nodes."""
    return RunSummary(**_summary(session, run))


def run_read(session: Session | None, run: WorkflowRun, *, nodes: bool = True) -> RunRead:
    node_rows = [NodeRead.model_validate(n) for n in service.nodes_of(session, run)] if (nodes and session) else []
    return RunRead(**_summary(session, run), parameters=run.parameters, value=run.value, nodes=node_rows,
                   staging=(run.options or {}).get("staging"), start=start_read(run.options))


def _what_if_of(session: Session | None, run: WorkflowRun) -> str | None:
    """The origin of the run's twin when that twin is a fork: every run on a fork is a what-if of its origin."""
    if session is None or run.twin_id is None:
        return None
    twin = session.get(Twin, run.twin_id)
    return twin.origin_name if twin is not None else None


def run_page_items(session: Session, runs: Sequence[WorkflowRun]) -> list[RunSummary]:
    """A page of runs as summaries (``service.list_runs`` reads no values); their twins are read in one query,
    not one per run."""
    ids = {r.twin_id for r in runs if r.twin_id is not None}
    if ids:
        session.scalars(select(Twin).where(Twin.id.in_(ids))).all()  # into the session, where _summary finds them
    return [run_summary(session, r) for r in runs]


def trigger_read(row: Trigger) -> TriggerRead:
    return TriggerRead(id=row.id, twin_id=row.twin_id, name=row.name, kind=row.kind, workflow=row.workflow,
                       source=row.source, enabled=row.enabled, config=row.config, next_fire_at=row.next_fire_at,
                       webhook_url=f"/api/v1/hooks/{row.id}" if row.kind == "webhook" else None)
