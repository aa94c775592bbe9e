"""OGC API - Processes errors: RFC 7807 exception documents (``type``, ``title``, ``status``, ``detail``) with the
exception types the standard names, as ``application/json``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from twinengine.errors import InvalidInput, TwinEngineError, join_loc

__all__ = ["EXCEPTIONS", "OgcRoute", "ogc_error"]

log = logging.getLogger("twinengine.processes")

_PART1 = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
_PART2 = "http://www.opengis.net/def/exceptions/ogcapi-processes-2/1.0/"
# Engine codes with an exception type of the standard; other errors keep their own code as their type.
EXCEPTIONS = {
    "ProcessNotFound": _PART1 + "no-such-process",
    "RunNotFound": _PART1 + "no-such-job",
    "RunNotFinished": _PART1 + "result-not-ready",
    "DuplicateProcess": _PART2 + "duplicated-process",
    "PermissionDenied": _PART2 + "immutable-process",
}
_STATUS = {"RunNotFinished": 404}  # results asked for before they exist: 404 (Requirement 46)


def ogc_error(status: int, code: str, detail: str, *, title: str | None = None) -> JSONResponse:
    body = {"type": EXCEPTIONS.get(code, code), "title": title or code, "status": status, "detail": detail}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _engine_error(exc: TwinEngineError) -> JSONResponse:
    status = _STATUS.get(exc.code, 400 if isinstance(exc, InvalidInput) else exc.status)
    return ogc_error(status, exc.code, exc.message)


class OgcRoute(APIRoute):
    """Routes of OGC API - Processes render every error as an OGC exception document; bad input is a 400
    (the standard's code for it) whatever the engine's own status for it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except TwinEngineError as exc:
                return _engine_error(exc)
            except StarletteHTTPException as exc:
                return ogc_error(exc.status_code, "InvalidInput" if exc.status_code == 400 else "HTTPError",
                                 str(exc.detail))
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                loc = join_loc([p for p in first.get("loc", ()) if p != "body"]) or "body"
                return ogc_error(400, "InvalidInput", f"{loc}: {first.get('msg', 'invalid request')}")
            except Exception:
                log.exception("OGC API request failed: %s %s", request.method, request.url.path)
                return ogc_error(500, "Internal", "internal error; the server log has the details")

        return route
