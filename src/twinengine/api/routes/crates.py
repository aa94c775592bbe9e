"""HTTP routes of run crates and reruns under ``/api/v1``: a run's Provenance Run Crate, a rerun of a run (or of
a crate made elsewhere) and a rerun's diff against its original (``twinengine.crates``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Path, status
from fastapi.responses import Response

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router, long_running
from twinengine.crates.rerun import diff_of, rerun
from twinengine.crates.schemas import RerunDiff, RerunStarted
from twinengine.crates.service import crate_for_run

__all__ = ["router"]

router = api_router(tag="crates")

RunId = Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9-]+$")]
ZIP = "application/zip"


@router.get("/runs/{run_id}/crate", name="crate", response_class=Response,
            responses={200: {"content": {ZIP: {}}, "description": "The run's Provenance Run Crate (a zip)."}},
            summary="The run's Provenance Run Crate (Workflow Run RO-Crate 0.5): any kind of run")
@long_running
@acts("twin.read")
def crate(run_id: RunId, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    registry = runtime.ml.registry if run_id.startswith("tr-") else None
    data = crate_for_run(session, runtime, principal=principal, run_id=run_id, registry=registry)
    return Response(data, media_type=ZIP, headers={"Content-Disposition": f'attachment; filename="{run_id}.crate.zip"'})


@router.post("/runs/{run_id}/rerun", name="rerun", status_code=status.HTTP_202_ACCEPTED,
             summary="Run the run again (same app version, graph, parameters, inputs and seeds)")
@long_running
@acts("workflow.run", "twin.operate")
def rerun_run(run_id: RunId, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep) -> RerunStarted:
    return RerunStarted.model_validate(rerun(session, runtime, principal=principal, run_id=run_id))


@router.post("/runs/rerun", name="rerun_crate", status_code=status.HTTP_202_ACCEPTED,
             summary="Run again the run a crate describes (made here or on another engine)")
@long_running
@acts("workflow.run", "twin.operate")
def rerun_crate(crate: Annotated[bytes, Body(media_type=ZIP)], session: SessionDep, runtime: RuntimeDep,
                principal: PrincipalDep) -> RerunStarted:
    return RerunStarted.model_validate(rerun(session, runtime, principal=principal, crate=crate))


@router.get("/runs/{run_id}/diff", name="rerun_diff", summary="A rerun's outputs against its original's")
@long_running
@acts("twin.read")
def rerun_diff(run_id: RunId, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep) -> RerunDiff:
    return RerunDiff.model_validate(diff_of(session, runtime, principal=principal, run_id=run_id))
