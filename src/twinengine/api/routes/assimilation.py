"""HTTP routes of assimilation cycles: run them on a twin (synchronously, at most ``MAX_CYCLES`` per
request; ``pending`` says how many observation times wait), list them, read one with its innovations and
provenance."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Response, status

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router, long_running
from twinengine.twin_assimilation import history, schedules, service
from twinengine.twin_assimilation.schemas import (
    AssimilationRequest,
    AssimilationResult,
    CyclePage,
    CycleRead,
    ScheduleRead,
    ScheduleWrite,
)

__all__ = ["router"]

router = api_router("/twins", tag="assimilation")

TwinRef = Annotated[str, Path(max_length=64, description="The twin's id (tw-...) or name.")]


@router.post("/{twin}/assimilations", name="assimilate", status_code=status.HTTP_201_CREATED,
             summary="Run assimilation cycles on the observations that arrived since the twin's last cycle")
@long_running
@acts("assimilation.run", "twin.operate")
def assimilate(twin: TwinRef, body: AssimilationRequest, runtime: RuntimeDep, session: SessionDep,
               principal: PrincipalDep) -> AssimilationResult:
    """Each cycle advances the twin's ensemble with the app's model step to the next observation time, runs
    the filter and writes the analysis as a state revision; the answer lists the cycles and how many
    observation times are still pending (ask again for them). Each cycle is committed as it ends."""
    engines = service.Engines(hub=runtime.streams, code=runtime.app_code)
    return service.assimilate(session, engines, principal=principal, ref=twin, request=body,
                              checkpoint=session.commit)


@router.get("/{twin}/assimilations", name="list_assimilations", summary="The twin's assimilation cycles, newest "
                                                                       "first")
@acts("twin.read")
def list_assimilations(twin: TwinRef, session: SessionDep, principal: PrincipalDep,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                       offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> CyclePage:
    items, total = service.list_cycles(session, principal=principal, ref=twin, limit=limit, offset=offset)
    return CyclePage(items=items, total=total)


@router.get("/{twin}/assimilations/{cycle}", name="get_assimilation",
            summary="One cycle (by id or number) with its innovations, observations, analysis and provenance")
@acts("twin.read")
def get_assimilation(twin: TwinRef, cycle: Annotated[str, Path(max_length=32)], session: SessionDep,
                     principal: PrincipalDep) -> CycleRead:
    return service.get_cycle(session, principal=principal, ref=twin, cycle=cycle)


_TABLE = {"schema": {"type": "string", "format": "binary"}}


@router.get("/{twin}/assimilation-history", name="assimilation_history", response_class=Response,
            summary="The twin's analyses in bulk, a row per cycle: CSV, Parquet or an Arrow stream",
            responses={200: {"content": {media: _TABLE for media in history.FORMATS.values()}}})
@acts("twin.read")
def assimilation_history(twin: TwinRef, session: SessionDep, principal: PrincipalDep,
                         fmt: Annotated[history.Format, Query(alias="format", description="csv, parquet or "
                                                                                          "arrow")] = "csv",
                         after: Annotated[int, Query(ge=0, le=2**31 - 1, description="Cycles numbered above "
                                                                                     "this")] = 0,
                         limit: Annotated[int, Query(ge=1, le=history.MAX_ROWS)] = history.MAX_ROWS) -> Response:
    """Oldest first: each cycle's number, valid time, revision, method, members, seed, observations,
    innovation mean and RMS, expected RMS and spread, then per state entry its analysis mean (``x[3]``), std
    (``x[3]:std``) and 5, 50 and 95 % quantiles (``x[3]:q05``...). ``after`` pages on (the last row's cycle)."""
    table = history.history_table(session, principal=principal, ref=twin, after=after, limit=limit)
    name = f"{twin}-assimilation.{fmt}"
    return Response(history.encode(table, fmt), media_type=history.FORMATS[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/{twin}/assimilation-schedule", name="get_assimilation_schedule",
            summary="When the twin's cycles run by themselves, and how the last pass ended")
@acts("twin.read")
def get_assimilation_schedule(twin: TwinRef, session: SessionDep, principal: PrincipalDep) -> ScheduleRead:
    return schedules.get_schedule(session, principal=principal, ref=twin)


@router.put("/{twin}/assimilation-schedule", name="set_assimilation_schedule",
            summary="Run the twin's cycles on arrival of observations, on a schedule, or only on request")
@acts("assimilation.run", "twin.operate")
def set_assimilation_schedule(twin: TwinRef, body: ScheduleWrite, session: SessionDep,
                              principal: PrincipalDep) -> ScheduleRead:
    """Overrides the app's ``assimilation.run`` for this twin; the cycles run as the caller."""
    return schedules.set_schedule(session, principal=principal, ref=twin, body=body)
