"""Where time goes, as an operator sees it: traces of requests and runs arrive over OTLP/HTTP at a collector on
loopback (a receiver started here, decoding the protobuf the OpenTelemetry exporter sends, stands in for the
OpenTelemetry Collector, which no package index ships), each request has an id in its answer and its log lines,
and JSON log lines carry it."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from helpers import engine_on
from streams_fixtures import eventually
from twinengine import telemetry
from twinengine.config import Settings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class Collector(ThreadingHTTPServer):
    spans: list[dict[str, Any]]


class _Receiver(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: (a.value.string_value or a.value.int_value) for a in span.attributes}
                    self.server.spans.append({"name": span.name, "trace_id": span.trace_id.hex(),
                                              "parent": span.parent_span_id.hex(), "kind": span.kind,
                                              "attributes": attributes, "service": service,
                                              "path": self.path})
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector(("127.0.0.1", 0), _Receiver)
    server.spans = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        telemetry.shutdown_tracing()


def test_requests_and_runs_reach_the_collector_with_their_ids(tmp_path: Path, collector: Collector) -> None:
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
    settings = Settings(data_dir=tmp_path / "data", warm_routes=False, otlp_endpoint=endpoint)
    with engine_on(settings) as engine:
        headers = {**engine.headers(engine.admin_token), "X-Request-Id": "proxy-7f3a",
                   "traceparent": f"00-{TRACE}-{PARENT}-01"}
        listed = engine.http.get("/api/v1/twins", headers=headers)
        assert listed.status_code == 200 and listed.headers["x-request-id"] == "proxy-7f3a"
        fresh = engine.http.get("/api/v1/twins", headers={**engine.headers(engine.admin_token),
                                                          "X-Request-Id": "bad id\twith tab"})
        assert len(fresh.headers["x-request-id"]) == 32 and fresh.headers["x-request-id"] != "bad id\twith tab"
        admin = engine.sdk(engine.admin_token)
        run = admin.workflows.submit({"process_graph": {
            "sum": {"process_id": "add", "arguments": {"x": 40, "y": 2}, "result": True}}})
        assert admin.workflows.wait(run.id, timeout=120).status == "finished"

        def arrived() -> list[dict[str, Any]]:
            telemetry.flush()
            return [s for s in collector.spans if s["attributes"].get("twin.run.id") == run.id]

        runs = eventually(arrived, timeout=60)
    request = [s for s in collector.spans if s["trace_id"] == TRACE]
    assert len(request) == 1 and request[0]["parent"] == PARENT  # the caller's trace goes on
    assert request[0]["name"] == "GET /api/v1/twins" and request[0]["kind"] == 2  # SERVER
    assert request[0]["attributes"]["http.route"] == "/api/v1/twins"
    assert request[0]["attributes"]["http.response.status_code"] == 200
    assert request[0]["attributes"]["twin.request_id"] == "proxy-7f3a"
    assert request[0]["path"] == "/v1/traces" and request[0]["service"]["service.name"] == "twinengine"
    assert runs[0]["name"] == "run" and runs[0]["attributes"]["twin.run.status"] == "finished"
    submitted = [s for s in collector.spans if s["attributes"].get("http.route") == "/api/v1/runs"]
    assert submitted and submitted[0]["attributes"]["http.request.method"] == "POST"


def test_json_log_lines_carry_the_request_id() -> None:
    formatter = telemetry.JsonFormatter()
    token = telemetry.REQUEST_ID.set("req-42")
    try:
        record = logging.LogRecord("twinengine.workflows", logging.WARNING, __file__, 1, "run %s ended", ("r-1",),
                                   None)
        record.run_id = "r-1"
        line = json.loads(formatter.format(record))
    finally:
        telemetry.REQUEST_ID.reset(token)
    assert line["request_id"] == "req-42" and line["message"] == "run r-1 ended" and line["run_id"] == "r-1"
    assert line["level"] == "warning" and line["logger"] == "twinengine.workflows" and line["time"].endswith("+00:00")
    outside = json.loads(formatter.format(logging.LogRecord("x", logging.INFO, __file__, 1, "plain", None, None)))
    assert "request_id" not in outside and "trace_id" not in outside
