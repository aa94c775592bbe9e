"""ASGI middlewares: request body limits, the audit trail of writes, and HTTP metrics.

They are plain ASGI (not BaseHTTPMiddleware) so streaming bodies pass through untouched.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio.to_thread
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twinengine.api.audit_trail import AUDITED_KEY, WRITE_METHODS, record_request
from twinengine.runtime import Runtime

__all__ = ["AuditMiddleware", "BodyLimitMiddleware", "MetricsMiddleware"]

log = logging.getLogger("twinengine.audit")



async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"code": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse bodies over the limit with 413, by Content-Length up front or while streaming."""

    def __init__(self, app: ASGIApp, *, default: int, overrides: Mapping[tuple[str, str], int],
                 patterns: Sequence[tuple[str, str, int]] = ()) -> None:
        self.app = app
        self.default = default
        self.overrides = dict(overrides)
        self.patterns = [(method, re.compile(path), limit) for method, path, limit in patterns]

    def _limit(self, method: str, path: str) -> int:
        limit = self.overrides.get((method, path.rstrip("/")))
        if limit is not None:
            return limit
        return next((n for m, p, n in self.patterns if m == method and p.match(path)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["method"], scope["path"])
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_error(send, 413, "PayloadTooLarge",
                              f"request body is {int(declared)} bytes; the limit here is {limit}")
            return
        received = 0
        started = over = False
        too_large = f"request body exceeds the limit of {limit} bytes"

        async def limited_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            # A body read by the framework (FastAPI parsing JSON) turns _BodyTooLarge into its own 400 "error
            # parsing the body"; once the limit was passed, whatever the app answers is replaced by the 413.
            nonlocal started
            if message["type"] == "http.response.start":
                if started:
                    return
                started = True
                if over:
                    await _send_error(send, 413, "PayloadTooLarge", too_large)
                    return
            elif over:
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _send_error(send, 413, "PayloadTooLarge", too_large)


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
