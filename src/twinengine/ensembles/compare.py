"""Branches side by side: chosen state properties of several twins (a twin and its forks), what their
parameters change, and each one's latest forecast series (an ensemble's mean with its quantile band)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.errors import ValidationFailed
from twinengine.twins import service as twins
from twinengine.workflows.models import WorkflowRun
from twinengine.workflows.schemas import RunStatus

__all__ = ["Comparison", "Series", "TwinColumn", "compare"]

MAX_TWINS = 32


class Series(BaseModel):
    run_id: str
    kind: str
    workflow: str | None
    values: list[float | None]
    low: list[float | None] | None = Field(default=None, description="Lowest quantile of an ensemble")
    high: list[float | None] | None = Field(default=None, description="Highest quantile of an ensemble")
    exceedance: float | None = Field(default=None, description="An ensemble's probability of exceeding its "
                                                                "threshold at some step")


class TwinColumn(BaseModel):
    name: str
    id: str
    origin: str | None
    origin_revision: int | None
    changed: dict[str, Any] = Field(description="Parameters that differ from the first twin's.")
    state: dict[str, Any]
    series: Series | None


class Comparison(BaseModel):
    properties: list[str]
    twins: list[TwinColumn]


def _latest_series(session: Session, twin_id: str, workflow: str | None) -> Series | None:
    query = select(WorkflowRun).where(WorkflowRun.twin_id == twin_id, WorkflowRun.status == RunStatus.FINISHED,
                                      WorkflowRun.kind.in_(("run", "ensemble")))
    if workflow:
        query = query.where(WorkflowRun.workflow == workflow)
    for run in session.scalars(query.order_by(WorkflowRun.finished_at.desc()).limit(20)):
        value = run.value
        if run.kind == "ensemble" and isinstance(value, dict) and isinstance(value.get("series"), dict):
            part = value["series"]
            bands = part.get("quantiles") or {}
            keys = sorted(bands, key=float)
            return Series(run_id=run.id, kind=run.kind, workflow=run.workflow, values=_list(part.get("mean")),
                          low=_list(bands[keys[0]]) if keys else None, high=_list(bands[keys[-1]]) if keys else None,
                          exceedance=(value.get("peak") or {}).get("exceedance"))
        if isinstance(value, list) and value and all(isinstance(v, int | float) or v is None for v in value):
            return Series(run_id=run.id, kind=run.kind, workflow=run.workflow, values=value)
    return None


def _list(value: Any) -> list[float | None]:
    return list(value) if isinstance(value, list) else [value]


def compare(session: Session, *, principal: Principal, refs: list[str], properties: list[str] | None = None,
            workflow: str | None = None) -> Comparison:
    """The twins named (each readable by the caller) side by side; default properties: every number or
    boolean any of them reports."""
    if not refs:
        raise ValidationFailed.one("twin", "name at least one twin")
    if len(refs) > MAX_TWINS:
        raise ValidationFailed.one("twin", f"at most {MAX_TWINS} twins")
    rows = [twins.get_twin(session, principal=principal, ref=ref) for ref in refs]
    states = [twins.read_state(session, principal=principal, ref=row.id).reported for row in rows]
    if properties:
        declared = set().union(*(twins.manifest_for(session, row).state for row in rows))
        unknown = [p for p in properties if p not in declared]
        if unknown:
            raise ValidationFailed.one("property", f"no state property {unknown[0]!r} (declared: "
                                                   f"{', '.join(sorted(declared))})")
        chosen = list(properties)
    else:
        chosen = sorted({k for s in states for k, v in s.items() if isinstance(v.value, int | float | bool)})
    first = rows[0].parameters
    columns = []
    for row, state in zip(rows, states, strict=True):
        changed = {k: v for k, v in row.parameters.items() if first.get(k) != v}
        columns.append(TwinColumn(name=row.name, id=row.id, origin=row.origin_name, origin_revision=row.origin_revision,
                                  changed=changed, state={p: state[p].value if p in state else None for p in chosen},
                                  series=_latest_series(session, row.id, workflow)))
    return Comparison(properties=chosen, twins=columns)
