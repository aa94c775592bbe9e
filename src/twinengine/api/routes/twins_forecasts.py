"""HTTP routes of issued forecasts and their verification against what the twin reported."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Path, Query, status

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router
from twinengine.quality.spec import Duration
from twinengine.timeutil import Instant
from twinengine.twins import forecasts, score_history
from twinengine.twins.forecast_schemas import ForecastRead, ForecastWrite, ScoreHistoryRead, VerificationRead

__all__ = ["router"]

router = api_router("/twins", tag="verification")

TwinRef = Annotated[str, Path(max_length=64, description="The twin's id (tw-...) or name.")]


@router.post("/{twin}/forecasts", name="add_forecast", status_code=status.HTTP_201_CREATED,
             summary="Record a forecast of a property (values with valid times after its issue time)")
@acts("twin.operate")
def add_forecast(twin: TwinRef, body: ForecastWrite, session: SessionDep, principal: PrincipalDep) -> ForecastRead:
    return forecasts.add_forecast(session, principal=principal, ref=twin, body=body)


@router.get("/{twin}/forecasts", name="list_forecasts", summary="The newest forecasts the twin issued")
@acts("twin.read")
def list_forecasts(twin: TwinRef, session: SessionDep, principal: PrincipalDep,
                   property: Annotated[str | None, Query(max_length=64)] = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 20,
                   values: bool = False) -> list[ForecastRead]:
    return forecasts.list_forecasts(session, principal=principal, ref=twin, prop=property, limit=limit,
                                    values=values)


@router.get("/{twin}/verification", name="verification",
            summary="Skill scores of the twin's forecasts per lead time, workflow and model version")
@acts("twin.read")
def verification(
    twin: TwinRef,
    session: SessionDep,
    principal: PrincipalDep,
    property: Annotated[str, Query(max_length=64, description="The verified state property.")],
    lead: Annotated[Duration | None, Query(description="Only this lead time: 24h, PT24H or seconds.")] = None,
    since: Annotated[Instant | None, Query(description="Forecasts valid from this time.")] = None,
    until: Annotated[Instant | None, Query(description="... until before this time.")] = None,
    tolerance: Annotated[Duration, Query(description="Nearest observation within this (default 30min).")
                         ] = timedelta(minutes=30),
    threshold: Annotated[float | None, Query(description="Event threshold: Brier score of exceeding it.")] = None,
    workflow: Annotated[str | None, Query(max_length=64)] = None,
    model_version: Annotated[str | None, Query(max_length=32)] = None,
    pairs: Annotated[bool, Query(description="Include the matched (forecast, observed) pairs.")] = False,
) -> VerificationRead:
    return forecasts.verification(session, principal=principal, ref=twin, prop=property, lead=lead, since=since,
                                  until=until, tolerance=tolerance, threshold=threshold, workflow=workflow,
                                  model_version=model_version, pairs=pairs)


@router.get("/{twin}/verification/history", name="score_history",
            summary="Kept scores of the twin's forecasts per period of valid time, forecasting system and lead")
@acts("twin.read")
def history(
    twin: TwinRef,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    property: Annotated[str, Query(max_length=64, description="The verified state property.")],
    period: Annotated[Duration, Query(description="Length of a period of valid time (default 1d; 1h to 366d).")
                      ] = score_history.DEFAULT_PERIOD,
    lead: Annotated[Duration | None, Query(description="Only this lead time: 24h, PT24H or seconds.")] = None,
    since: Annotated[Instant | None, Query(description="Periods from the one holding this time.")] = None,
    until: Annotated[Instant | None, Query(description="... that start before this time.")] = None,
    workflow: Annotated[str | None, Query(max_length=64)] = None,
    model_version: Annotated[str | None, Query(max_length=32)] = None,
) -> ScoreHistoryRead:
    # the history is brought up to date before it is read: a write, so not the request's read-only session
    with runtime.db.session() as session:
        return score_history.history(session, principal=principal, ref=twin, prop=property, period=period,
                                     lead=lead, since=since, until=until, workflow=workflow,
                                     model_version=model_version)
