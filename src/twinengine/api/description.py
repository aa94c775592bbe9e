"""The OpenAPI description, completed from what each route depends on, so that it states every answer.

FastAPI documents a route's success and a 422 shaped like its own validation errors. The engine answers more
(and in its own error format): 401/403 wherever a token is verified, 404 wherever something is named, 409 on
writes, 413 on bodies... These follow from a route's dependencies and parameters, so they are added here,
once, for every route, rather than repeated by each router. A route states its own exceptions with
``responses={503: {"description": ...}}``: an error status without content gets the error schema here.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import anyio.from_thread
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.security.base import SecurityBase
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import BaseRoute

from twinengine.api.cookies import CSRF_HEADER, SESSION_COOKIE
from twinengine.api.deps import TOKEN_REQUIRED

__all__ = ["DataspaceError", "api_routes", "auth_of", "complete", "error_statuses", "install_description"]

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REF = "#/components/schemas/"
SESSION_SCHEME = "SessionCookie"  # the portal's cookie: the second credential beside the bearer header
_DESCRIPTIONS = {
    400: "Malformed request: a body that is not valid JSON, or a parameter the route cannot use",
    401: "No token, or a token that is not valid (expired, revoked, unknown issuer)",
    403: "The caller's role or grants do not allow this",
    404: "Something the request names does not exist (or is not visible to the caller)",
    409: "Conflicts with what exists (a name taken, a version published with other content)",
    413: "The request body (or the answer it asks for) is larger than this engine allows",
    422: "Well-formed input that breaks the rules; every problem is listed with its location",
}


class ProblemDetail(BaseModel):
    """One thing wrong with an input: where (a dotted path) and what."""

    model_config = ConfigDict(extra="allow")
    loc: str
    msg: str


class Error(BaseModel):
    """How the engine's REST API answers every failure."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(description="Machine code, e.g. TwinNotFound, ValidationFailed")
    message: str
    details: list[ProblemDetail] | None = None


class OpenEOError(BaseModel):
    """An openEO API error (``id``, ``code``, ``message``, ``links``)."""

    model_config = ConfigDict(extra="allow")
    id: str | None = None
    code: str
    message: str
    links: list[dict[str, Any]] | None = None


class EDRException(BaseModel):
    """An OGC API exception: EDR's ``code`` and ``description`` with RFC 7807 members."""

    model_config = ConfigDict(extra="allow")
    code: str
    description: str | None = None
    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
    details: list[ProblemDetail] | None = None


class DataspaceError(BaseModel):
    """A Dataspace Protocol error object: ``CatalogError``, ``ContractNegotiationError`` or ``TransferError``."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    context: list[Any] | None = Field(None, alias="@context")
    type: str = Field(alias="@type")
    code: str
    reason: list[Any]
    providerPid: str | None = None
    consumerPid: str | None = None


class OgcProcessesException(BaseModel):
    """An OGC API - Processes exception: an RFC 7807 document (``api/routes/ogc_errors.py``)."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None


@functools.cache
def error_schemas() -> dict[type[APIRoute], type[BaseModel]]:
    """The routes that answer errors in their standard's format, and that format (imported when the description
    is first built: an engine that imports its route groups lazily does not import those groups for it)."""
    from twinengine.api.routes.access import EDRRoute
    from twinengine.api.routes.ogc_errors import OgcRoute
    from twinengine.workflows.openeo.errors import OpenEORoute

    return {OpenEORoute: OpenEOError, EDRRoute: EDRException, OgcRoute: OgcProcessesException}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def auth_of(route: RouteContext) -> str:
    """``required`` where the route verifies a token, ``optional`` where it reads one if sent, else ``none``."""
    calls = list(_calls(route.dependant))
    if any(call in TOKEN_REQUIRED for call in calls):
        return "required"
    return "optional" if any(isinstance(call, SecurityBase) for call in calls) else "none"


