"""HTTP routes of OGC API - EDR at ``/edr``: parse, authorise, call the service, encode the answer.

Errors on these routes use the OGC API exception body (``code``/``description`` plus RFC 7807 members).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from twinengine.access import metadata
from twinengine.access.covjson import MEDIA_TYPE, dumps, encode_parts
from twinengine.access.drawing import draw_field
from twinengine.access.errors import exception_body
from twinengine.access.extract import Extraction
from twinengine.access.features import FeatureRequest, to_query
from twinengine.access.formats import GEOJSON, NETCDF, to_geojson, to_netcdf
from twinengine.access.listing import collection_document, list_collections
from twinengine.access.query import parse_bbox, parse_datetime, parse_distance, parse_names, parse_wkt, parse_z
from twinengine.access.render import PNG, parse_scale
from twinengine.access.service import (
    DataAccess,
    check_crs,
    instance_ids,
    location_geometry,
    locations_of,
    readable_collection,
    run_query,
)
from twinengine.access.service import (
    Query as EDRQuery,
)
from twinengine.api.deps import PrincipalDep, RuntimeDep
from twinengine.api.responses import PiecesResponse
from twinengine.api.route_actions import acts, signed_in
from twinengine.api.routing import api_router
from twinengine.errors import (
    AuthenticationRequired,
    InvalidParameterValue,
    NotFound,
    TwinEngineError,
    join_loc,
)

__all__ = [
    "Common",
    "CommonDep",
    "Coords",
    "EDRRoute",
    "QueryType",
    "answer",
    "common_parameters",
    "query_of",
    "router",
]

log = logging.getLogger(__name__)


class EDRRoute(APIRoute):
    """Renders every failure of an EDR route (validation and auth included) as an OGC API exception."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def edr_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                loc = join_loc(p for p in first.get("loc", ()) if p not in ("query", "path", "body")) or "request"
                error: TwinEngineError = InvalidParameterValue(loc, str(first.get("msg", "invalid")))
            except TwinEngineError as exc:
                error = exc
            headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, AuthenticationRequired) else None
            return JSONResponse(exception_body(error, instance=request.url.path), status_code=error.status,
                                headers=headers)

        return edr_handler


router = api_router("/edr", tag="edr", versioned=False)
router.route_class = EDRRoute

CollectionId = Annotated[str, Path(max_length=128, description="A collection id, as listed at /edr/collections.")]
Format = Annotated[str | None, Query(alias="f", max_length=32, description="CoverageJSON (default), GeoJSON, "
                                                                           "NetCDF (PNG for cube queries); json "
                                                                           "means CoverageJSON")]


async def get_access(runtime: RuntimeDep) -> DataAccess:
    return runtime.access


AccessDep = Annotated[DataAccess, Depends(get_access)]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/edr"


MetadataFormat = Annotated[str | None, Query(alias="f", max_length=32, description="Metadata is offered as JSON",
                                             json_schema_extra={"enum": ["json", "application/json"]})]


def _metadata_format(f: str | None) -> None:
    if f is not None and f.lower() not in ("json", "application/json"):
        raise InvalidParameterValue("f", f"{f!r}: metadata is offered as json only")


def _output_format(f: str | None) -> str:
    """covjson, geojson or netcdf, from the ``f`` parameter (a 400 naming it for anything else)."""
    fmt = (f or "coveragejson").lower()
    if fmt in ("coveragejson", "covjson", "json", MEDIA_TYPE):
        return "covjson"
    if fmt in ("geojson", GEOJSON):
        return "geojson"
    if fmt in ("netcdf", "nc", "netcdf4", NETCDF):
        return "netcdf"
    raise InvalidParameterValue("f", f"{f!r} is not an output format; use CoverageJSON, GeoJSON or NetCDF")


def _encode(extraction: Extraction, fmt: str, access: DataAccess, collection_id: str) -> Response:
    """The answer in its format; a CoverageJSON answer is written while its chunks are read."""
    if fmt == "covjson":
        return PiecesResponse(encode_parts(extraction, z_units=access.z_units(collection_id)), media_type=MEDIA_TYPE)
    if fmt == "geojson":
        return Response(dumps(to_geojson(extraction.complete())), media_type=GEOJSON)
    return Response(to_netcdf(extraction.complete()), media_type=NETCDF,
                    headers={"Content-Disposition": 'attachment; filename="edr.nc"'})


