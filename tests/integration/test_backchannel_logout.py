"""OpenID Connect Back-Channel Logout 1.0 (``auth.backchannel``): the provider posts a logout token when a
person's session there ends, and the engine ends that person's access though no token of theirs is in use: the
identity its ``sub`` names is held (its standing work stops), its engine tokens and portal sessions revoked,
the portal sessions of its ``sid`` ended. Anything that is not a valid logout token of the provider for the
engine's client (section 2.6: signature by the provider's JWKS, iss, aud, iat, jti, events, sub or sid, no
nonce; a replayed jti) is a 400 ``invalid_request`` that holds nobody; a sub the engine does not know is a
200 that makes nothing. The provider's JWKS is served on a loopback port, as in ``test_reserved_names``."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select
from starlette.testclient import TestClient

from twinengine.api import create_app
from twinengine.auth import backchannel, sessions
from twinengine.auth.models import ApiToken, Identity
from twinengine.auth.principal import Principal, Role
from twinengine.config import Settings
from twinengine.runtime import Runtime
from twinengine.twins import standing

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ISSUER = "https://idp.example"
CLIENT = "twinengine-portal"
EVENT = "http://schemas.openid.net/event/backchannel-logout"
URL = "/auth/oidc/idp/backchannel-logout"


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
    """An engine whose client at the provider ``idp`` is CLIENT, the provider's JWKS on a loopback port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    jwks_uri = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, warm_routes=False,
                        oidc_providers=[{"id": "idp", "issuer": ISSUER, "jwks_uri": jwks_uri, "client_id": CLIENT,
                                         "recheck_s": None}])
    runtime = Runtime.from_settings(settings)
    try:
        with TestClient(create_app(runtime=runtime)) as http:
            yield runtime, http
    finally:
        runtime.close()
        server.shutdown()
        server.server_close()


def _access(sub: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "sub": sub, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}, KEY,
                      algorithm="RS256", headers={"kid": "k1"})


def _logout(key: Any = KEY, *, algorithm: str = "RS256", kid: str | None = "k1", drop: tuple[str, ...] = (),
            **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": CLIENT, "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex, "sub": "ada",
            "events": {EVENT: {}}, **claims}
    for name in drop:
        body.pop(name)
    headers = {"typ": "logout+jwt", **({"kid": kid} if kid else {})}
    return jwt.encode(body, key, algorithm=algorithm, headers=headers)


def _post(http: TestClient, token: str) -> Any:
    return http.post(URL, data={"logout_token": token})


def _signed_in(runtime: Runtime, http: TestClient, sub: str = "ada") -> tuple[str, str]:
    """``sub`` signs in (their access token used once), and has a portal session opened through the provider's
    sign-in page in provider session ``s-<sub>``: the access token and the session's engine token."""
    access = _access(sub)
    me = http.get("/api/v1/me", headers={"Authorization": f"Bearer oidc/idp/{access}"})
    assert me.status_code == 200, me.text
    with runtime.db.session() as session:
        signed = sessions.open_session(
            session, runtime.issuer, ttl=timedelta(hours=8),
            principal=Principal(name=me.json()["name"], role=Role.USER, issuer=ISSUER, token_id=f"sid:s-{sub}"))
    assert http.get("/api/v1/me", headers={"Authorization": f"Bearer {signed.token}"}).status_code == 200
    return access, signed.token


def _held(runtime: Runtime, name: str) -> bool:
    with runtime.db.session(readonly=True) as session:
        identity = session.get(Identity, name)
        return identity is not None and identity.disabled and identity.disabled_by == "provider:idp"


