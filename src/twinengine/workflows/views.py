"""Turning run rows into API models (shared by the engine's REST API and the openEO API)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from twinengine.workflows import service
from twinengine.workflows.models import Trigger, WorkflowRun
from twinengine.workflows.schemas import NodeRead, RunRead, RunStatus, TriggerRead

__all__ = ["run_read", "trigger_read"]


def run_read(session: Session | None, run: WorkflowRun, *, nodes: bool = True) -> RunRead:
    links = [{"rel": "provenance", "href": f"/api/v1/runs/{run.id}/provenance"}]
    links += [{"rel": "item", "href": f"/api/v1/runs/{run.id}/results/{a['name']}"} for a in run.assets]
    node_rows = [NodeRead.model_validate(n) for n in service.nodes_of(session, run)] if (nodes and session) else []
    return RunRead(id=run.id, kind=run.kind, status=RunStatus(run.status), progress=run.progress, owner=run.owner,
                   title=run.title, twin_id=run.twin_id, twin_name=run.twin_name, app=run.app, workflow=run.workflow,
                   graph_sha256=run.graph_sha256, parameters=run.parameters, trigger_id=run.trigger_id,
                   executor=run.executor, error=run.error, assets=run.assets, value=run.value, nodes=node_rows,
                   created_at=run.created_at, updated_at=run.updated_at, started_at=run.started_at,
                   finished_at=run.finished_at, links=links)


def trigger_read(row: Trigger) -> TriggerRead:
    return TriggerRead(id=row.id, twin_id=row.twin_id, name=row.name, kind=row.kind, workflow=row.workflow,
                       source=row.source, enabled=row.enabled, config=row.config, next_fire_at=row.next_fire_at,
                       webhook_url=f"/api/v1/hooks/{row.id}" if row.kind == "webhook" else None)