class Common:
    """The parameters every data query takes."""

    def __init__(self, query: EDRQuery, f: str | None) -> None:
        self.query = query
        self.f = f


async def common_parameters(
    datetime: Annotated[str | None, Query(max_length=200, description="instant, start/end, ../end, start/..")]
    = None,
    parameter_name: Annotated[str | None, Query(alias="parameter-name", max_length=2000)] = None,
    z: Annotated[str | None, Query(max_length=2000, description="level, a,b,c, lo/hi or Rn/start/step")] = None,
    crs: Annotated[str | None, Query(max_length=200)] = None,
    f: Format = None,
    method: Annotated[str | None, Query(max_length=16, description="position: nearest (default) or linear")]
    = None,
) -> Common:
    """Parsed on the event loop (quick, no I/O): a sync dependency would cost a thread hop per request."""
    check_crs(crs)
    if method is not None and method not in ("nearest", "linear", "bilinear"):
        raise InvalidParameterValue("method", f"{method!r}: use nearest or linear")
    query = EDRQuery(kind="", datetime=parse_datetime(datetime), z=parse_z(z), parameters=parse_names(parameter_name),
                     method="nearest" if method in (None, "nearest") else "linear")
    return Common(query, f)


CommonDep = Annotated[Common, Depends(common_parameters)]
Coords = Annotated[str | None, Query(max_length=200_000, description="WKT geometry (x = longitude)")]


def answer(access: DataAccess, principal: Any, collection_id: str, query: EDRQuery, f: str | None,
           check: Callable[[Extraction], None] | None = None) -> Response:
    """The encoded answer to ``query`` on ``collection_id`` as ``principal`` may read it (``f``: its format);
    ``check`` sees the planned answer before a byte of it is written (it raises to refuse it)."""
    fmt = _output_format(f)  # refused before anything is read
    extraction = run_query(access, principal=principal, collection_id=collection_id, query=query, deferred=True)
    if check is not None:
        check(extraction)
    return _encode(extraction, fmt, access, collection_id)


@router.get("", name="landing", summary="EDR landing page")
@router.get("/", name="landing_slash", include_in_schema=False)
@signed_in
def landing(request: Request, principal: PrincipalDep, f: MetadataFormat = None) -> dict[str, Any]:
    _metadata_format(f)
    return metadata.landing_page(_base(request))


@router.get("/conformance", name="conformance", summary="Conformance classes (EDR 1.0 and 1.1)")
@signed_in
def conformance(principal: PrincipalDep, f: MetadataFormat = None) -> dict[str, Any]:
    _metadata_format(f)
    return {"conformsTo": metadata.CONFORMANCE}


@router.get("/api", name="api_definition", summary="The API definition (OpenAPI 3)")
@signed_in
def api_definition(request: Request, principal: PrincipalDep, f: MetadataFormat = None) -> dict[str, Any]:
    _metadata_format(f)
    document: dict[str, Any] = request.app.openapi()
    return document


@router.get("/collections", name="collections", summary="Collections with their extents and queries")
@acts("collection.read")
def collections(request: Request, access: AccessDep, principal: PrincipalDep,
                f: MetadataFormat = None) -> dict[str, Any]:
    _metadata_format(f)
    base = _base(request)
    return {"links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
            "collections": list_collections(access, principal=principal, base=base)}


@router.get("/collections/{collection_id}", name="collection", summary="One collection")
@acts("collection.read")
def collection(request: Request, collection_id: CollectionId, access: AccessDep, principal: PrincipalDep,
               f: MetadataFormat = None) -> dict[str, Any]:
    _metadata_format(f)
    readable_collection(access, principal=principal, collection_id=collection_id)
    return collection_document(access, collection_id, _base(request))


@router.get("/collections/{collection_id}/position", name="position", summary="Values at points")
@acts("collection.read")
def position(collection_id: CollectionId, access: AccessDep, principal: PrincipalDep, common: CommonDep,
             coords: Coords = None) -> Response:
    geometry = parse_wkt(coords, allowed=("POINT", "MULTIPOINT"))
    return answer(access, principal, collection_id, replace(common.query, kind="position", geometry=geometry),
                   common.f)


