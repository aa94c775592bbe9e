"""The SDK's namespaces talk to the engine through one public ``Transport``: the client's token on every
request (streamed ones included), error answers raised as the server's error classes, an unreachable engine
as EngineUnavailable; and none of them reaches into ``Client``."""

from __future__ import annotations

import ast
import contextlib
import json
import ssl
from pathlib import Path

import httpx2 as httpx
import pytest

from twinengine.client import Client
from twinengine.errors import EngineUnavailable, TwinEngineError, TwinNotFound
from twinengine.transport import Transport, segment
from twinengine.workflows.client import WorkflowsClient

SRC = Path(__file__).resolve().parents[2] / "src" / "twinengine"
NAMESPACES = ["access/sdk.py", "lake/client.py", "ml/client.py", "ensembles/client.py", "streams/sdk.py",
              "twins/forecasts_sdk.py", "workflows/client.py"]


def _http(seen: list[httpx.Request]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/missing"):
            return httpx.Response(404, json={"code": "TwinNotFound", "message": "no twin missing"})
        if request.url.path.endswith("/broken"):
            return httpx.Response(502, text="bad gateway")
        if request.url.path.endswith("/events"):
            return httpx.Response(200, text='data: {"offset": 0}\n\n',
                                  headers={"Content-Type": "text/event-stream"})
        if request.url.path.endswith("/runs/r-1"):
            return httpx.Response(404, json={"code": "TwinNotFound", "message": "no run"})
        return httpx.Response(200, json={"items": [], "total": 0})

    return httpx.Client(base_url="http://engine", transport=httpx.MockTransport(handler))


def test_every_request_carries_the_token_and_errors_come_back_typed() -> None:
    seen: list[httpx.Request] = []
    transport = Transport("http://engine/", "secret", http=_http(seen))
    assert transport.url == "http://engine"
    assert transport.request("GET", "/api/v1/twins", params={"limit": 1}).json()["total"] == 0
    with transport.stream("GET", "/api/v1/twins/a/streams/s/events") as response:
        assert response.status_code == 200
    with pytest.raises(TwinNotFound, match="no twin missing"):
        transport.request("GET", "/api/v1/twins/missing")
    with pytest.raises(TwinEngineError) as caught:
        transport.request("GET", "/broken")
    assert caught.value.status == 502 and "bad gateway" in caught.value.message
    assert [r.headers.get("Authorization") for r in seen] == ["Bearer secret"] * 4


def test_an_unreachable_engine_is_engine_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    transport = Transport("http://engine", http=httpx.Client(base_url="http://engine",
                                                             transport=httpx.MockTransport(refuse)))
    with pytest.raises(EngineUnavailable, match="cannot reach the engine at http://engine"):
        transport.request("GET", "/health")


def test_the_client_hands_its_transport_to_every_namespace() -> None:
    seen: list[httpx.Request] = []
    client = Client("http://engine", "tok", http=_http(seen))
    for namespace in (client.edr, client.lake, client.ml, client.ensembles, client.streams, client.verification,
                      client.workflows):
        assert client._transport in vars(namespace).values()
    assert isinstance(client.workflows, WorkflowsClient)
    with pytest.raises(TwinNotFound):
        client.workflows.get("r-1")
    assert list(client.streams.follow("a", "s")) == [{"offset": 0}]
    assert all(r.headers["Authorization"] == "Bearer tok" for r in seen) and len(seen) == 2
    assert segment("a/b c") == "a%2Fb%20c"


@pytest.mark.parametrize("path", NAMESPACES)
def test_no_namespace_imports_the_client(path: str) -> None:
    """The namespaces sit below ``client.py``: they import the transport, never the Client or its helpers."""
    tree = ast.parse((SRC / path).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "twinengine.client" not in imported


def test_a_synchronous_run_is_waited_for_until_the_engine_answers() -> None:
    """A synchronous run's request is answered when the run ends, within the engine's own budget
    (``sync_timeout``): the SDK waits for it past its read timeout; any other request that outlasts it says
    the engine did not answer (it was reached), naming the request."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    when = "2026-03-01T00:00:00Z"
    run = {"id": "run-1", "kind": "run", "status": "finished", "progress": 100.0, "owner": "uma", "title": None,
           "twin_id": None, "twin_name": "reach", "app": None, "workflow": "forecast", "graph_sha256": "0" * 64,
           "parameters": {}, "trigger_id": None, "executor": "local", "error": None, "assets": [], "value": None,
           "created_at": when, "updated_at": when, "started_at": when, "finished_at": when}

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(1.5)
            body = json.dumps(run).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the second request gave up
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    transport = Transport(f"http://127.0.0.1:{server.server_address[1]}", "t", timeout=0.5)
    try:
        workflows = WorkflowsClient(transport)
        assert workflows.run("reach", "forecast", sync=True).id == "run-1"
        with pytest.raises(EngineUnavailable, match=r"did not answer POST /api/v1/twins/reach/runs within 0.5 s"):
            workflows.run("reach", "forecast")
    finally:
        transport.close()
        server.shutdown()
        server.server_close()


def test_sdk_clients_of_a_process_share_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Making a TLS context reads the whole CA bundle (tens of ms): a process opening many SDK clients (the
    CLI's commands in one shell, a notebook, a load test) makes it once."""
    import httpcore2

    from twinengine import transport as transport_module

    made: list[object] = []
    real = httpcore2.default_ssl_context

    def counted(**kwargs: object) -> object:
        made.append(kwargs)
        return real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(httpcore2, "default_ssl_context", counted)
    transport_module.tls_context.cache_clear()
    clients = [Client(f"https://engine-{i}.example.org", token="t") for i in range(5)]
    try:
        assert len(made) == 1
        assert transport_module.tls_context().verify_mode == ssl.CERT_REQUIRED  # still verifying servers
    finally:
        for client in clients:
            client.close()
        transport_module.tls_context.cache_clear()
