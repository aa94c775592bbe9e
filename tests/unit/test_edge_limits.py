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