@router.get("/collections/{collection_id}/radius", name="radius", summary="Values within a distance of points")
@acts("collection.read")
def radius(collection_id: CollectionId, access: AccessDep, principal: PrincipalDep, common: CommonDep,
           coords: Coords = None, within: Annotated[float | None, Query()] = None,
           within_units: Annotated[str | None, Query(alias="within-units", max_length=16)] = None) -> Response:
    geometry = parse_wkt(coords, allowed=("POINT", "MULTIPOINT"))
    km = parse_distance(within, within_units, field="within", units_field="within-units")
    return answer(access, principal, collection_id,
                   replace(common.query, kind="radius", geometry=geometry, within_km=km), common.f)


@router.get("/collections/{collection_id}/area", name="area", summary="Values inside a polygon")
@acts("collection.read")
def area(collection_id: CollectionId, access: AccessDep, principal: PrincipalDep, common: CommonDep,
         coords: Coords = None) -> Response:
    geometry = parse_wkt(coords, allowed=("POLYGON", "MULTIPOLYGON"))
    return answer(access, principal, collection_id, replace(common.query, kind="area", geometry=geometry),
                   common.f)


@router.get("/collections/{collection_id}/cube", name="cube", summary="Values inside a bounding box",
            responses={200: {"content": {PNG: {}}, "description": "f=png: one parameter at one time step and "
                                                                 "level, drawn on the variable's fixed scale "
                                                                 "(headers X-Bounds, X-Scale, X-Floor, X-Datetime;"
                                                                 " without datetime the most informative step)"}})
@acts("collection.read")
def cube(collection_id: CollectionId, access: AccessDep, principal: PrincipalDep, common: CommonDep,
         bbox: Annotated[str | None, Query(max_length=400)] = None,
         scale: Annotated[str | None, Query(max_length=80, description="f=png: lo,hi of the colour scale")]
         = None) -> Response:
    box = parse_bbox(bbox)
    if len(box) == 6 and common.query.z is not None:
        raise InvalidParameterValue("z", "give levels either in a 6-number bbox or in z, not both")
    query = replace(common.query, kind="cube", bbox=box)
    if (common.f or "").lower() in ("png", PNG):
        drawn = draw_field(access, principal=principal, collection_id=collection_id, query=query,
                           scale=parse_scale(scale))
        return Response(drawn.png, media_type=PNG, headers=drawn.headers())
    return answer(access, principal, collection_id, query, common.f)


@router.get("/collections/{collection_id}/trajectory", name="trajectory", summary="Values along a path")
@acts("collection.read")
def trajectory(collection_id: CollectionId, access: AccessDep, principal: PrincipalDep, common: CommonDep,
               coords: Coords = None) -> Response:
    geometry = parse_wkt(coords, allowed=("LINESTRING",))
    return answer(access, principal, collection_id, replace(common.query, kind="trajectory", geometry=geometry),
                   common.f)


@router.get("/collections/{collection_id}/corridor", name="corridor", summary="Values around a path")
@acts("collection.read")
def corridor(collection_id: CollectionId, access: AccessDep, principal: PrincipalDep, common: CommonDep,
             coords: Coords = None, corridor_width: Annotated[float | None, Query(alias="corridor-width")] = None,
             width_units: Annotated[str | None, Query(alias="width-units", max_length=16)] = None,
             corridor_height: Annotated[float | None, Query(alias="corridor-height")] = None,
             height_units: Annotated[str | None, Query(alias="height-units", max_length=16)] = None) -> Response:
    geometry = parse_wkt(coords, allowed=("LINESTRING",))
    km = parse_distance(corridor_width, width_units, field="corridor-width", units_field="width-units")
    if corridor_height is not None and not corridor_height > 0:
        raise InvalidParameterValue("corridor-height", "must be a positive number (in the levels' units)")
    return answer(access, principal, collection_id,
                   replace(common.query, kind="corridor", geometry=geometry, width_km=km, height=corridor_height),
                   common.f)


@router.get("/collections/{collection_id}/locations", name="locations", summary="Named locations (stations)")
@acts("collection.read")
def locations(collection_id: CollectionId, access: AccessDep, principal: PrincipalDep) -> Response:
    readable_collection(access, principal=principal, collection_id=collection_id)
    features = list(locations_of(access.source.open(collection_id)).values())
    return Response(dumps({"type": "FeatureCollection", "features": features}), media_type=GEOJSON)


