"""openEO error responses: ``{"id", "code", "message", "links"}`` with the openEO code for each engine error."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from twinengine.errors import TwinEngineError, join_loc

__all__ = ["OPENEO_CODES", "OpenEORoute", "openeo_error"]

log = logging.getLogger("twinengine.openeo")

# Engine codes whose openEO name differs; the others (ProcessUnsupported, TokenInvalid...) are the same.
OPENEO_CODES = {
    "RunNotFound": "JobNotFound",
    "RunNotFinished": "JobNotFinished",
    "RunLocked": "JobLocked",
    "ValidationFailed": "BadRequest",
    "InvalidInput": "BadRequest",
    "ProcessGraphNotFound": "ProcessGraphNotFound",
    "ProcessFailed": "ProcessFailed",
    "PermissionDenied": "PermissionsInsufficient",
    "TokenInvalid": "TokenInvalid",
    "AuthenticationRequired": "AuthenticationRequired",
    "Internal": "Internal",
}


def openeo_error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="openEO"'} if status == 401 else None
    body = {"id": uuid.uuid4().hex, "code": OPENEO_CODES.get(code, code), "message": message, "links": []}
    return JSONResponse(body, status_code=status, headers=headers)


class OpenEORoute(APIRoute):
    """Routes of the openEO API render every error in the openEO format."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except TwinEngineError as exc:
                return openeo_error(exc.status, exc.code, exc.message)
            except StarletteHTTPException as exc:  # a body that cannot be read: 400, in openEO's format
                return openeo_error(exc.status_code, "BadRequest" if exc.status_code == 400 else "HTTPError",
                                    str(exc.detail))
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                loc = join_loc([p for p in first.get("loc", ()) if p != "body"]) or "body"
                return openeo_error(400, "BadRequest", f"{loc}: {first.get('msg', 'invalid request')}")
            except Exception:
                log.exception("openEO request failed: %s %s", request.method, request.url.path)
                return openeo_error(500, "Internal", "internal error; the server log has the details")

        return route
