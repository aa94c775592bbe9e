"""Routes of the STAC API at ``/stac/`` (thin: parse, call ``stac.service``, answer JSON with STAC media types).
Parameters are parsed by the service so that bad ones get the 400 the STAC API specification asks for."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

from twinengine.api.cookies import request_token
from twinengine.api.deps import PRINCIPAL_SCOPE_KEY, PrincipalDep, ReadSessionDep, RuntimeDep, SessionDep, _bearer
from twinengine.api.route_actions import acts, public, signed_in
from twinengine.api.routing import api_router
from twinengine.auth.issuer import verify_bearer
from twinengine.auth.principal import Principal
from twinengine.collections.base import CollectionInfo
from twinengine.lake.collections import collection_id as lake_collection_id
from twinengine.lake.models import Did
from twinengine.lake.stac import service
from twinengine.lake.stac.objects import GEOJSON, Links
from twinengine.lake.stac.search import from_get, from_post
from twinengine.runtime import Runtime
from twinengine.types import JSONDict

__all__ = ["router"]

router = api_router("/stac", tag="stac", versioned=False)

_OPEN_BODY: Any = Body(description="STAC item search parameters (JSON object)")
QUERYABLES = "application/schema+json"


class GeoJSONResponse(JSONResponse):
    media_type = GEOJSON


class QueryablesResponse(JSONResponse):
    media_type = QUERYABLES


class OpenAPIResponse(JSONResponse):
    media_type = service.OPENAPI_MEDIA_TYPE


def _links(request: Request) -> Links:
    return Links(str(request.base_url))


def _json(body: JSONDict, media_type: str = "application/json") -> JSONResponse:
    return JSONResponse(body, media_type=media_type)


def _cube_of(runtime: Runtime) -> Any:
    def cube_of(dataset: Did) -> CollectionInfo | None:
        try:
            return runtime.collections.info(lake_collection_id(dataset.scope, dataset.name))
        except Exception:  # not gridded, or not readable right now: the item simply has no cube fields
            return None

    return cube_of


def _maybe_principal(request: Request, runtime: RuntimeDep, session: SessionDep,
                     credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal | None:
    """The caller when a token came along; the landing page is public (clients resolve it without headers)."""
    token = request_token(request, credentials)
    if token is None:
        return None
    principal = verify_bearer(token, session=session, verifiers=runtime.verifiers)
    request.scope[PRINCIPAL_SCOPE_KEY] = principal
    return principal


@router.get("/", name="landing", summary="STAC API landing page (public; lists collections to callers with a "
                                         "token)", response_class=JSONResponse)
@public
def landing(request: Request, session: SessionDep,
            principal: Annotated[Principal | None, Depends(_maybe_principal)]) -> JSONResponse:
    return _json(service.landing(session, principal=principal, links=_links(request)))


@router.get("/conformance", name="conformance", summary="Conformance classes (public)",
            response_class=JSONResponse)
@public
def conformance() -> JSONResponse:
    return _json(service.conformance())


@router.get("/api", name="service_desc", summary="The OpenAPI document, as STAC's service-desc link wants it",
            response_class=OpenAPIResponse)
@public
def service_desc(request: Request) -> JSONResponse:
    return OpenAPIResponse(request.app.openapi())


@router.get("/queryables", name="queryables", summary="Queryables for filter", response_class=QueryablesResponse)
@signed_in
def queryables(request: Request, principal: PrincipalDep) -> JSONResponse:
    return _json(service.queryables(links=_links(request)), QUERYABLES)


@router.get("/collections", name="collections", summary="Lake containers as STAC collections",
            response_class=JSONResponse)
@acts("lake.read")
def collections(request: Request, session: SessionDep, principal: PrincipalDep) -> JSONResponse:
    return _json(service.collections(session, principal=principal, links=_links(request)))


@router.get("/collections/{collection_id}", name="collection", summary="One collection",
            response_class=JSONResponse)
@acts("lake.read")
def collection(collection_id: str, request: Request, session: SessionDep, principal: PrincipalDep) -> JSONResponse:
    return _json(service.collection(session, principal=principal, links=_links(request), cid=collection_id))


@router.get("/collections/{collection_id}/queryables", name="collection_queryables",
            summary="Queryables of a collection", response_class=QueryablesResponse)
@acts("lake.read")
def collection_queryables(collection_id: str, request: Request, session: SessionDep,
                          principal: PrincipalDep) -> JSONResponse:
    service.collection(session, principal=principal, links=_links(request), cid=collection_id)
    return _json(service.queryables(links=_links(request), cid=collection_id), QUERYABLES)


@router.get("/collections/{collection_id}/items", name="items", summary="Items of a collection (paged)",
            response_class=GeoJSONResponse)
@acts("lake.read")
def items(collection_id: str, request: Request, session: SessionDep, principal: PrincipalDep,
          runtime: RuntimeDep) -> JSONResponse:
    query = from_get(dict(request.query_params))
    return _json(service.items(session, principal=principal, links=_links(request), cid=collection_id, query=query,
                               cube_of=_cube_of(runtime)), GEOJSON)


@router.get("/collections/{collection_id}/items/{item_id}", name="item", summary="One item",
            response_class=GeoJSONResponse)
@acts("lake.read")
def item(collection_id: str, item_id: str, request: Request, session: SessionDep, principal: PrincipalDep,
         runtime: RuntimeDep) -> JSONResponse:
    return _json(service.item(session, principal=principal, links=_links(request), cid=collection_id, iid=item_id,
                              cube_of=_cube_of(runtime)), GEOJSON)


@router.get("/search", name="search_get", summary="Item search (GET)", response_class=GeoJSONResponse)
@acts("lake.read")
def search_get(request: Request, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep) -> JSONResponse:
    query = from_get(dict(request.query_params))
    return _json(service.search(session, principal=principal, links=_links(request), query=query, method="GET",
                                cube_of=_cube_of(runtime)), GEOJSON)


@router.post("/search", name="search_post", summary="Item search (POST)", response_class=GeoJSONResponse)
@acts("lake.read")
def search_post(request: Request, session: ReadSessionDep, principal: PrincipalDep, runtime: RuntimeDep,
                body: Annotated[Any, _OPEN_BODY] = None) -> JSONResponse:
    query = from_post(body if body is not None else {})
    return _json(service.search(session, principal=principal, links=_links(request), query=query, method="POST",
                                cube_of=_cube_of(runtime)), GEOJSON)
