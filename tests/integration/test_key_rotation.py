"""Signing keys rotate: the JWKS publishes the current and the next key by ``kid``; after a rotation tokens of
the retired key work until they expire (and one without an expiry stops), across engines sharing a store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from helpers import Engine, admin_token, free_port, serve_engine
from streams_fixtures import eventually
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.errors import TokenInvalid

# ci_only: two engines on PostgreSQL following a key rotation
# the store itself, its concurrency, or engines in several processes: both stores
pytestmark = [pytest.mark.every_store, pytest.mark.ci_only(backend="postgresql")]


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def _me(engine: Engine, token: str) -> Any:
    return engine.http.get("/api/v1/me", headers=engine.headers(token))


def test_rotation_publishes_the_next_key_and_retires_the_current(engine: Engine) -> None:
    admin = engine.headers(engine.admin_token)
    before = engine.http.get("/.well-known/jwks.json").json()["keys"]
    assert len(before) == 2 and len({k["kid"] for k in before}) == 2
    assert all(k["alg"] == "ES256" and k["kty"] == "EC" and "d" not in k for k in before)
    current, following = before[0]["kid"], before[1]["kid"]
    expiring = engine.token("alice", "user", ttl=timedelta(days=1))
    forever = engine.token("eve", "user", ttl=None)
    assert _kid(expiring) == current
    assert engine.http.post("/api/v1/signing-keys/rotate", headers=engine.headers(expiring)).status_code == 403
    rotated = engine.http.post("/api/v1/signing-keys/rotate", headers=admin)
    assert rotated.status_code == 200, rotated.text
    states = {k["kid"]: k["state"] for k in rotated.json()}
    assert states[current] == "retired" and states[following] == "current"
    after = engine.http.get("/.well-known/jwks.json").json()["keys"]
    assert after[0]["kid"] == following and len(after) == 2 and current not in {k["kid"] for k in after}
    assert _me(engine, expiring).status_code == 200  # its key is retired, its lifetime not over
    refused = _me(engine, forever)
    assert refused.status_code == 401 and "retired key" in refused.json()["message"]
    assert _kid(engine.token("carol", "user")) == following


def test_a_token_naming_an_unknown_key_is_refused(engine: Engine) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    claims = {"iss": engine.runtime.issuer.issuer, "sub": "admin", "role": "admin", "jti": "x" * 32, "iat": 1}
    forged = jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": "not-a-key-of-ours"})
    refused = _me(engine, forged)
    assert refused.status_code == 401 and "unknown key" in refused.json()["message"]
    # the next key's id, signed by another key: the signature fails
    following = engine.http.get("/.well-known/jwks.json").json()["keys"][1]["kid"]
    posing = jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": following})
    refused = _me(engine, posing)
    assert refused.status_code == 401 and "signature" in refused.json()["message"].lower()


def test_a_store_listing_no_key_still_verifies_what_the_engine_signs(engine: Engine) -> None:
    """With no generation in the store (its table made again by a migration, or not yet written), tokens are
    signed with the data dir's own key, so that key verifies them; a stranger's key still does not."""
    from sqlalchemy import delete

    from twinengine.auth.models import SigningKey

    keyring = engine.runtime.issuer.keyring
    assert keyring is not None
    with engine.runtime.db.session() as session:
        session.execute(delete(SigningKey))
    keyring.generations(fresh=True)
    token = engine.token("uma", "user")
    assert jwt.get_unverified_header(token)["kid"] == keyring.root_kid
    assert _me(engine, token).status_code == 200
    stranger = ec.generate_private_key(ec.SECP256R1())
    claims = {"iss": engine.runtime.issuer.issuer, "sub": "admin", "role": "admin", "jti": "y" * 32, "iat": 1}
    forged = jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": keyring.root_kid})
    assert _me(engine, forged).status_code == 401


def test_two_engines_sharing_a_data_dir_follow_a_rotation(settings: Settings) -> None:
    env = {"TWIN_DATABASE_URL": settings.database_url} if settings.database_url else {}
    ports = [free_port(), free_port()]
    with serve_engine(settings.data_dir, ports[0], **env), serve_engine(settings.data_dir, ports[1], **env):
        root = admin_token(settings)
        a, b = (Client(f"http://127.0.0.1:{p}", root) for p in ports)
        try:
            issued = a.create_token("alice", "user", expires_in="1d")
            forever = a.create_token("eve", "user", expires_in="never")
            assert Client(b.url, issued.token).me().name == "alice"
            keys = a.access.rotate_keys()
            now = next(k.kid for k in keys if k.state == "current")
            # a token of the retired key, with an expiry, is still good on the other engine
            assert Client(b.url, issued.token).me().name == "alice"
            fresh = a.create_token("carol", "user", expires_in="1d")
            assert _kid(fresh.token) == now and Client(b.url, fresh.token).me().name == "carol"
            # the other engine signs with the new key and publishes the new pair within its refresh
            eventually(lambda: _kid(b.create_token("dan", "user", expires_in="1h").token) == now, timeout=20,
                       interval=0.5)
            assert eventually(lambda: b.access.jwks() == a.access.jwks(), timeout=20, interval=0.5)

            def refused_on_b() -> bool:
                try:
                    Client(b.url, forever.token).me()
                except TokenInvalid as exc:
                    return "retired key" in exc.message
                return False

            eventually(refused_on_b, timeout=20, interval=0.5)
            with pytest.raises(TokenInvalid, match="retired key"):
                Client(a.url, forever.token).me()
        finally:
            a.close()
            b.close()


def test_rotation_needs_the_next_key_in_the_data_dir(engine: Engine, tmp_path: Path) -> None:
    """An engine without the next key's private half (another host's data dir) refuses to rotate, saying why."""
    keyring = engine.runtime.issuer.keyring
    assert keyring is not None
    following = next(g for g in keyring.generations(fresh=True).values() if g.state == "next")
    (keyring.key_dir / f"{following.kid}.pem").rename(tmp_path / "moved.pem")
    keyring._private.pop(following.kid, None)
    refused = engine.http.post("/api/v1/signing-keys/rotate", headers=engine.headers(engine.admin_token))
    assert refused.status_code == 409 and "no private key" in refused.json()["message"]
