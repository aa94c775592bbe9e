"""``TWIN_LOG_FORMAT=json``: a served engine writes its log as JSON lines, one access line per request with the
request's id (the proxy's ``X-Request-Id``), route, status and time; the same id comes back in the answer."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.request import Request, urlopen

from helpers import admin_token, free_port, serve_engine


def test_a_served_engine_logs_json_lines_with_request_ids(tmp_path: Path) -> None:
    port = free_port()
    with serve_engine(tmp_path / "data", port, capture=True, TWIN_LOG_FORMAT="json") as process:
        token = admin_token(tmp_path / "data")
        asked = Request(f"http://127.0.0.1:{port}/api/v1/twins?limit=5",
                        headers={"Authorization": f"Bearer {token}", "X-Request-Id": "lb-4411"})
        with urlopen(asked, timeout=30) as answer:
            assert answer.status == 200 and answer.headers["X-Request-Id"] == "lb-4411"
        process.terminate()
        process.wait(timeout=60)
        assert process.stdout is not None
        printed = process.stdout.read().decode()
    lines = [json.loads(line) for line in printed.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "twinengine.access" and line.get("request_id") == "lb-4411"]
    assert len(access) == 1, printed[-3000:]
    assert access[0]["route"] == "/api/v1/twins" and access[0]["status"] == 200 and access[0]["duration_ms"] > 0
    assert access[0]["method"] == "GET" and "?" not in access[0]["message"]  # no query string: it may hold a token
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # the server's own lines are JSON too
    assert token not in printed
