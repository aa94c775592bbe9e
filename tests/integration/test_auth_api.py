"""Access control over HTTP: 401 without a good token, 403 without the role, an audit trail of writes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from helpers import Engine


def test_public_endpoints(engine: Engine) -> None:
    for path in ("/health", "/openapi.json", "/docs"):
        assert engine.http.get(path).status_code == 200
    assert engine.http.get("/health").json()["database"] == "ok"


@pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/apps", "/api/v1/twins", "/metrics", "/api/v1/audit"])
def test_everything_else_needs_a_token(engine: Engine, path: str) -> None:
    response = engine.http.get(path)
    assert response.status_code == 401
    assert response.json()["code"] == "AuthenticationRequired"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_bad_tokens_are_401(engine: Engine) -> None:
    def status(token: str) -> tuple[int, str]:
        r = engine.http.get("/api/v1/me", headers=engine.headers(token))
        return r.status_code, r.json()["code"]

    assert status("not-a-jwt") == (401, "TokenInvalid")
    expired = engine.token("old", "user", ttl=timedelta(seconds=-10))
    assert status(expired) == (401, "TokenInvalid")
    forged = jwt.encode({"iss": "twinengine", "sub": "admin", "jti": "x", "iat": 0},
                        ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    assert status(forged) == (401, "TokenInvalid")
    key = "a-shared-secret-of-thirty-two-bytes!"
    stranger = jwt.encode({"iss": "https://idp.example", "sub": "x"}, key, algorithm="HS256")
    assert status(stranger) == (401, "TokenInvalid")


def test_tokens_are_issued_by_admins_and_can_be_revoked(engine: Engine) -> None:
    admin = engine.sdk(engine.admin_token)
    issued = admin.create_token("alice", "developer", expires_in="2h", note="for tests")
    assert issued.expires_at is not None
    alice = engine.sdk(issued.token)
    assert alice.me().name == "alice" and alice.me().role.value == "developer"
    r = engine.http.post("/api/v1/tokens", json={"name": "bob", "role": "admin"},
                         headers=engine.headers(issued.token))
    assert r.status_code == 403 and r.json()["code"] == "PermissionDenied"
    assert [t.jti for t in admin.list_tokens("alice")] == [issued.jti]
    admin.revoke_token(issued.jti)
    r = engine.http.get("/api/v1/me", headers=engine.headers(issued.token))
    assert r.status_code == 401 and "revoked" in r.json()["message"]


def test_token_request_validation_names_fields(engine: Engine) -> None:
    r = engine.http.post("/api/v1/tokens", json={"name": "Bad Name", "role": "boss", "expires_in": "soon"},
                         headers=engine.headers(engine.admin_token))
    assert r.status_code == 422
    assert {d["loc"] for d in r.json()["details"]} == {"name", "role"}
    r = engine.http.post("/api/v1/tokens", json={"name": "ok", "role": "user", "expires_in": "soon"},
                         headers=engine.headers(engine.admin_token))
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == "expires_in"


def test_callers_without_the_right_hear_403_before_any_validation(engine: Engine) -> None:
    user = engine.headers(engine.token("uma", "user"))
    for body in ({"name": "Bad Name", "role": "boss"}, {"name": "ok", "role": "user", "expires_in": "soon"}, {}):
        r = engine.http.post("/api/v1/tokens", json=body, headers=user)
        assert r.status_code == 403 and r.json()["code"] == "PermissionDenied", (body, r.text)
    assert engine.http.get("/api/v1/audit", params={"since": "0.5", "limit": 0}, headers=user).status_code == 403
    assert engine.http.get("/api/v1/tokens", params={"identity": "x" * 100}, headers=user).status_code == 403
    assert engine.http.delete("/api/v1/tokens/" + "x" * 100, headers=user).status_code == 403
    assert engine.http.post("/api/v1/tokens", json={"name": "Bad Name", "role": "boss"}).status_code == 401


def test_the_first_admin_token_is_kept_nowhere(engine: Engine) -> None:
    data_dir = engine.runtime.data_dir
    assert not (data_dir / "admin.token").exists()
    leftover = data_dir / "admin.token"
    leftover.write_text("a token an older engine kept\n")
    assert engine.runtime.start() is None  # a second start creates no second admin
    assert not leftover.exists()  # and removes what an older engine left readable


def test_metrics_need_provider_or_admin(engine: Engine) -> None:
    assert engine.http.get("/metrics", headers=engine.headers(engine.token("u", "user"))).status_code == 403
    r = engine.http.get("/metrics", headers=engine.headers(engine.token("p", "provider")))
    assert r.status_code == 200 and "twin_http_requests_total" in r.text
    assert 'twin_store_rows{kind="twins"}' in r.text


def test_every_write_is_audited_with_its_outcome(engine: Engine) -> None:
    user = engine.token("uma", "user")
    engine.http.post("/api/v1/tokens", json={"name": "x", "role": "user"}, headers=engine.headers(user))
    engine.http.post("/api/v1/tokens", json={"name": "x", "role": "user"})
    engine.http.post("/api/v1/tokens", json={"name": "x", "role": "user"}, headers=engine.headers(engine.admin_token))
    page = engine.sdk(engine.admin_token).audit(action="tokens-create")
    outcomes = [(e.actor, e.outcome, e.status) for e in page.items]
    assert outcomes[:3] == [("admin", "success", 201), ("anonymous", "denied", 401), ("uma", "denied", 403)]
    assert all(e.target == "POST /api/v1/tokens" for e in page.items[:3])
    r = engine.http.get("/api/v1/audit", headers=engine.headers(user))
    assert r.status_code == 403
    for name in ("since", "until"):  # a bare number is not read as seconds since 1970
        r = engine.http.get("/api/v1/audit", params={name: "0.5"}, headers=engine.headers(engine.admin_token))
        assert r.status_code == 422 and r.json()["details"][0]["loc"] == f"query.{name}"


def test_oversized_bodies_are_413_and_audited(engine: Engine) -> None:
    limit = engine.runtime.settings.max_request_bytes
    r = engine.http.post("/api/v1/tokens", content=b"x" * (limit + 1),
                         headers={**engine.headers(engine.admin_token), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "PayloadTooLarge"
    assert engine.sdk(engine.admin_token).audit(outcome="rejected").items[0].status == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is found while reading
        for _ in range(4):
            yield b"[" + b"1," * (limit // 8) + b"1]"

    r = engine.http.post("/api/v1/tokens", content=chunks(),
                         headers={**engine.headers(engine.admin_token), "Content-Type": "application/json"})
    assert r.request.headers.get("content-length") is None
    assert r.status_code == 413 and r.json() == {"code": "PayloadTooLarge",
                                                  "message": f"request body exceeds the limit of {limit} bytes"}
    assert engine.sdk(engine.admin_token).audit(outcome="rejected").items[0].status == 413