def test_a_logout_token_holds_the_person_and_ends_their_tokens(oidc: tuple[Runtime, TestClient]) -> None:
    runtime, http = oidc
    access, session_token = _signed_in(runtime, http)
    answer = _post(http, _logout(sid="s-ada"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert _held(runtime, "idp.ada")
    for token in (session_token, f"oidc/idp/{access}"):  # the engine's token and the provider's, still unexpired
        refused = http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401, refused.text
    with runtime.db.session(readonly=True) as session:  # standing work (triggers, runs) stops at its policy point
        assert standing.lost(session, identity="idp.ada", twin_id=None) == "identity idp.ada was disabled"
        assert session.scalar(select(func.count()).select_from(ApiToken).where(
            ApiToken.identity == "idp.ada", ApiToken.revoked_at.is_(None))) == 0
    # the same logout token again is a replay
    replayed = _post(http, _logout(jti="once"))
    assert replayed.status_code == 200
    again = _post(http, _logout(jti="once"))
    assert again.status_code == 400 and again.json()["error"] == "invalid_request", again.text
    # a new sign-in (a token the provider issued since) lifts the hold
    time.sleep(1.1)
    assert http.get("/api/v1/me", headers={"Authorization": f"Bearer oidc/idp/{_access('ada')}"}).status_code == 200
    assert not _held(runtime, "idp.ada")


def test_a_sid_alone_ends_the_portal_sessions_of_that_provider_session(oidc: tuple[Runtime, TestClient]) -> None:
    runtime, http = oidc
    _, ada_session = _signed_in(runtime, http, "ada")
    _, bo_session = _signed_in(runtime, http, "bo")
    answer = _post(http, _logout(drop=("sub",), sid="s-ada"))
    assert answer.status_code == 200, answer.text
    assert http.get("/api/v1/me", headers={"Authorization": f"Bearer {ada_session}"}).status_code == 401
    assert http.get("/api/v1/me", headers={"Authorization": f"Bearer {bo_session}"}).status_code == 200


def _bad_tokens() -> dict[str, str]:
    now = int(time.time())
    unsigned = jwt.encode({"iss": ISSUER, "aud": CLIENT, "iat": now, "jti": "u", "sub": "ada",
                           "events": {EVENT: {}}}, None, algorithm="none", headers={"kid": "k1"})
    hmac = jwt.encode({"iss": ISSUER, "aud": CLIENT, "iat": now, "jti": "h", "sub": "ada", "events": {EVENT: {}}},
                      "secret-known-to-nobody-but-mallory!", algorithm="HS256", headers={"kid": "k1"})
    return {
        "wrong aud": _logout(aud="another-client"),
        "wrong iss": _logout(iss="https://evil.example"),
        "no events": _logout(drop=("events",)),
        "another event": _logout(events={"http://schemas.openid.net/event/other": {}}),
        "with nonce": _logout(nonce="n"),
        "iat long ago": _logout(iat=now - 3600, exp=now + 60),
        "iat in the future": _logout(iat=now + 3600, exp=now + 7200),
        "expired": _logout(iat=now - 100, exp=now - 90),
        "no iat": _logout(drop=("iat",)),
        "no jti": _logout(drop=("jti",)),
        "neither sub nor sid": _logout(drop=("sub",)),
        "alg none": unsigned,
        "HS256": hmac,
        "another key": _logout(OTHER_KEY),
        "another key, no kid": _logout(OTHER_KEY, kid=None),
        "not a JWT": "not-a-jwt",
    }


def test_anything_but_a_valid_logout_token_is_400_and_holds_nobody(oidc: tuple[Runtime, TestClient]) -> None:
    runtime, http = oidc
    access, session_token = _signed_in(runtime, http)
    for case, token in _bad_tokens().items():
        answer = _post(http, token)
        assert answer.status_code == 400, (case, answer.text)
        assert answer.json()["error"] == "invalid_request", (case, answer.text)
    for case, answer in {
        "no logout_token": http.post(URL, data={"other": "x"}),
        "two logout_tokens": http.post(URL, content=f"logout_token={_logout()}&logout_token={_logout()}",
                                       headers={"Content-Type": "application/x-www-form-urlencoded"}),
        "JSON body": http.post(URL, json={"logout_token": _logout()}),
        "unknown provider": http.post("/auth/oidc/nobody/backchannel-logout", data={"logout_token": _logout()}),
    }.items():
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_request", (case, answer.text)
    assert not _held(runtime, "idp.ada")
    for token in (session_token, f"oidc/idp/{access}"):
        assert http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_an_unknown_subject_is_nothing_to_do(oidc: tuple[Runtime, TestClient]) -> None:
    runtime, http = oidc
    with runtime.db.session(readonly=True) as session:
        before = session.scalar(select(func.count()).select_from(Identity))
    answer = _post(http, _logout(sub="nobody-here", sid="no-such-session"))
    assert answer.status_code == 200, answer.text
    with runtime.db.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(Identity)) == before
        assert session.scalar(select(Identity).where(Identity.subject == "nobody-here")) is None


def test_a_replay_to_another_engine_process_holds_nobody_again(oidc: tuple[Runtime, TestClient]) -> None:
    """Each engine process remembers the logout tokens it accepted; one replayed to another process sharing the
    store (here: the same app with its memory emptied) is refused by the audit log's record of the first, so a
    person who signed in again after the first delivery is not held again by a copy of it."""
    runtime, http = oidc
    _signed_in(runtime, http)
    token = _logout(jti="delivered-once")
    assert _post(http, token).status_code == 200 and _held(runtime, "idp.ada")
    time.sleep(1.1)  # a token the provider issued since lifts the hold
    fresh = _access("ada")
    assert http.get("/api/v1/me", headers={"Authorization": f"Bearer oidc/idp/{fresh}"}).status_code == 200
    assert not _held(runtime, "idp.ada")
    http.app.state.logout_tokens = backchannel.LogoutTokens()  # type: ignore[attr-defined]  # another process
    replayed = _post(http, token)
    assert replayed.status_code == 400 and "replay" in replayed.json()["error_description"], replayed.text
    assert not _held(runtime, "idp.ada")
    assert http.get("/api/v1/me", headers={"Authorization": f"Bearer oidc/idp/{fresh}"}).status_code == 200
