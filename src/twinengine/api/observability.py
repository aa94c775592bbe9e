"""Every request gets an id (``X-Request-Id``: the proxy's when it sent a sane one), named in the answer's header
and in every log line the request causes; a server span when tracing is on (``twinengine.telemetry``); and, with
JSON logs, one access line with its route, status and time. Plain ASGI, outermost, so it sees everything."""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twinengine import telemetry
from twinengine._version import __version__

__all__ = ["BuildInfoCollector", "RequestTelemetryMiddleware"]

access = logging.getLogger("twinengine.access")
_HEADER = b"x-request-id"


class RequestTelemetryMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(_HEADER)
        request_id = telemetry.request_id_from(raw.decode("latin-1") if raw else None)
        token = telemetry.REQUEST_ID.set(request_id)
        method = scope.get("method", "WS")
        status = [500]
        started = time.perf_counter()

        async def identified_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []), (_HEADER, request_id.encode())]}
            await send(message)

        carrier = {"traceparent": headers[b"traceparent"].decode("latin-1")} if b"traceparent" in headers else {}
        try:
            with telemetry.span(f"{method} {scope['path']}", {"http.request.method": method,
                                                               "url.path": scope["path"],
                                                               "twin.request_id": request_id},
                                server=True, headers=carrier) as current:
                try:
                    await self.app(scope, receive, identified_send)
                finally:
                    route = _route(scope)
                    if current is not None:
                        current.update_name(f"{method} {route}")
                        current.set_attribute("http.route", route)
                        current.set_attribute("http.response.status_code", status[0])
                        if status[0] >= 500:
                            from opentelemetry.trace import Status, StatusCode

                            current.set_status(Status(StatusCode.ERROR, f"HTTP {status[0]}"))
                    if access.isEnabledFor(logging.INFO):
                        access.info("%s %s %d", method, scope["path"], status[0],
                                    extra={"method": method, "route": route, "status": status[0],
                                           "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                                           "client": _client(scope)})
        finally:
            telemetry.REQUEST_ID.reset(token)


def _route(scope: Scope) -> str:
    route: Any = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else None


class BuildInfoCollector(Collector):
    """``twin_build_info``: which release each engine runs (1, labelled), so a dashboard sees a rolling upgrade."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info = GaugeMetricFamily("twin_build_info", "The engine's release (always 1)",
                                 labels=["version", "python"])
        info.add_metric([__version__, platform.python_version()], 1.0)
        yield info
