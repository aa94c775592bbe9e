"""Publishing waits for the engine to build the app's environment: the SDK's publish call awaits its answer
far longer than the client's own timeout (an app requiring xclim takes about a minute on a loaded machine)."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest

from twinengine.client import PUBLISH_TIMEOUT, Client
from twinengine.errors import TwinEngineError


def test_publish_waits_longer_than_other_calls() -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[f"{request.method} {request.url.path}"] = request.extensions["timeout"]
        return httpx.Response(422, json={"code": "ValidationFailed", "message": "no", "details": []})

    http = httpx.Client(base_url="http://engine", timeout=5.0, transport=httpx.MockTransport(handler))
    client = Client("http://engine", "token", http=http)
    with pytest.raises(TwinEngineError):
        client.publish_app(b"not an archive")
    with pytest.raises(TwinEngineError):
        client.list_apps()
    assert seen["POST /api/v1/apps"]["read"] == PUBLISH_TIMEOUT >= 1200  # resolving and installing: ten minutes each
    assert seen["POST /api/v1/apps"]["connect"] == 5.0 and seen["GET /api/v1/apps"]["read"] == 5.0
    http.close()