def error_statuses(route: RouteContext, method: str) -> set[int]:
    """The error statuses that follow from the route's dependencies, parameters and body."""
    dependant = route.dependant
    names = bool(dependant.path_params or dependant.query_params or dependant.header_params)
    body = route.body_field is not None or (method in _WRITES and _declares_body(route))
    statuses: set[int] = set()
    if names or body:
        statuses |= {400, 404, 422}
    if body:
        statuses.add(413)
    auth = auth_of(route)
    if auth != "none":
        statuses |= {401, 403}
        if method in _WRITES:
            statuses.add(409)
    return statuses


def _declares_body(route: RouteContext) -> bool:
    return bool((route.openapi_extra or {}).get("requestBody"))


def _error_model(route: RouteContext) -> type[BaseModel]:
    return next((model for kind, model in error_schemas().items() if isinstance(route.original_route, kind)),
                Error)


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[RouteContext]:
    """Every documented API route as it is served (prefixes and app-wide dependencies included)."""
    for route in iter_route_contexts(routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            yield route


def _error_response(status: int, model: type[BaseModel], description: str | None = None) -> dict[str, Any]:
    return {"description": description or _DESCRIPTIONS.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": _REF + model.__name__}}}}


def _complete_content(content: dict[str, Any]) -> None:
    """Media types documented without a schema: a JSON answer built by hand is an object; others carry bytes
    (or text)."""
    for media_type, entry in content.items():
        if entry.get("schema"):
            continue
        if media_type.split(";")[0].endswith(("/json", "+json")):
            entry["schema"] = {"type": "object"}
        elif media_type.startswith("text/"):
            entry["schema"] = {"type": "string"}
        else:
            entry["schema"] = {"type": "string", "format": "binary"}


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def complete(document: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    """Add the error responses, security requirements and schemas that the routes imply."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    document["components"].setdefault("securitySchemes", {})[SESSION_SCHEME] = {
        "type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
        "description": f"The portal's session (POST /api/v1/session); a write with it also sends {CSRF_HEADER}."}
    models: tuple[type[BaseModel], ...] = (ProblemDetail, Error, OpenEOError, EDRException, DataspaceError)
    for model in models:
        schema = model.model_json_schema(ref_template=_REF + "{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    for route in api_routes(routes):
        path = document["paths"].get(route.path_format, {})
        error_model = _error_model(route)
        auth = auth_of(route)
        for method in (route.methods or set()) - {"HEAD"}:
            operation = path.get(method.lower())
            if operation is None:
                continue
            responses = operation["responses"]
            for status in error_statuses(route, method):
                described = responses.get(str(status), {})
                if status == 422 or "content" not in described:
                    responses[str(status)] = _error_response(status, error_model, described.get("description")
                                                              if status != 422 else None)
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400 and not response.get("content"):
                    responses[status] = _error_response(int(status), error_model, response.get("description"))
                _complete_content(response.get("content", {}))
            _complete_content(operation.get("requestBody", {}).get("content", {}))
            if auth == "none":
                operation.pop("security", None)
            elif auth == "optional":
                security = operation.get("security", [])
                bearer = any("HTTPBearer" in requirement for requirement in security)
                cookie: list[dict[str, list[str]]] = [{SESSION_SCHEME: []}] if bearer else []
                operation["security"] = [{}, *security, *cookie]
            elif any("HTTPBearer" in requirement for requirement in operation.get("security", [])):
                operation["security"] = [*operation["security"], {SESSION_SCHEME: []}]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def install_description(app: FastAPI) -> None:
    """Complete the app's OpenAPI document once, when it is first asked for, from every route.

    An app that imports its route groups lazily (``api.route_loading``) is described only once all of them are
    in: a route that serves the description (``/stac/api``, ``/edr/api``, ``/ogcapi/api``) runs in a worker
    thread and waits here for the rest, so no caller gets, nor caches for everyone after, a description of part
    of the API. ``/openapi.json`` itself is answered on the event loop, after the route gate made it wait."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            loading = getattr(app.state, "route_loading", None)
            if loading is not None and not loading.complete and not _on_event_loop():
                anyio.from_thread.run(loading.load_all)
            complete(build(), app.routes)
            if loading is not None and not loading.complete:  # a group that failed to import: not cached
                document, app.openapi_schema = app.openapi_schema, None
                assert document is not None
                return document
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
