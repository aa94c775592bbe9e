"""The names the engine records for itself (``system`` above all: the owner and lake origin of what the engine
makes) are no one's identity: no token is issued for one, an OIDC subject carrying one is refused, and a
token issued under one before it was reserved stops working."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from helpers import Engine
from twinengine.api import create_app
from twinengine.auth.models import ApiToken, Identity
from twinengine.auth.principal import RESERVED_NAMES, Role
from twinengine.auth.service import ensure_identity
from twinengine.cli.main import app as cli_app
from twinengine.config import Settings
from twinengine.runtime import Runtime

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ISSUER = "https://idp.example"


def _tokens_of(engine: Engine, name: str) -> list[str]:
    with engine.runtime.db.session(readonly=True) as session:
        return list(session.scalars(select(ApiToken.jti).where(ApiToken.identity == name)))


@pytest.mark.parametrize("name", sorted(RESERVED_NAMES))
def test_no_token_is_issued_for_a_name_the_engine_keeps(engine: Engine, name: str) -> None:
    r = engine.http.post("/api/v1/tokens", json={"name": name, "role": "admin"},
                         headers=engine.headers(engine.admin_token))
    assert r.status_code == 422, r.text
    assert r.json()["details"] == [{"loc": "name", "msg": f"{name!r} is reserved: the engine records its own "
                                                          "work under it; choose another identity name"}]
    assert _tokens_of(engine, name) == []
    user = engine.http.post("/api/v1/tokens", json={"name": name, "role": "user"},
                            headers=engine.headers(engine.token("uma", "user")))
    assert user.status_code == 403  # who may not issue tokens hears that first, as for any name


def test_twin_token_create_refuses_a_reserved_name_before_opening_the_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = CliRunner().invoke(cli_app, ["token", "create", "--name", "system", "--role", "admin",
                                          "--data-dir", str(data)])
    assert result.exit_code == 1, result.output
    assert "--name: 'system' is reserved" in result.output and "Traceback" not in result.output
    assert not data.exists()
    bad = CliRunner().invoke(cli_app, ["token", "create", "--name", "Not A Name", "--role", "user",
                                       "--data-dir", str(data)])
    assert bad.exit_code == 1 and "--name:" in bad.output and "Traceback" not in bad.output


def test_a_token_issued_under_a_reserved_name_before_stops_working(engine: Engine) -> None:
    runtime = engine.runtime
    with runtime.db.session() as session:  # as an engine that did not yet reserve the name would have
        identity = ensure_identity(session, "system", created_by="admin")
        signed = runtime.issuer.sign("system", Role.USER, timedelta(hours=1))
        session.add(ApiToken(jti=signed.jti, identity="system", identity_id=identity.id, role="user",
                             issued_at=signed.issued_at, expires_at=signed.expires_at))
    r = engine.http.get("/api/v1/me", headers=engine.headers(signed.token))
    assert r.status_code == 401 and r.json()["code"] == "TokenInvalid"
    assert "the engine keeps for itself" in r.json()["message"]


class _Jwks(BaseHTTPRequestHandler):
    """The provider's JWKS: the public half of KEY under kid "k1"."""

    def do_GET(self) -> None:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
        body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        return None


@pytest.fixture
def oidc(tmp_path: Path, database_url: str | None) -> Iterator[tuple[Runtime, TestClient]]:
    """An engine trusting the provider ``idp``, whose JWKS is served on a loopback port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    jwks_uri = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, warm_routes=False,
                        oidc_providers=[{"id": "idp", "issuer": ISSUER, "jwks_uri": jwks_uri}])
    runtime = Runtime.from_settings(settings)
    try:
        with TestClient(create_app(runtime=runtime)) as http:
            yield runtime, http
    finally:
        runtime.close()
        server.shutdown()
        server.server_close()


def _me(http: TestClient, **claims: Any) -> Any:
    now = int(time.time())
    token = jwt.encode({"iss": ISSUER, "iat": now, "exp": now + 300, **claims}, KEY, algorithm="RS256",
                       headers={"kid": "k1"})
    return http.get("/api/v1/me", headers={"Authorization": f"Bearer oidc/idp/{token}"})


def test_an_oidc_subject_never_takes_a_reserved_name(oidc: tuple[Runtime, TestClient]) -> None:
    """External identities are named ``<provider>.<subject>`` (keyed by issuer and subject), so a subject such as
    ``system`` names an identity of that provider, never the engine's own."""
    runtime, http = oidc
    assert _me(http, sub="oona").json()["name"] == "idp.oona"
    for subject, name in (("system", "idp.system"), ("engine", "idp.engine")):
        answer = _me(http, sub=subject)
        assert answer.status_code == 200, answer.text
        assert answer.json()["name"] == name and answer.json()["role"] == "user"
    with runtime.db.session(readonly=True) as session:  # the reserved names are not recorded as identities
        assert session.get(Identity, "system") is None and session.get(Identity, "engine") is None
        assert session.get(Identity, "idp.oona") is not None
