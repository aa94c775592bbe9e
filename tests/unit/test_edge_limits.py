"""The edge's limits: which body limit a route gets, and the limits travelling to ``twin serve --processes``."""

from __future__ import annotations

import pickle
from pathlib import Path

from twinengine.api.edge import EdgeProtocol, edge_config
from twinengine.api.edge_limits import BodyLimits, EdgeLimits
from twinengine.config import Settings


def test_a_route_gets_its_allowance_however_its_path_is_written() -> None:
    limits = BodyLimits(default=10, allowances=(("POST", r"/api/v1/lake/uploads", 99),
                                                ("POST", r"/api/v1/twins/[^/]+/streams/[^/]+/records", 50)))
    for path in ("/api/v1/lake/uploads", "/api/v1/lake/uploads/", "/api/v1//lake//uploads"):
        assert limits.allowance("POST", path) == 99
    assert limits.allowance("POST", "/api/v1/twins/reach/streams/gauges/records") == 50
    for method, path in (("PUT", "/api/v1/lake/uploads"), ("POST", "/api/v1/lake/uploads/x"),
                         ("POST", "/api/v1/twins/a/b/streams/gauges/records"), ("POST", "/api/v1/lake")):
        assert limits.allowance(method, path) == 10, (method, path)


def test_the_limits_travel_with_the_server_configuration(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, request_line_max_bytes=4096, request_header_max_count=20)
    config = edge_config("twinengine.api.serving:child_app", settings, factory=True, workers=2)
    copied = pickle.loads(pickle.dumps(config))  # what uvicorn's supervisor hands each process
    assert copied.http is EdgeProtocol
    assert copied.edge_limits == EdgeLimits.from_settings(settings)
    assert copied.edge_limits.request_line == 4096 and copied.edge_limits.header_count == 20
    assert copied.edge_limits.body.allowance("POST", "/api/v1/lake/uploads") == settings.lake_max_upload_bytes


def test_an_idle_connection_is_kept_for_the_next_request_past_uvicorn_s_five_seconds(tmp_path: Path) -> None:
    """A client that reuses a connection after six idle seconds (a validator between its checks, a load balancer
    with a 60 s idle timeout) is answered on it: uvicorn's own 5 s closed it, and the reuse was reset."""
    import http.client
    import time

    from fastapi import FastAPI

    from twinengine.demo.server import InProcessServer

    app = FastAPI()
    app.get("/ping")(lambda: {"ok": True})
    assert edge_config(app, Settings(data_dir=tmp_path)).timeout_keep_alive == 75
    with InProcessServer(app) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            for pause in (0, 6):
                time.sleep(pause)
                connection.request("GET", "/ping")  # raises RemoteDisconnected on a connection the server closed
                response = connection.getresponse()
                assert response.status == 200 and response.read() == b'{"ok":true}'
            assert connection.sock is not None  # the same connection throughout: never reconnected
        finally:
            connection.close()


class _Transport:
    """What the edge needs of a connection's transport, recording whether it was closed."""

    def __init__(self) -> None:
        self.closed, self.written, self.reading = False, b"", True

    def write(self, data: bytes) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def set_write_buffer_limits(self, *args: object, **kwargs: object) -> None:
        pass


def _connection(tmp_path: Path) -> tuple[EdgeProtocol, _Transport, object]:
    import asyncio

    from fastapi import FastAPI
    from uvicorn.server import ServerState

    config = edge_config(FastAPI(), Settings(data_dir=tmp_path))
    config.load()
    loop = asyncio.new_event_loop()  # never run: the test calls the timers' callbacks itself, in the order it says
    protocol = EdgeProtocol(config, ServerState(), {}, _loop=loop)
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport, loop


def _run_in_own_thread(loop: object, awaitable: object) -> None:
    """Run ``loop`` until ``awaitable`` is done on a thread of its own: a thread whose loop is running (playwright's
    sync API leaves one set in a test worker's main thread) refuses to run another."""
    import threading

    failure: list[BaseException] = []

    def run() -> None:
        try:
            loop.run_until_complete(awaitable)  # type: ignore[attr-defined]
        except BaseException as error:  # re-raised in the test's thread
            failure.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the request was not answered within 30 s"
    if failure:
        raise failure[0]


def test_a_request_waiting_behind_a_late_timer_is_read_not_reset(tmp_path: Path) -> None:
    """A loop that runs its due timers before it reads the sockets (uvloop's), after an iteration longer than the
    head's time, fired the new connection's timer while its request sat unread: the edge closed it, and closing
    with unread bytes resets the client's request. The edge takes one more look first."""
    import asyncio

    protocol, transport, loop = _connection(tmp_path)
    try:
        protocol._head_since -= protocol.limits.head_timeout + 1  # the head's time has passed by the clock
        protocol._head_late()  # the timer, before the loop read the socket
        assert not transport.closed
        protocol.data_received(b"GET /ping HTTP/1.1\r\nHost: engine\r\n\r\n")  # read in the same iteration
        protocol._head_late(True)
        assert not transport.closed and not protocol.refused
        pending = asyncio.all_tasks(loop)  # the request, handed to the app
        _run_in_own_thread(loop, asyncio.gather(*pending, return_exceptions=True))
        assert transport.written.startswith(b"HTTP/1.1 404 ")  # answered (the app has no route)
    finally:
        protocol.connection_lost(None)
        loop.close()


def test_a_connection_that_sends_nothing_is_still_closed_and_a_timer_fired_early_waits(tmp_path: Path) -> None:
    protocol, transport, loop = _connection(tmp_path)
    try:
        protocol._head_late()  # fired early (a loop's time read before a long iteration): by the clock, not yet
        assert not transport.closed and protocol._head_timer is not None
        protocol._head_since -= protocol.limits.head_timeout + 1
        protocol._head_late()
        protocol._head_late(True)  # nothing arrived meanwhile
        assert transport.closed
    finally:
        protocol.connection_lost(None)
        loop.close()
