"""The engine served in-process (``twin demo``'s server, ``twin app dev``) has the same edge as ``twin serve``,
and the body allowances above the default are routes of the app, read only for a verified caller."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import httpx2 as httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from twinengine.api import create_app
from twinengine.api.edge_limits import BODY_ALLOWANCES, BodyLimits
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime


@dataclass
class Served:
    app: FastAPI
    url: str
    port: int
    token: str
    settings: Settings


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("in-process") / "data", warm_routes=False)
    runtime = Runtime.from_settings(settings)
    token = runtime.start()
    assert token is not None
    try:
        app = create_app(runtime=runtime)
        with InProcessServer(app) as server:
            yield Served(app, server.url, server.port, token, settings)
    finally:
        runtime.close()


def test_the_in_process_server_refuses_an_oversized_request_line(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=60) as sock:
        with contextlib.suppress(OSError):  # the engine answered and closed before the line ended
            sock.sendall(b"GET /health?q=" + b"A" * (served.settings.request_line_max_bytes + 1) + b" HTTP/1.1\r\n")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 414 ")


def test_allowances_are_routes_of_the_app(served: Served) -> None:
    limits = BodyLimits.from_settings(served.settings)
    routes = [(getattr(route, "methods", None) or set(), getattr(route, "path_regex", None))
              for route in iter_route_contexts(served.app.routes)]
    for method, pattern, name in BODY_ALLOWANCES:
        example = pattern.replace("[^/]+", "x")
        assert any(method in methods and regex is not None and regex.match(example) for methods, regex in routes), \
            pattern
        assert limits.allowance(method, example) == getattr(served.settings, name) > limits.default


def test_a_body_past_the_default_is_read_for_a_verified_caller_only(served: Served) -> None:
    body = b"x" * (served.settings.max_request_bytes + (1 << 20))  # not JSON: a 400 once parsed
    url = f"{served.url}/api/v1/state/batch"
    anonymous = httpx.post(url, content=iter([body]), headers={"Content-Type": "application/json"}, timeout=60)
    verified = httpx.post(url, content=iter([body]), timeout=60,
                          headers={"Content-Type": "application/json", "Authorization": f"Bearer {served.token}"})
    assert anonymous.status_code == 401 and anonymous.headers["connection"] == "close"
    assert verified.status_code == 400 and "not valid JSON" in verified.json()["message"]


def test_a_kept_connection_after_a_refusal_is_not_reused(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=60) as http:
        refused = http.post("/api/v1/twins", content=iter([b"x" * (3 << 20)]))
        assert refused.status_code == 413 and refused.headers["connection"] == "close"
        assert http.get("/health").status_code == 200  # a new connection, opened by the client
