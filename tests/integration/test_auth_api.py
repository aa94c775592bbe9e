"""Access control over HTTP: 401 without a good token, 403 without the role, an audit trail of writes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from helpers import Engine, make_app
from twinengine.api.cookies import SESSION_COOKIE


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


def _me(engine: Engine, token: str) -> tuple[int, str]:
    r = engine.http.get("/api/v1/me", headers=engine.headers(token))
    return r.status_code, r.json().get("message", "") if r.status_code != 200 else r.json()["name"]


def _session_token(engine: Engine, token: str) -> tuple[str, dict[str, Any]]:
    """Sign in with ``token``; the session token the cookie holds, and the answer."""
    r = engine.http.post("/api/v1/session", json={"token": token})
    assert r.status_code == 201, r.text
    session_token = r.cookies[SESSION_COOKIE]
    engine.http.cookies.clear()  # the test sends tokens as bearer tokens only
    return session_token, {**r.json(), "set-cookie": r.headers["set-cookie"]}


def test_a_disabled_identity_is_refused_at_once_tokens_and_sessions(engine: Engine) -> None:
    admin = engine.sdk(engine.admin_token)
    token = engine.token("uma", "user")
    session_token, _ = _session_token(engine, token)
    assert _me(engine, token) == (200, "uma") and _me(engine, session_token) == (200, "uma")  # verdicts kept
    row = admin.set_identity_disabled("uma")
    assert row.disabled and row.id
    for used in (token, session_token):
        status, message = _me(engine, used)
        assert status == 401 and "disabled" in message
    assert admin.set_identity_disabled("uma", False).disabled is False
    assert _me(engine, token) == (200, "uma") and _me(engine, session_token) == (200, "uma")
    refused = engine.http.patch("/api/v1/identities/admin", json={"disabled": True},
                                headers=engine.headers(token))
    assert refused.status_code == 403 and refused.json()["code"] == "PermissionDenied"
    own = engine.http.patch("/api/v1/identities/admin", json={"disabled": True},
                            headers=engine.headers(engine.admin_token))
    assert own.status_code == 400 and "act as" in own.json()["message"]
    missing = engine.http.delete("/api/v1/identities/nobody", headers=engine.headers(engine.admin_token))
    assert missing.status_code == 404 and missing.json()["code"] == "IdentityNotFound"
    bad = engine.http.patch("/api/v1/identities/uma", json={"disabled": "maybe"},
                            headers=engine.headers(engine.admin_token))
    assert bad.status_code == 422 and "disabled" in bad.text


def test_a_deleted_identitys_tokens_never_work_again_even_under_its_name(engine: Engine) -> None:
    from sqlalchemy import insert, select

    from twinengine.auth.models import ApiToken

    admin = engine.sdk(engine.admin_token)
    token = engine.token("uma", "user")
    session_token, _ = _session_token(engine, token)
    assert _me(engine, token) == (200, "uma")
    before = {i.name: i.id for i in admin.identities()}["uma"]
    with engine.runtime.db.session(readonly=True) as session:
        kept = [{c.name: getattr(row, c.name) for c in ApiToken.__table__.columns}
                for row in session.scalars(select(ApiToken).where(ApiToken.identity == "uma"))]
    deleted = admin.delete_identity("uma")
    assert (deleted.name, deleted.id, deleted.tokens_deleted) == ("uma", before, 2)
    assert "uma" not in {i.name for i in admin.identities()}
    for used in (token, session_token):
        assert _me(engine, used)[0] == 401
    again = engine.token("uma", "user")  # the name is free again, for a new identity
    assert _me(engine, again) == (200, "uma")
    after = {i.name: i.id for i in admin.identities()}["uma"]
    assert after and after != before
    with engine.runtime.db.session() as session:  # the old rows back (a restored backup, a lagging replica)
        session.execute(insert(ApiToken), kept)
    for used in (token, session_token):
        status, message = _me(engine, used)
        assert status == 401 and "deleted" in message
    assert _me(engine, again) == (200, "uma")


def test_an_identity_that_owns_twins_is_not_deleted(engine: Engine, tmp_path: Path) -> None:
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path))
    token = engine.token("uma", "user")
    engine.sdk(token).create_twin("test-app@1.0.0", "t1", {"station": "S1"})
    r = engine.http.delete("/api/v1/identities/uma", headers=engine.headers(engine.admin_token))
    assert r.status_code == 409 and r.json()["code"] == "IdentityInUse" and "twins" in r.json()["message"]
    assert _me(engine, token) == (200, "uma")  # nothing of it was deleted


def test_a_session_cannot_outlive_the_token_it_was_opened_with(engine: Engine) -> None:
    token = engine.token("uma", "user", ttl=timedelta(hours=1))
    first, answer = _session_token(engine, token)
    ends = datetime.fromisoformat(answer["expires_at"])
    assert ends <= datetime.now(UTC) + timedelta(hours=1)  # not the 12 h of a session
    max_age = int(answer["set-cookie"].split("Max-Age=", 1)[1].split(";", 1)[0])
    assert 0 < max_age <= 3600
    second, again = _session_token(engine, first)  # a session opening another one passes on its own end
    assert datetime.fromisoformat(again["expires_at"]) <= ends
    third, last = _session_token(engine, second)
    assert datetime.fromisoformat(last["expires_at"]) <= ends
    assert _me(engine, third) == (200, "uma")
    long_lived = engine.token("pat", "provider", ttl=timedelta(days=30))
    _, plain = _session_token(engine, long_lived)  # a long-lived token opens a session of session_ttl
    lifetime = datetime.fromisoformat(plain["expires_at"]) - datetime.now(UTC)
    assert timedelta(hours=11) < lifetime <= engine.runtime.settings.session_ttl


def test_a_verification_that_read_before_a_revocation_does_not_cache_its_verdict(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request verifies a token (the store says: valid) while the token is revoked; the revocation commits
    and forgets the token's verdicts before that request stores its own. The stale verdict must not be kept:
    the next call is refused at once, not after ``settings.token_recheck``."""
    import twinengine.api.deps as deps
    from twinengine.auth import service as auth_service
    from twinengine.auth.principal import Principal, Role

    admin = engine.sdk(engine.admin_token)
    issued = admin.create_token("rita", "user", expires_in="2h")
    real_verify = deps.verify_bearer
    revoked: list[str] = []

    def verify_then_revoked_meanwhile(token: str | None, **kwargs: Any) -> Principal:
        principal = real_verify(token, **kwargs)
        if token == issued.token and not revoked:  # what the revoke route does, between this read and its put
            with engine.runtime.db.session() as session:
                auth_service.revoke_token(session, principal=Principal("admin", Role.ADMIN), jti=issued.jti)
                session.commit()
            engine.runtime.verdicts.forget(issued.jti)
            revoked.append(issued.jti)
        return principal

    monkeypatch.setattr(deps, "verify_bearer", verify_then_revoked_meanwhile)
    assert engine.http.get("/api/v1/me", headers=engine.headers(issued.token)).status_code == 200  # read before
    assert revoked == [issued.jti]
    r = engine.http.get("/api/v1/me", headers=engine.headers(issued.token))
    assert r.status_code == 401 and "revoked" in r.json()["message"]
