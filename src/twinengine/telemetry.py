"""Where an operator sees time go: each request's id in every log line it causes, logs as JSON lines, and
OpenTelemetry traces of requests and runs sent over OTLP/HTTP to a collector.

All three are off the hot path until chosen: ``log_format = "json"`` and ``otlp_endpoint`` (settings). Without
an endpoint no OpenTelemetry module is imported and a span costs a ``nullcontext``. Traces go to the engine's
own tracer provider (not the process-wide one, which a library in the same process may own) in batches, from
a background thread: a collector that is down loses spans, never a request.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import traceback
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from twinengine._version import __version__

__all__ = ["REQUEST_ID", "JsonFormatter", "configure_logging", "configure_tracing", "current_trace", "flush",
           "request_id_from", "shutdown_tracing", "span", "tracing"]

REQUEST_ID: ContextVar[str | None] = ContextVar("twin_request_id", default=None)
_GOOD_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")  # what a proxy's id may be to be passed on as given
_lock = threading.Lock()
_provider: Any = None  # the SDK's TracerProvider once tracing is configured
_tracer: Any = None
_endpoint: str | None = None


def request_id_from(incoming: str | None) -> str:
    """The id of a request: the one a proxy sent (``X-Request-Id``) when it is a sane token, else a new one."""
    if incoming and _GOOD_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex


# -- logs ---------------------------------------------------------------------------------------------------

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, the request's id and trace, and the
    record's extra fields (``log.info("...", extra={"run_id": ...})``)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        trace = current_trace()
        if trace is not None:
            line["trace_id"], line["span_id"] = trace
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in line and not key.startswith("_"):
                line[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(fmt: str, level: str = "info") -> None:
    """``fmt = "json"``: every handler of the root and uvicorn loggers writes JSON lines (a root handler on
    stderr is added where none is), and the engine's own access line (``twinengine.access``, with the request's
    id, route, status and time) replaces uvicorn's. ``"text"`` leaves logging as uvicorn set it."""
    if fmt != "json":
        return
    formatter = JsonFormatter()
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    root.setLevel(level.upper())
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access", "twinengine"):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("twinengine.access").setLevel(logging.INFO)


# -- traces -------------------------------------------------------------------------------------------------

def configure_tracing(endpoint: str | None, *, service: str = "twinengine", instance: str | None = None) -> bool:
    """Export traces to the OTLP/HTTP collector at ``endpoint`` (its base URL, e.g. http://127.0.0.1:4318;
    ``/v1/traces`` is added). Once per process; a second call with the same endpoint does nothing, with
    another one replaces the first. Returns whether tracing is on."""
    global _provider, _tracer, _endpoint
    with _lock:
        if endpoint == _endpoint:
            return _tracer is not None
        _shutdown()
        _endpoint = endpoint
        if not endpoint:
            return False
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        attributes = {"service.name": service, "service.version": __version__,
                      "service.instance.id": instance or f"{socket.gethostname()}:{os.getpid()}"}
        _provider = TracerProvider(resource=Resource.create(attributes))
        _provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=10)))
        _tracer = _provider.get_tracer("twinengine", __version__)
        return True


def tracing() -> bool:
    return _tracer is not None


def _shutdown() -> None:
    global _provider, _tracer
    if _provider is not None:
        _provider.shutdown()  # flushes what is queued
    _provider = _tracer = None


def shutdown_tracing() -> None:
    global _endpoint
    with _lock:
        _shutdown()
        _endpoint = None


def flush(timeout_s: float = 30.0) -> bool:
    """Send every finished span now (tests; a stopping engine)."""
    provider = _provider
    return True if provider is None else bool(provider.force_flush(int(timeout_s * 1000)))


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None, *, server: bool = False,
         headers: Mapping[str, str] | None = None) -> Iterator[Any]:
    """A span around the block (the current one's child; a ``server`` span continues the trace the caller's
    ``traceparent`` header names). Without tracing: ``None``, and nothing is imported or recorded."""
    tracer = _tracer
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode

    parent = None
    if headers is not None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        parent = TraceContextTextMapPropagator().extract(dict(headers))
    kind = SpanKind.SERVER if server else SpanKind.INTERNAL
    with tracer.start_as_current_span(name, context=parent, kind=kind, attributes=dict(attributes or {}),
                                      record_exception=True, set_status_on_exception=True) as current:
        request_id = REQUEST_ID.get()
        if request_id and not server:
            current.set_attribute("twin.request_id", request_id)
        try:
            yield current
        except BaseException as error:
            current.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise


def current_trace() -> tuple[str, str] | None:
    """The current span's trace and span ids (hex), when tracing is on and a span is current."""
    if _tracer is None:
        return None
    from opentelemetry.trace import get_current_span

    context = get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"
