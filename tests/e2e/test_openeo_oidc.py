"""The openEO OIDC seam against a live engine: ``/credentials/oidc`` lists the configured providers and a
token signed by a provider (here: a key made in the test, its JWKS served over real HTTP on loopback) is
accepted as ``Bearer oidc/<provider>/<token>``; wrong keys, issuers, audiences and providers are refused."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2 as httpx
import jwt
import openeo
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from twinengine.api import create_app
from twinengine.auth.models import Identity
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
AUDIENCE = "twinengine"


class _Jwks(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        if self.path != "/jwks.json":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    """A JWKS on a loopback port: the public half of KEY under kid "k1"."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    _Jwks.body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served(issuer: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Runtime]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("oidc") / "data", oidc_providers=[
        {"id": "egi", "issuer": issuer, "title": "EGI Check-in", "jwks_uri": f"{issuer}/jwks.json",
         "audience": AUDIENCE, "scopes": ["openid", "email"]},
        {"id": "other", "issuer": "https://other.example", "jwks_uri": f"{issuer}/jwks.json"}])
    runtime = Runtime.from_settings(settings)
    runtime.start()
    try:
        with InProcessServer(create_app(runtime=runtime)) as server:
            yield server.url, runtime
    finally:
        runtime.close()


@pytest.fixture(scope="module")
def engine_url(served: tuple[str, Runtime]) -> str:
    return served[0]


def sign(issuer: str, *, key: rsa.RSAPrivateKey = KEY, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": issuer, "sub": "oona", "aud": AUDIENCE, "iat": now, "exp": now + 300, **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def me(url: str, bearer: str) -> httpx.Response:
    return httpx.get(f"{url}/openeo/1.2/me", headers={"Authorization": f"Bearer {bearer}"})


def test_providers_are_listed(engine_url: str, issuer: str) -> None:
    providers = httpx.get(f"{engine_url}/openeo/1.2/credentials/oidc").json()["providers"]
    assert [p["id"] for p in providers] == ["egi", "other"]
    assert providers[0] == {"id": "egi", "issuer": issuer, "title": "EGI Check-in", "description": "",
                            "scopes": ["openid", "email"]}


def test_the_official_client_authenticates_with_a_provider_token(served: tuple[str, Runtime], issuer: str) -> None:
    engine_url, runtime = served
    con = openeo.connect(engine_url).authenticate_oidc_access_token(sign(issuer), provider_id="egi")
    assert con.describe_account()["user_id"] == "egi.oona"  # <provider>.<subject>: keyed by issuer and subject
    assert con.describe_account()["info"] == {"role": "user"}
    with runtime.db.session(readonly=True) as session:  # known from now on: may own twins, get grants
        identity = session.get(Identity, "egi.oona")
        assert identity is not None and identity.created_by == "oidc:egi" and not identity.disabled
    assert me(engine_url, "oidc/egi/" + sign(issuer, sub="olga")).status_code == 200
    with runtime.db.session() as session:
        olga = session.get(Identity, "egi.olga")
        assert olga is not None
        olga.disabled = True
    runtime.verdicts.forget()  # disabled in the store behind the engine's back: skip settings.token_recheck
    refused = me(engine_url, "oidc/egi/" + sign(issuer, sub="olga"))
    assert refused.status_code == 401 and "disabled" in refused.json()["message"]
    # the same principal on the engine's own API
    response = httpx.get(f"{engine_url}/api/v1/runs", headers={"Authorization": f"Bearer oidc/egi/{sign(issuer)}"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("case", "why"), [
    ("other key", "Signature verification failed"),
    ("expired", "expired"),
    ("audience", "Audience"),
    ("wrong provider", "not issued by OIDC provider 'other'"),
    ("unknown provider", "no OIDC provider 'nope'"),
    ("not a jwt", "not a valid JWT"),
])
def test_bad_tokens_are_refused(engine_url: str, issuer: str, case: str, why: str) -> None:
    bearer = {
        "other key": "oidc/egi/" + sign(issuer, key=OTHER_KEY),
        "expired": "oidc/egi/" + sign(issuer, exp=int(time.time()) - 60),
        "audience": "oidc/egi/" + sign(issuer, aud="someone-else"),
        "wrong provider": "oidc/other/" + sign(issuer),
        "unknown provider": "oidc/nope/" + sign(issuer),
        "not a jwt": "oidc/egi/garbage",
    }[case]
    response = me(engine_url, bearer)
    assert response.status_code == 401, response.text
    assert why in response.json()["message"]
