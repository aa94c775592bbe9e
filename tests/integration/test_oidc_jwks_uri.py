"""An OpenID provider whose keys would be read from anything but an http(s) URL (``file:``, ``ftp:``,
``gopher:``): configured so, the settings refuse it at start naming ``oidc_providers[i].jwks_uri``; named so by
the provider's discovery document (served here by a small loopback web server, not the full provider: only the
document matters), a token of it is refused with a 401 saying why, never a 500, and no local file is read."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from pydantic import ValidationError

from twinengine.api import create_app
from twinengine.cli._common import local_settings
from twinengine.config import Settings
from twinengine.errors import ValidationFailed
from twinengine.runtime import Runtime

BAD = ["file:///etc/passwd", "ftp://127.0.0.1/jwks.json", "gopher://127.0.0.1:70/_keys", "jwks.json",
       "http:///no-host"]


@pytest.mark.parametrize("uri", BAD)
def test_a_configured_jwks_uri_that_is_not_http_is_a_settings_error(uri: str, tmp_path: Path) -> None:
    providers = [{"id": "good", "issuer": "https://idp.example.org", "jwks_uri": "https://idp.example.org/k"},
                 {"id": "bad", "issuer": "https://idp.example.org", "jwks_uri": uri}]
    with pytest.raises(ValidationError) as caught:
        Settings(data_dir=tmp_path, oidc_providers=providers)
    assert [e["loc"] for e in caught.value.errors()] == [("oidc_providers", 1, "jwks_uri")]
    assert "http or https" in str(caught.value) or "no host" in str(caught.value)
    with pytest.raises(ValidationFailed) as failed:  # as the CLI reports it
        local_settings(tmp_path, oidc_providers=providers)
    assert [p.loc for p in failed.value.problems] == ["settings.oidc_providers[1].jwks_uri"]


@pytest.fixture
def discovery() -> Iterator[tuple[str, dict[str, str]]]:
    """A loopback web server answering only the discovery document, whose ``jwks_uri`` a test sets."""
    document: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(document).encode()
            self.send_response(200 if self.path == "/.well-known/openid-configuration" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    issuer = f"http://127.0.0.1:{server.server_address[1]}"
    document["issuer"] = issuer
    try:
        yield issuer, document
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("uri", ["file:///etc/passwd", "ftp://127.0.0.1:1/jwks.json", "gopher://127.0.0.1:1/_"])
def test_a_discovery_document_naming_a_non_http_jwks_uri_is_a_clear_401(
        uri: str, tmp_path: Path, database_url: str | None, discovery: tuple[str, dict[str, str]]) -> None:
    issuer, document = discovery
    document["jwks_uri"] = uri
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, warm_routes=False,
                        oidc_providers=[{"id": "odd", "issuer": issuer}])
    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode({"iss": issuer, "sub": "mallory", "exp": int(time.time()) + 300}, key, algorithm="ES256",
                       headers={"kid": "k1"})
    runtime = Runtime.from_settings(settings)
    try:
        with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as http:
            for _ in range(2):  # and again: nothing half-cached makes the second try different
                answer = http.get("/api/v1/me", headers={"Authorization": f"Bearer oidc/odd/{token}"})
                assert answer.status_code == 401, answer.text
                assert "jwks_uri" in answer.text and "http or https" in answer.text, answer.text
                assert "root:" not in answer.text
    finally:
        runtime.close()
