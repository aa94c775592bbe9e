"""HTTP routes of calibrations: start one on a twin (it runs in the background; ``percent`` shows progress),
read it with its result and figure, list its runs, and accept or reject what it proposes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, status
from fastapi.responses import FileResponse

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router
from twinengine.calibration import service
from twinengine.calibration.runner import figure_path
from twinengine.calibration.schemas import CalibrationCreate, CalibrationPage, CalibrationRead, CalibrationRunPage
from twinengine.errors import NotFound

__all__ = ["router"]

router = api_router(tag="calibrations")

TwinRef = Annotated[str, Path(max_length=64, description="The twin's id (tw-...) or name.")]
CalibrationId = Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9-]+$")]


@router.post("/twins/{twin}/calibrations", name="create", status_code=status.HTTP_202_ACCEPTED,
             summary="Fit the twin's parameters to its observations (runs in the background)")
@acts("calibration.run", "twin.operate")
def create_calibration(twin: TwinRef, body: CalibrationCreate, session: SessionDep, runtime: RuntimeDep,
                       principal: PrincipalDep) -> CalibrationRead:
    """Queued at once; the engine's calibration runner starts it after this request commits. Poll
    ``GET /calibrations/{id}`` for ``percent`` and, once ``done``, the best parameters, intervals and the
    proposed fork; the twin itself changes only when the calibration is accepted."""
    row = service.start_calibration(session, principal=principal, twin_ref=twin, body=body)
    found, twin_row = service.get_calibration(session, principal=principal, calibration_id=row.id)
    runtime.calibrations.notify_after_commit(session)
    return service.read(session, found, twin_row)


@router.get("/twins/{twin}/calibrations", name="list", summary="The twin's calibrations, newest first")
@acts("twin.read")
def list_calibrations(twin: TwinRef, session: SessionDep, principal: PrincipalDep,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                      offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> CalibrationPage:
    items, total = service.list_calibrations(session, principal=principal, twin_ref=twin, limit=limit,
                                             offset=offset)
    return CalibrationPage(items=items, total=total)


@router.get("/calibrations/{calibration_id}", name="get",
            summary="A calibration: status, percent, best parameters, intervals, correlations, proposed fork")
@acts("twin.read")
def get_calibration(calibration_id: CalibrationId, session: SessionDep, principal: PrincipalDep) -> CalibrationRead:
    row, twin = service.get_calibration(session, principal=principal, calibration_id=calibration_id)
    return service.read(session, row, twin)


@router.get("/calibrations/{calibration_id}/runs", name="runs", summary="Every model run: parameters and scores")
@acts("twin.read")
def list_runs(calibration_id: CalibrationId, session: SessionDep, principal: PrincipalDep,
              limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
              offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> CalibrationRunPage:
    items, total = service.list_runs(session, principal=principal, calibration_id=calibration_id, limit=limit,
                                     offset=offset)
    return CalibrationRunPage(items=items, total=total)


@router.get("/calibrations/{calibration_id}/figure", name="figure", response_class=FileResponse,
            summary="The calibration's figure (PNG): the objective over the runs and the posterior's marginals")
@acts("twin.read")
def figure(calibration_id: CalibrationId, session: SessionDep, runtime: RuntimeDep,
           principal: PrincipalDep) -> FileResponse:
    row, _ = service.get_calibration(session, principal=principal, calibration_id=calibration_id)
    path = figure_path(runtime.data_dir, row.id)
    if not (row.result or {}).get("figure") or not path.is_file():
        raise NotFound(f"calibration {row.id} has no figure yet (it is {row.status})")
    return FileResponse(path, media_type="image/png")


@router.post("/calibrations/{calibration_id}/accept", name="accept",
             summary="Apply the calibrated parameters to the twin")
@acts("calibration.decide", "twin.operate")
def accept(calibration_id: CalibrationId, session: SessionDep, principal: PrincipalDep) -> CalibrationRead:
    row, twin = service.decide(session, principal=principal, calibration_id=calibration_id, accept=True)
    return service.read(session, row, twin)


@router.post("/calibrations/{calibration_id}/reject", name="reject",
             summary="Leave the twin as it is and remove the proposed fork")
@acts("calibration.decide", "twin.operate")
def reject(calibration_id: CalibrationId, session: SessionDep, principal: PrincipalDep) -> CalibrationRead:
    row, twin = service.decide(session, principal=principal, calibration_id=calibration_id, accept=False)
    return service.read(session, row, twin)


@router.post("/calibrations/{calibration_id}/cancel", name="cancel",
             summary="Stop a queued or running calibration (its runs so far are kept)")
@acts("calibration.run", "twin.operate")
def cancel(calibration_id: CalibrationId, session: SessionDep, principal: PrincipalDep) -> CalibrationRead:
    row, twin = service.cancel(session, principal=principal, calibration_id=calibration_id)
    return service.read(session, row, twin)
