"""The engine says which release it is wherever a client or a probe looks: /health, /health/ready, OpenAPI."""

from __future__ import annotations

from helpers import Engine
from streams_fixtures import eventually
from twinengine._version import __version__


def test_health_readiness_and_openapi_carry_the_version(engine: Engine) -> None:
    assert engine.http.get("/health").json()["version"] == __version__
    ready = eventually(lambda: (r := engine.http.get("/health/ready")).status_code == 200 and r, timeout=60)
    assert ready.json()["version"] == __version__
    assert engine.http.get("/openapi.json").json()["info"]["version"] == __version__
