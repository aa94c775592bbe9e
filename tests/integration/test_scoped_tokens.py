"""Scoped tokens: limited to scopes, twins and a lifetime, never more than their creator, listed and revoked by
their owner; each refusal says why."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from helpers import Engine, make_app
from twinengine.auth.policy import RULES
from twinengine.auth.principal import Principal, Role
from twinengine.auth.scopes import SCOPES
from twinengine.delegation.scoped_tokens import issue_scoped_token


class Caller:
    def __init__(self, engine: Engine, token: str) -> None:
        self.engine, self.token, self.auth = engine, token, engine.headers(token)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self.engine.http.request(method, path, json=body, headers=self.auth)

    def scoped(self, body: dict[str, Any]) -> Any:
        return self.call("POST", "/api/v1/me/tokens", body)

    def as_scoped(self, body: dict[str, Any]) -> Caller:
        made = self.scoped(body)
        assert made.status_code == 201, made.text
        return Caller(self.engine, made.json()["token"])


def _write(caller: Caller, twin: str) -> Any:
    return caller.call("PATCH", f"/api/v1/twins/{twin}/state", {"reported": {"level": {"value": 1.0}}})


@pytest.fixture
def alice(engine: Engine, tmp_path: Path) -> Caller:
    engine.as_role("dev", "developer").publish_app(make_app(tmp_path, name="scope-app"))
    caller = Caller(engine, engine.token("alice", "user", ttl=timedelta(days=30)))
    for name in ("demo-reach", "other-reach"):
        made = caller.call("POST", "/api/v1/twins", {"app": "scope-app", "name": name,
                                                     "parameters": {"station": "ST-01"}})
        assert made.status_code == 201, made.text
    return caller


def test_every_scope_names_actions_of_the_policy() -> None:
    assert all(actions <= set(RULES) for actions in SCOPES.values())
    forbidden = {a for a in RULES if a.startswith(("token.", "identity.", "group.", "audit."))}
    assert not forbidden & {a for actions in SCOPES.values() for a in actions}


def test_a_scoped_token_stays_within_its_scope_twins_and_time(alice: Caller) -> None:
    made = alice.scoped({"scopes": ["twins:read"], "twins": ["demo-reach"], "expires_in": "7d"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["scopes"] == ["twins:read"] and body["twins"] == ["demo-reach"] and body["role"] == "user"
    reader = Caller(alice.engine, body["token"])
    assert reader.call("GET", "/api/v1/twins/demo-reach").status_code == 200
    assert reader.call("GET", "/api/v1/twins/demo-reach/state").status_code == 200
    assert [t["name"] for t in reader.call("GET", "/api/v1/twins").json()["items"]] == ["demo-reach"]
    outside = reader.call("GET", "/api/v1/twins/other-reach")
    assert outside.status_code == 403 and "limited to twins demo-reach" in outside.json()["message"]
    written = _write(reader, "demo-reach")
    assert written.status_code == 403
    assert "scopes (twins:read) do not allow twin.operate" in written.json()["message"]
    assert _write(alice, "demo-reach").status_code == 200  # the creator's own token is untouched
    # nor can it make tokens, nor open a portal session that would carry no limits
    again = reader.scoped({"scopes": ["twins:read"], "expires_in": "1d"})
    assert again.status_code == 403 and "token.own" in again.json()["message"]
    session = alice.engine.http.post("/api/v1/session", json={"token": reader.token})
    assert session.status_code == 400 and "scoped token" in session.json()["message"]


def test_an_operate_token_writes_only_its_twin(alice: Caller) -> None:
    operator = alice.as_scoped({"scopes": ["twins:operate"], "twins": ["demo-reach"], "expires_in": "1h"})
    assert _write(operator, "demo-reach").status_code == 200
    assert _write(operator, "other-reach").status_code == 403
    assert operator.call("DELETE", "/api/v1/twins/demo-reach").status_code == 403  # twin.manage is no scope of it


def test_a_scoped_token_asks_for_no_more_than_its_creator(engine: Engine, alice: Caller) -> None:
    bob = Caller(engine, engine.token("bob", "user"))
    assert alice.call("PUT", "/api/v1/twins/demo-reach/grants/bob", {"permission": "read"}).status_code == 200
    more = bob.scoped({"scopes": ["twins:operate"], "twins": ["demo-reach"], "expires_in": "1d"})
    assert more.status_code == 403 and "never does more than its creator" in more.json()["message"]
    role = bob.scoped({"scopes": ["apps:publish"], "expires_in": "1d"})
    assert role.status_code == 403 and "role user" in role.json()["message"]
    unseen = bob.scoped({"scopes": ["twins:read"], "twins": ["other-reach"], "expires_in": "1d"})
    assert unseen.status_code == 403
    unknown = bob.scoped({"scopes": ["twins:fly"], "expires_in": "1d"})
    assert unknown.status_code == 422 and "twins:fly" in unknown.json()["message"]
    forever = bob.scoped({"scopes": ["twins:read"], "expires_in": "never"})
    assert forever.status_code == 422 and "must expire" in forever.json()["message"]
    assert bob.scoped({"scopes": [], "expires_in": "1d"}).status_code == 422


def test_a_scoped_token_loses_what_its_creator_loses(engine: Engine, alice: Caller) -> None:
    bob = Caller(engine, engine.token("bob", "user"))
    assert alice.call("PUT", "/api/v1/twins/demo-reach/grants/bob", {"permission": "read"}).status_code == 200
    reader = bob.as_scoped({"scopes": ["twins:read"], "twins": ["demo-reach"], "expires_in": "1d"})
    assert reader.call("GET", "/api/v1/twins/demo-reach").status_code == 200
    assert alice.call("DELETE", "/api/v1/twins/demo-reach/grants/bob").status_code == 204
    assert reader.call("GET", "/api/v1/twins/demo-reach").status_code == 403
    # and it dies with the token it was made with
    other = alice.as_scoped({"scopes": ["twins:read"], "expires_in": "1d"})
    parent = alice.call("GET", "/api/v1/me/tokens").json()
    parent_jti = next(t["parent_jti"] for t in parent if t["scopes"] == ["twins:read"])
    assert alice.engine.http.delete(f"/api/v1/tokens/{parent_jti}",
                                    headers=engine.headers(engine.admin_token)).status_code == 200
    engine.runtime.verdicts.forget()
    refused = other.call("GET", "/api/v1/twins/demo-reach")
    assert refused.status_code == 401 and "was made with" in refused.json()["message"]


def test_a_scoped_token_is_refused_after_its_time(engine: Engine, alice: Caller) -> None:
    principal = Principal(name="alice", role=Role.USER, issuer=engine.runtime.issuer.issuer)
    with engine.runtime.db.session() as session:
        signed = issue_scoped_token(session, engine.runtime.issuer, principal=principal, scopes=["twins:read"],
                                    twins=["demo-reach"], ttl=timedelta(seconds=4))
    brief = Caller(engine, signed.token)
    # exp is in whole seconds, so the token lives 3 to 4 s: room for the first call on a loaded host
    assert brief.call("GET", "/api/v1/twins/demo-reach").status_code == 200
    assert signed.expires_at is not None
    time.sleep(max(0.0, int(signed.expires_at.timestamp()) + 1.1 - time.time()))
    refused = brief.call("GET", "/api/v1/twins/demo-reach")
    assert refused.status_code == 401 and "expired" in refused.json()["message"]


def test_admins_scoped_tokens_are_limited_too(engine: Engine, alice: Caller) -> None:
    admin = Caller(engine, engine.admin_token)
    reader = admin.as_scoped({"scopes": ["twins:read"], "expires_in": "1h"})
    assert reader.call("GET", "/api/v1/twins/demo-reach").status_code == 200
    assert _write(reader, "demo-reach").status_code == 403
    assert reader.call("GET", "/api/v1/identities").status_code == 403


def test_owners_list_and_revoke_their_own_tokens(engine: Engine, alice: Caller) -> None:
    scoped = alice.as_scoped({"scopes": ["lake:read"], "expires_in": "2h", "note": "ci"})
    mine = alice.call("GET", "/api/v1/me/tokens").json()
    row = next(t for t in mine if t["note"] == "ci")
    assert row["scopes"] == ["lake:read"] and row["twins"] is None and row["identity"] == "alice"
    bob = Caller(engine, engine.token("bob", "user"))
    assert all(t["identity"] == "bob" for t in bob.call("GET", "/api/v1/me/tokens").json())
    assert bob.call("DELETE", f"/api/v1/me/tokens/{row['jti']}").status_code == 404
    assert bob.call("GET", "/api/v1/tokens").status_code == 403  # everyone's: admins only, as before
    revoked = alice.call("DELETE", f"/api/v1/me/tokens/{row['jti']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = scoped.call("GET", "/api/v1/twins")
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]
