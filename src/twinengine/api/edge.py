"""The engine's HTTP edge: every request head is read and bounded before uvicorn parses it.

uvicorn's HTTP/1.1 protocol (httptools) has no bound of its own: it gathers a request target by concatenation
(a 60 MiB line cost seconds of copying, growing with the square of its length), takes any number and size of
headers, waits forever for a head that drips in one byte at a time, and reads a body the app refused to its
end. ``EdgeProtocol`` stands in front of it on every connection: it parses the bytes first with a parser of
its own (httptools, with the leniencies uvicorn sets, so both see the same messages) and hands them on only
while they are within ``EdgeLimits``. Past a limit it answers at once (414, 431, 413, 408, with
``Connection: close``) and closes the connection, so nothing more is read.

Why a wrapper and not a subclass: uvicorn's protocol classes are internal (their callbacks, fields and
error paths change between releases), while what uvicorn promises is that ``Config(http=...)`` takes any
``asyncio.Protocol`` class and builds it with ``config``, ``server_state``, ``app_state`` and ``_loop``.
``EdgeProtocol`` is such a class; it builds the protocol ``http="httptools"`` names, with the same arguments,
and relies on nothing of it but the ``asyncio.Protocol`` interface. The inner protocol is given a watched
transport, which tells the edge when a response starts (the edge never writes into one) and when the inner
protocol pauses reading (time the body's rate is not judged on). A WebSocket upgrade hands the connection
over to the WebSocket protocol, which has its own limits (message size, pings).

Limits apply per connection; how many connections one client opens is for a proxy in front to bound.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, cast

import httptools
import uvicorn
from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string

from twinengine.api.edge_limits import EdgeLimits
from twinengine.config import Settings

__all__ = ["EdgeConfig", "EdgeProtocol", "edge_config"]

log = logging.getLogger("twinengine.edge")

_LAST_LOOK = 0.1  # seconds a late head gets for the loop to read what the socket holds already
_SLACK = 1024  # bytes of a head besides its target and its header lines: method, version, line ends
_REASONS = {400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large", 414: "URI Too Long",
            431: "Request Header Fields Too Large"}


class EdgeConfig(uvicorn.Config):
    """A uvicorn ``Config`` carrying the edge's limits to each connection (and, pickled, to each process of
    ``twin serve --processes``)."""

    def __init__(self, app: Any, *, limits: EdgeLimits, **options: Any) -> None:
        super().__init__(app, http=EdgeProtocol, **options)
        self.edge_limits = limits


def edge_config(app: Any, settings: Settings, **options: Any) -> EdgeConfig:
    """The uvicorn configuration every server of the engine runs with: ``app`` behind the edge, idle
    connections kept ``keep_alive_timeout`` (uvicorn's own 5 s reset the clients that reuse one just then)."""
    options.setdefault("timeout_keep_alive", max(1, round(settings.keep_alive_timeout.total_seconds())))
    return EdgeConfig(app, limits=EdgeLimits.from_settings(settings), **options)


class _Refused(Exception):
    """Raised in a parser callback to stop parsing: the request broke a limit."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class _WatchedTransport:
    """The transport as the inner protocol sees it: writes and read pauses are noted by the edge first."""

    def __init__(self, transport: asyncio.Transport, edge: EdgeProtocol) -> None:
        self._transport, self._edge = transport, edge

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._edge.refused:
            return
        self._edge.wrote(interim=bytes(data[:13]) == b"HTTP/1.1 100 ")  # a 100 Continue starts no response
        self._transport.write(data)

    def pause_reading(self) -> None:
        self._edge.reading(False)
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._edge.reading(True)
        self._transport.resume_reading()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class EdgeProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: bounds each request, then hands its bytes to uvicorn's protocol."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        limits = getattr(config, "edge_limits", None)
        if not isinstance(limits, EdgeLimits):
            raise TypeError("EdgeProtocol runs with an EdgeConfig (api/edge.py: edge_config)")
        self.limits = limits
        self.loop = _loop or asyncio.get_event_loop()
        inner_class = import_from_string(HTTP_PROTOCOLS["httptools"])
        self.inner: asyncio.Protocol = inner_class(config=config, server_state=server_state, app_state=app_state,
                                                   _loop=_loop)
        self.websockets = getattr(config, "ws_protocol_class", None) is not None  # once loaded, as the inner's
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)  # as uvicorn sets its own
        self.transport: asyncio.Transport | None = None
        self.refused = self.passing = self.lost = False
        self.written = 0  # writes of the inner protocol on this connection (interim answers not counted)
        self.continued = False  # the inner protocol wrote since the current head ended (a 100 Continue too)
        self.requests = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_since = 0.0  # when the current head's time began (time.monotonic)
        self._rate_timer: asyncio.TimerHandle | None = None
        self._window_bytes = 0  # body bytes and seconds of reading since the rate was last judged
        self._window_read = 0.0
        self._read_since: float | None = None  # reading (not paused by the inner protocol) since then
        self._restarted = self._ended = False  # in the piece being parsed: a message ended, and the next began
        self._new_request()

    # -- per request -------------------------------------------------------------------------------------

    def _new_request(self) -> None:
        self._state = "idle"  # "idle" (waiting for a head), "head" (its first byte came), "body"
        self._head_fed = 0
        self._target: list[bytes] = []
        self._target_bytes = 0
        self._header_count = 0
        self._content_length: int | None = None
        self._chunked = False
        self._expect_continue = False
        self._upgrade_websocket = self._connection_upgrade = False
        self._allowance = self.limits.body.default
        self._body = 0
        self._chunks = 0
        self._framing = 0  # bytes of a body that are not its content: chunk sizes, extensions, trailers
        self._written_at_head = self.written
        self._stop_rate_clock()

    # -- asyncio.Protocol ----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes
        self.inner.connection_made(_WatchedTransport(self.transport, self))  # type: ignore[arg-type]
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost:
            return
        self.lost = True
        self._cancel_head_timer()
        self._stop_rate_clock()
        self.inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self.passing:
            self.inner.data_received(data)
            return
        view, pos = memoryview(data), 0
        while pos < len(view) and not self.refused and not self.passing:
            if self._state == "body":
                piece = view[pos:]
            else:  # a head is fed no further than its limits allow, so no parser gathers more of it
                room = self._target_bytes + self.limits.header_bytes + _SLACK - self._head_fed
                piece = view[pos:pos + max(room, 1)]
            pos += len(piece)
            if self._feed(piece):
                self.inner.data_received(data if len(piece) == len(data) else bytes(piece))

    def _feed(self, piece: memoryview) -> bool:
        """Parse ``piece``; False when it broke a limit (then it was answered, and the connection closed)."""
        before, body_before = self._state, self._body
        self._restarted = self._ended = False
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserCallbackError as error:
            refusal = error.__context__
            if not isinstance(refusal, _Refused):  # a fault of the edge's own: the request is not let through
                log.error("the edge could not read a request", exc_info=refusal)
                refusal = _Refused(400, "InvalidInput", "the request could not be read")
            self._refuse(refusal.status, refusal.code, str(refusal))
            return False
        except httptools.HttpParserUpgrade:
            if self._upgrade_websocket and self._connection_upgrade and self.websockets:
                self.passing = True  # the inner protocol hands the connection to its WebSocket protocol
                self._cancel_head_timer()
                self._stop_rate_clock()
        except httptools.HttpParserError:
            self._refuse(400, "InvalidInput", "the request is not valid HTTP/1.1")
            return False
        if self._state == "head":
            # Bytes of a piece in which one message ended and the next began are not told apart: the next
            # head counts from the following piece (a pipelined head may pass its limit by one piece).
            self._head_fed = 0 if self._restarted else self._head_fed + len(piece)
            if self._head_fed - self._target_bytes > self.limits.header_bytes + _SLACK:
                self._refuse(431, "RequestHeaderFieldsTooLarge",
                             f"the request's headers exceed {self.limits.header_bytes} bytes")
                return False
        elif self._state == "body" and before == "body":
            self._framing += len(piece) - (self._body - body_before)
            if self._framing > self.limits.header_bytes + _SLACK + 32 * self._chunks:
                self._refuse(431, "RequestHeaderFieldsTooLarge", "the request's chunk extensions and trailers "
                                                                 f"exceed {self.limits.header_bytes} bytes")
                return False
        return True

    # -- parser callbacks (httptools) ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._restarted = self._ended
        self._state = "head"
        self.requests += 1
        if self.requests > 1:  # the first head's time runs since the connection was made
            self._cancel_head_timer()
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._target_bytes += len(url)
        if self._target_bytes > self.limits.request_line:
            raise _Refused(414, "URITooLong", f"the request line exceeds {self.limits.request_line} bytes")
        self._target.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.header_count:
            raise _Refused(431, "RequestHeaderFieldsTooLarge",
                           f"the request has more than {self.limits.header_count} header lines")
        name, value = name.lower(), value.strip().lower()
        if name == b"content-length" and value.isdigit() and len(value) < 20:  # llhttp refuses a longer one
            self._content_length = int(value)
        elif name == b"transfer-encoding":
            self._chunked = True  # a body whose end is not told up front (llhttp refuses other codings)
        elif name == b"expect" and value == b"100-continue":
            self._expect_continue = True
        elif name == b"upgrade" and value == b"websocket":
            self._upgrade_websocket = True
        elif name == b"connection" and b"upgrade" in (token.strip() for token in value.split(b",")):
            self._connection_upgrade = True

    def on_headers_complete(self) -> None:
        self._state = "body"
        self._cancel_head_timer()
        self._written_at_head = self.written
        self.continued = False
        method = self.parser.get_method().decode("ascii", "replace")
        try:
            path = httptools.parse_url(b"".join(self._target)).path.decode("ascii", "replace")
        except httptools.HttpParserInvalidURLError:
            path = ""  # the inner protocol refuses it
        self._allowance = self.limits.body.allowance(method, path or "")
        if self._content_length is not None and self._content_length > self._allowance:
            raise _Refused(413, "PayloadTooLarge", f"request body is {self._content_length} bytes; the limit "
                                                   f"here is {self._allowance}")
        if self._content_length or self._chunked:
            self._start_rate_clock()

    def on_body(self, body: bytes) -> None:
        self._body += len(body)
        self._window_bytes += len(body)
        if self._body > self._allowance:
            raise _Refused(413, "PayloadTooLarge", f"request body exceeds the limit of {self._allowance} bytes")

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_message_complete(self) -> None:
        self._ended = True
        self._new_request()

    # -- time ---------------------------------------------------------------------------------------------

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _arm_head_timer(self) -> None:
        self._head_since = time.monotonic()
        self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_late)

    def _head_late(self, last_look: bool = False) -> None:
        """The head's time is up: refuse it (408), or close a new connection that sent nothing. Not before the
        time has passed by the clock (a loop's time is read once an iteration: a long iteration makes a timer
        armed in it fire early), and not before one more look at the socket: a loop that runs due timers before
        it reads (uvloop's) would otherwise close a connection whose request waits unread behind the timer, and
        closing with unread bytes resets the connection (a client's first request on a loaded engine was reset)."""
        self._head_timer = None
        transport = self.transport
        if transport is None or self.refused or self.passing or self.lost:
            return
        early = self.limits.head_timeout - (time.monotonic() - self._head_since)
        if early > 0:
            self._head_timer = self.loop.call_later(early, self._head_late)
            return
        if not transport.is_reading():  # the inner protocol holds this head back (a pipelined request)
            self._arm_head_timer()
            return
        if not last_look and self._state in ("head", "idle"):
            self._head_timer = self.loop.call_later(_LAST_LOOK, self._head_late, True)
            return
        if self._state == "head":
            self._refuse(408, "RequestTimeout",
                         f"the request head did not arrive within {self.limits.head_timeout:g} s")
        elif self._state == "idle" and self.requests == 0:
            self.refused = True
            transport.close()  # a connection that sent nothing: no request to answer

    def _start_rate_clock(self) -> None:
        self._window_bytes, self._window_read = 0, 0.0
        self._read_since = time.monotonic()
        self._rate_timer = self.loop.call_later(self.limits.body_rate_window, self._rate_check)

    def _stop_rate_clock(self) -> None:
        if self._rate_timer is not None:
            self._rate_timer.cancel()
            self._rate_timer = None
        self._read_since = None

    def reading(self, on: bool) -> None:
        """The inner protocol paused or resumed reading: time paused is not the client's."""
        if self._rate_timer is None:
            return
        now = time.monotonic()
        if self._read_since is not None and self._waiting_on_client():
            self._window_read += now - self._read_since
        self._read_since = now if on else None

    def wrote(self, *, interim: bool) -> None:
        """The inner protocol wrote: a response started (unless ``interim``), or the 100 Continue a client
        waits for before it sends the body (its rate is judged from then on)."""
        if not interim:
            self.written += 1
        if not self.continued and self._expect_continue and self._read_since is not None:
            self._read_since = time.monotonic()
        self.continued = True

    def _waiting_on_client(self) -> bool:
        """False while a client that asked for a 100 Continue waits for it (the app sends it on reading)."""
        return not self._expect_continue or self.continued

    def _rate_check(self) -> None:
        self._rate_timer = None
        if self.refused or self.passing or self.lost or self._state != "body":
            return
        now = time.monotonic()
        if self._read_since is not None:
            if self._waiting_on_client():
                self._window_read += now - self._read_since
            self._read_since = now
        if self._window_read >= self.limits.body_rate_window / 2:
            if self._window_bytes < self.limits.body_min_rate * self._window_read:
                self._refuse(408, "RequestTimeout", f"the request body arrived slower than "
                                                    f"{self.limits.body_min_rate} bytes a second")
                return
            self._window_bytes, self._window_read = 0, 0.0
        self._rate_timer = self.loop.call_later(self.limits.body_rate_window, self._rate_check)

    # -- refusing -------------------------------------------------------------------------------------------

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` and close, reading nothing more; a response the app already started is cut."""
        transport = self.transport
        self.refused = True
        self._cancel_head_timer()
        self._stop_rate_clock()
        if transport is None or transport.is_closing():
            return
        log.debug("refused %s: %s", status, message)
        if self._state != "body" or self.written == self._written_at_head:
            body = json.dumps({"code": code, "message": message}).encode()
            transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                            b"connection: close\r\n\r\n%s" % (status, _REASONS[status].encode(), len(body), body))
        transport.close()
