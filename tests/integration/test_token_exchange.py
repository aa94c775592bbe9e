"""Token exchange (RFC 8693): a short-lived token for one site, limited like a scoped token, verifiable with
the engine's JWKS at that site and refused by the engine itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest

from helpers import Engine
from twinengine.delegation.exchange import ACCESS_TOKEN, GRANT_TYPE
from twinengine.lake.models import Endpoint


@pytest.fixture
def site(engine: Engine) -> str:
    with engine.runtime.db.session() as session:
        session.add(Endpoint(name="site-x", protocol="file", location="/tmp/site-x", created_by="admin"))
    return "lake:site-x"


def _form(subject: str, **fields: str) -> dict[str, str]:
    return {"grant_type": GRANT_TYPE, "subject_token": subject, "subject_token_type": ACCESS_TOKEN,
            "audience": "lake:site-x", "scope": "lake:read", **fields}


def _exchange(engine: Engine, body: dict[str, Any], *, as_json: bool = False) -> Any:
    if as_json:
        return engine.http.post("/api/v1/oauth/token", json=body)
    return engine.http.post("/api/v1/oauth/token", data=body)


def test_a_token_exchanged_for_a_site_is_good_there_and_not_here(engine: Engine, site: str) -> None:
    alice = engine.token("alice", "user", ttl=timedelta(days=1))
    answer = _exchange(engine, _form(alice, expires_in="10m"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["issued_token_type"] == ACCESS_TOKEN and body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 600 and body["scope"] == "lake:read"
    # the site checks it with the published keys, its own audience and the issuer
    keys = jwt.PyJWKSet.from_dict(engine.http.get("/.well-known/jwks.json").json())
    kid = jwt.get_unverified_header(body["access_token"])["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    claims = jwt.decode(body["access_token"], key.key, algorithms=["ES256"], audience=site,
                        issuer=engine.runtime.issuer.issuer)
    assert claims["sub"] == "alice" and claims["aud"] == site
    refused = engine.http.get("/api/v1/me", headers=engine.headers(body["access_token"]))
    assert refused.status_code == 401 and "audience 'lake:site-x'" in refused.json()["message"]
    mine = engine.http.get("/api/v1/me/tokens", headers=engine.headers(alice)).json()
    assert any(t["audience"] == site and t["scopes"] == ["lake:read"] for t in mine)
    as_json = _exchange(engine, _form(alice), as_json=True)
    assert as_json.status_code == 200 and as_json.json()["expires_in"] <= 900  # 15 min unless asked


@pytest.mark.parametrize(("change", "status", "names"), [
    ({"grant_type": "password"}, 422, "grant_type"),
    ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, 422, "subject_token_type"),
    ({"audience": "lake:nowhere"}, 422, "nowhere"),
    ({"audience": "elsewhere"}, 422, "audience"),
    ({"scope": "twins:fly"}, 422, "twins:fly"),
    ({"scope": "apps:publish"}, 403, "apps:publish"),
    ({"subject_token": "not-a-token"}, 401, "JWT"),
    ({"expires_in": "soon"}, 422, "expires_in"),
])
def test_bad_exchanges_are_refused_naming_why(engine: Engine, site: str, change: dict[str, str], status: int,
                                              names: str) -> None:
    answer = _exchange(engine, {**_form(engine.token("alice", "user")), **change})
    assert answer.status_code == status, answer.text
    assert names in answer.text


def test_an_exchanged_token_cannot_be_exchanged_again(engine: Engine, site: str) -> None:
    first = _exchange(engine, _form(engine.token("alice", "user"))).json()["access_token"]
    again = _exchange(engine, _form(first))
    assert again.status_code == 401 and "audience" in again.json()["message"]
    missing = engine.http.post("/api/v1/oauth/token", data={"grant_type": GRANT_TYPE})
    assert missing.status_code == 422 and "subject_token" in missing.text
