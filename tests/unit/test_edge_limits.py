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
