"""Rendering errors: every failure leaves as ``{"code", "message", "details"}`` with a 4xx, except bugs."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException

from twinengine.errors import (
    AuthenticationRequired,
    InvalidInput,
    Problem,
    StoreUnavailable,
    StreamBackpressure,
    TwinEngineError,
    ValidationFailed,
    join_loc,
)
from twinengine.store.conflicts import STORE_REFUSALS, store_refusal
from twinengine.store.outage import store_unreachable

__all__ = ["install_error_handlers", "render"]

log = logging.getLogger("twinengine.api")

_HTTP_CODES = {404: "NotFound", 405: "MethodNotAllowed", 406: "NotAcceptable", 413: "PayloadTooLarge",
               415: "UnsupportedMediaType", 429: "TooManyRequests"}


def render(error: TwinEngineError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, AuthenticationRequired) else None
    if isinstance(error, StreamBackpressure | StoreUnavailable):
        headers = {"Retry-After": str(max(1, round(error.retry_after)))}
    return JSONResponse(error.to_dict(), status_code=error.status, headers=headers)


def _loc(parts: tuple[Any, ...]) -> str:
    if parts and parts[0] == "body":
        parts = parts[1:]
    return join_loc(parts) or "body"


def _request_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems: list[Problem] = []
    for err in exc.errors():
        kind = err.get("type", "")
        if kind == "json_invalid":
            where = err.get("ctx", {}).get("error", "")
            return render(InvalidInput(f"body: not valid JSON ({where})" if where else "body: not valid JSON"))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if kind == "missing":
            msg = "required"
        elif kind == "extra_forbidden":
            msg = "unknown field"
        problems.append(Problem(_loc(tuple(err.get("loc", ()))), msg))
    return render(ValidationFailed(problems))


def _engine_error(_request: Request, exc: TwinEngineError) -> JSONResponse:
    return render(exc)


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at this path: the router refuses with the first route's methods only,
    while ``Allow`` must list them all (RFC 9110)."""
    path = request.scope["path"]
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and route.methods and regex.match(path):
            methods |= route.methods
    return ", ".join(sorted(methods))


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "HTTPError")
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such endpoint; see /docs"
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return JSONResponse({"code": code, "message": detail}, status_code=exc.status_code, headers=headers or None)


def _stored_conflict(request: Request, exc: Exception) -> JSONResponse:
    """A collision in a write that does not run through ``commits_on_its_thread`` (a streamed upload), or the
    store out of reach (any request: 503 and Retry-After, never a 500)."""
    if store_unreachable(exc):
        log.warning("the store does not answer %s %s: %s", request.method, request.url.path, exc)
        return render(StoreUnavailable("the store does not answer (it may be restarting); repeat the request "
                                       "shortly"))
    conflict = store_refusal(exc)
    return render(conflict) if conflict is not None else _bug(request, exc)


def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"code": "Internal", "message": "internal error; the server log has the details"},
                        status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _request_validation)  # type: ignore[arg-type]
    app.add_exception_handler(TwinEngineError, _engine_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    for refusal in STORE_REFUSALS:
        app.add_exception_handler(refusal, _stored_conflict)
    app.add_exception_handler(Exception, _bug)