@router.get("/collections/{collection_id}/locations/{location_id}", name="location",
            summary="Values at a named location")
@acts("collection.read")
def location(collection_id: CollectionId, location_id: Annotated[str, Path(max_length=128)], access: AccessDep,
             principal: PrincipalDep, common: CommonDep) -> Response:
    point = location_geometry(access, principal=principal, collection_id=collection_id, location_id=location_id)
    return answer(access, principal, collection_id, replace(common.query, kind="position", geometry=point,
                                                             location=location_id), common.f)


@router.get("/collections/{collection_id}/instances", name="instances", summary="Instances (forecast runs)")
@acts("collection.read")
def instances(request: Request, collection_id: CollectionId, access: AccessDep,
              principal: PrincipalDep) -> dict[str, Any]:
    readable_collection(access, principal=principal, collection_id=collection_id)
    ds = access.source.open(collection_id)
    base = _base(request)
    info = access.source.info(collection_id)
    items = []
    for iid in instance_ids(ds):
        doc = metadata.collection_document(collection_id, ds, base, title=f"{info.title} run {iid}",
                                           description=info.description)
        doc["id"] = iid
        items.append(doc)
    if not items:
        raise NotFound(f"collection {collection_id!r} has no instances (forecast runs)")
    return {"links": [{"href": f"{base}/collections/{collection_id}/instances", "rel": "self",
                       "type": "application/json"}], "instances": items}


@router.get("/collections/{collection_id}/instances/{instance_id}/{query_type}", name="instance_query",
            summary="A query on one instance (position, radius, area, cube, trajectory, corridor)")
@acts("collection.read")
def instance_query(request: Request, collection_id: CollectionId, instance_id: Annotated[str, Path(max_length=64)],
                   query_type: Annotated[str, Path(max_length=16)], access: AccessDep, principal: PrincipalDep,
                   common: CommonDep, coords: Coords = None, bbox: Annotated[str | None, Query(max_length=400)] = None,
                   within: float | None = None,
                   within_units: Annotated[str | None, Query(alias="within-units", max_length=16)] = None,
                   corridor_width: Annotated[float | None, Query(alias="corridor-width")] = None,
                   width_units: Annotated[str | None, Query(alias="width-units", max_length=16)] = None) -> Response:
    query = query_of(replace(common.query, instance=instance_id), query_type, coords=coords, bbox=bbox,
                     within=within, within_units=within_units, corridor_width=corridor_width, width_units=width_units)
    return answer(access, principal, collection_id, query, common.f)


_SHAPES = {"position": ("POINT", "MULTIPOINT"), "radius": ("POINT", "MULTIPOINT"),
           "area": ("POLYGON", "MULTIPOLYGON"), "trajectory": ("LINESTRING",), "corridor": ("LINESTRING",)}
QueryType = Literal["position", "radius", "area", "cube", "trajectory", "corridor"]


def query_of(base: EDRQuery, query_type: str, *, coords: str | None = None, bbox: str | None = None,
             within: float | None = None, within_units: str | None = None, corridor_width: float | None = None,
             width_units: str | None = None) -> EDRQuery:
    """A query of type ``query_type`` from the parameters its route takes (a 400 naming the first one wrong):
    the one parser of the routes that take any query type by name (an instance's, a data space transfer's)."""
    query = replace(base, kind=query_type)
    if query_type == "cube":
        return replace(query, bbox=parse_bbox(bbox))
    if query_type not in _SHAPES:
        raise InvalidParameterValue("query_type", f"{query_type!r} is not a query type")
    query = replace(query, geometry=parse_wkt(coords, allowed=_SHAPES[query_type]))
    if query_type == "radius":
        query = replace(query, within_km=parse_distance(within, within_units, field="within",
                                                        units_field="within-units"))
    if query_type == "corridor":
        query = replace(query, width_km=parse_distance(corridor_width, width_units, field="corridor-width",
                                                       units_field="width-units"))
    return query


@router.post("/collections/{collection_id}/features", name="features",
             summary="A Polytope-style feature request (timeseries, verticalprofile, boundingbox, polygon, "
                     "trajectory, circle)")
@acts("collection.read")
def features(collection_id: CollectionId, access: AccessDep, principal: PrincipalDep,
             body: Annotated[FeatureRequest, Body()]) -> Response:
    query, f = to_query(body)
    return answer(access, principal, collection_id, query, f)
