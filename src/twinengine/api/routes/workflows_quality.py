"""HTTP route of a run's quality report: the quality of every input it used (docs/quality.md, pedigree)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from twinengine.api.deps import PrincipalDep, SessionDep
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router
from twinengine.errors import RunNotFinished
from twinengine.quality.pedigree import QualityReport, report_from_provenance
from twinengine.workflows import service
from twinengine.workflows.provenance import provenance_of

__all__ = ["router"]

router = api_router(tag="workflows")

RunId = Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9-]+$")]


@router.get("/runs/{run_id}/quality", name="run_quality", summary="The quality of every input a run used")
@acts("twin.read")
def run_quality(run_id: RunId, session: SessionDep, principal: PrincipalDep) -> QualityReport:
    run = service.get_run(session, principal=principal, run_id=run_id)
    document = provenance_of(run)
    if document is None:
        raise RunNotFinished(f"run {run.id} is {run.status}; its inputs are known when it ends")
    return report_from_provenance(f"run:{run.id}", document)
