"""HTTP routes of fleets: filtered keyset listing, aggregation of a state property, and a twin's tags and
location (PATCH)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

from twinengine.api.deps import PrincipalDep, SessionDep
from twinengine.api.route_actions import acts
from twinengine.api.routes.twins import TwinRef, twin_read
from twinengine.api.routing import api_router
from twinengine.timeutil import Instant
from twinengine.twins import fleet
from twinengine.twins.fleet_schemas import FleetAggregate, FleetGroup, FleetPage, TwinPlacement
from twinengine.twins.schemas import StateKind, TwinRead

__all__ = ["routers"]

router = api_router("/fleet", tag="fleet")
twins_router = api_router("/twins", tag="twins")
routers = (router, twins_router)

AppQ = Annotated[str | None, Query(max_length=130, description="name or name@version")]
TagQ = Annotated[list[str], Query(max_length=32, description="Only twins with this tag; repeat: all of them.")]
BBoxQ = Annotated[str | None, Query(max_length=200, description="minx,miny,maxx,maxy: locations intersecting it.")]
StateQ = Annotated[list[str], Query(max_length=16, description="A condition on a state value, e.g. level>2.5, "
                                    "desired.alert_threshold<=3, alert=true, level>@desired.alert_threshold.")]
ParamQ = Annotated[list[str], Query(max_length=16, description="A condition on a parameter, e.g. station=RR-01.")]
StaleQ = Annotated[list[str], Query(max_length=16, description="Only twins whose reported value of this property "
                                    "is stale now (older than its app's gap check allows); repeat: all of them.")]


def _filter(app: str | None, tag: list[str], bbox: str | None, state: list[str],
            parameter: list[str], stale: list[str] | None = None) -> fleet.FleetFilter:
    return fleet.parse_filter(app=app, tags=tag, bbox=bbox, state=state, parameter=parameter, stale=stale or ())


@router.get("/twins", name="list", summary="Twins matching filters, by name, one keyset page at a time")
@acts("twin.list")
def list_fleet(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    app: AppQ = None,
    tag: TagQ = [],  # noqa: B006 (FastAPI copies defaults)
    bbox: BBoxQ = None,
    state: StateQ = [],  # noqa: B006
    parameter: ParamQ = [],  # noqa: B006
    stale: StaleQ = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="From a page's next link.")] = None,
) -> FleetPage:
    rows, after = fleet.list_fleet(session, principal=principal,
                                   filt=_filter(app, tag, bbox, state, parameter, stale), limit=limit, cursor=cursor)
    link = str(request.url.include_query_params(cursor=after)) if after else None
    return FleetPage(items=[twin_read(principal, t) for t in rows], next=link, cursor=after)


@router.get("/aggregate", name="aggregate",
            summary="Count, mean, min, max and quantiles of a state property over a fleet, per group")
@acts("twin.list")
def aggregate(
    session: SessionDep,
    principal: PrincipalDep,
    prop: Annotated[str, Query(alias="property", max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")],
    kind: StateKind = StateKind.REPORTED,
    by: Annotated[str | None, Query(max_length=80, description="app, tag or parameter:NAME")] = None,
    quantile: Annotated[list[float], Query(max_length=32, description="e.g. 0.5; repeat for more")] = [],  # noqa: B006
    at: Annotated[Instant | None, Query(description="As of this time (ISO 8601; values' timestamps)")] = None,
    app: AppQ = None,
    tag: TagQ = [],  # noqa: B006
    bbox: BBoxQ = None,
    state: StateQ = [],  # noqa: B006
    parameter: ParamQ = [],  # noqa: B006
) -> FleetAggregate:
    groups = fleet.aggregate(session, principal=principal, filt=_filter(app, tag, bbox, state, parameter),
                             prop=prop, kind=kind.value, by=by, quantiles=quantile, at=at)
    return FleetAggregate(property=prop, kind=kind.value, by=by, at=at,
                          groups=[FleetGroup(key=g.key, count=g.count, mean=g.mean, min=g.min, max=g.max,
                                             quantiles=g.quantiles) for g in groups])


@twins_router.patch("/{twin}", name="update", summary="Set a twin's tags and/or location (owner or admin)")
@acts("twin.manage")
def update(twin: TwinRef, body: TwinPlacement, session: SessionDep, principal: PrincipalDep) -> TwinRead:
    given = body.model_fields_set
    row = fleet.set_placement(session, principal=principal, ref=twin, tags=body.tags,
                              location=body.location, clear_location="location" in given and body.location is None)
    return twin_read(principal, row)
