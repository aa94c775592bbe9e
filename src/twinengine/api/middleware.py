"""ASGI middlewares: request body limits, the audit trail of writes, and HTTP metrics.

They are plain ASGI (not BaseHTTPMiddleware) so streaming bodies pass through untouched.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twinengine.api.audit_trail import AUDITED_KEY, PRINCIPAL_SCOPE_KEY, WRITE_METHODS, record_request
from twinengine.api.cookies import SESSION_COOKIE
from twinengine.api.deps import principal_of
from twinengine.api.edge_limits import PUSH_FILE, BodyLimits
from twinengine.api.errors import render
from twinengine.errors import AuthenticationRequired, TwinEngineError
from twinengine.runtime import Runtime

__all__ = ["AuditMiddleware", "BodyLimitMiddleware", "MetricsMiddleware"]

log = logging.getLogger("twinengine.audit")

_CLOSE = (b"connection", b"close")


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"code": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            _CLOSE]})
    await send({"type": "http.response.body", "body": body})


class _BodyRefused(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse bodies over their route's limit with 413, by Content-Length up front or while streaming; read
    past the default limit only for a caller whose token verified (401 otherwise). An answer given before the
    body was read to its end closes the connection (``Connection: close``), so the server never reads the
    rest. ``twin serve`` refuses the same sizes at its edge (``api/edge.py``) before they reach the app."""

    def __init__(self, app: ASGIApp, *, limits: BodyLimits, runtime: Runtime | None = None) -> None:
        self.app = app
        self.limits = limits
        self.runtime = runtime

    async def _caller_refused(self, scope: Scope) -> Response | None:
        """None when the caller's token verifies (or the route verified it already), else the answer. A file
        another engine pushes carries no engine token: its bearer is the one this engine gave for the transfer."""
        if self.runtime is None or scope.get(PRINCIPAL_SCOPE_KEY) is not None:
            return None
        request = Request(scope)
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        token = credentials.strip() if scheme.lower() == "bearer" else ""
        pushed = PUSH_FILE.fullmatch(scope["path"]) if scope["method"] == "PUT" else None
        if pushed is not None:
            if token and hmac.compare_digest(token, self.runtime.dataspace.push_token(pushed["pid"])):
                return None
            response = render(AuthenticationRequired("the push address needs its bearer to take a file this large"))
            response.headers["connection"] = "close"
            return response
        try:
            await principal_of(self.runtime, token or request.cookies.get(SESSION_COOKIE))
        except TwinEngineError as error:
            response = render(error)
            response.headers["connection"] = "close"
            return response
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        default = self.limits.default
        limit = self.limits.allowance(scope["method"], scope["path"])
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        size = int(declared) if declared is not None and declared.isdigit() else None
        if size is not None and size > limit:
            await _send_error(send, 413, "PayloadTooLarge", f"request body is {size} bytes; the limit here is {limit}")
            return
        if size is not None and size > default:
            refusal = await self._caller_refused(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        received = 0
        body_done = not size and b"transfer-encoding" not in headers
        started = verified = False
        refused: Response | None = None

        async def limited_receive() -> Message:
            nonlocal received, body_done, verified, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = body_done or not message.get("more_body", False)
                if received > limit:
                    refused = _error(413, "PayloadTooLarge", f"request body exceeds the limit of {limit} bytes")
                elif received > default and not verified and size is None:  # streamed past the default
                    refused = await self._caller_refused(scope)
                    verified = refused is None
                if refused is not None:
                    raise _BodyRefused
            return message

        async def tracking_send(message: Message) -> None:
            # A body read by the framework (FastAPI parsing JSON) turns _BodyRefused into its own 400 "error
            # parsing the body"; once the body was refused, whatever the app answers is replaced by the refusal.
            nonlocal started
            if message["type"] == "http.response.start":
                if started:
                    return
                started = True
                if refused is not None:
                    await refused(scope, receive, send)
                    return
                if not body_done:  # answered before the body ended: the rest is not read
                    message = {**message, "headers": [*message.get("headers", []), _CLOSE]}
            elif refused is not None:
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyRefused:
            if not started and refused is not None:
                await refused(scope, receive, send)


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"code": code, "message": message}, status_code=status, headers={"connection": "close"})


class AuditMiddleware:
    """Record every write attempt (who, what, when, outcome) before the client sees the answer."""

    def __init__(self, app: ASGIApp, *, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        recorded = False

        async def auditing_send(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                if scope.get(AUDITED_KEY) == int(message["status"]):
                    await send(message)  # recorded in the write's own transaction (``audit_trail``)
                    return
                # Blocking store I/O: off the event loop, or a queued SQLite writer would stall every request.
                await anyio.to_thread.run_sync(self._record, scope, int(message["status"]))
            await send(message)

        await self.app(scope, receive, auditing_send)

    def _record(self, scope: Scope, status: int) -> None:
        try:
            with self.runtime.db.session() as session:
                record_request(session, scope, status)
        except Exception:  # the answer was decided already; losing an audit row must be loud, not fatal
            log.exception("could not write the audit record for %s %s", scope["method"], scope["path"])


class MetricsMiddleware:
    """Count requests and time them per route template (not per URL, to keep label sets small)."""

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.app = app
        self.clock = clock
        self.requests = Counter("twin_http_requests", "HTTP requests served", ["method", "route", "status"],
                                registry=registry)
        self.latency = Histogram("twin_http_request_duration_seconds", "Time to answer HTTP requests",
                                 ["method", "route"], registry=registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = self.clock()
        status: list[int] = [500]

        async def timing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, timing_send)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.requests.labels(scope["method"], template, str(status[0])).inc()
            self.latency.labels(scope["method"], template).observe(self.clock() - start)
