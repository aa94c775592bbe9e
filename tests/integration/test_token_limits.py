"""A token limited to some twins reaches nothing of another twin, whatever it is (the twin, its subscriptions with
their webhook target and deliveries, its runs), and no listing shows it; the policy judges everything that
names a twin, not route by route. A token exchanged for a site carries its limits in its claims."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from helpers import Engine, make_app
from twinengine.config import Settings
from twinengine.delegation.exchange import ACCESS_TOKEN, GRANT_TYPE
from twinengine.lake.models import Endpoint

HOOK = "http://127.0.0.1:9/secret-receiver"  # never reached: the condition below never holds


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, warm_routes=False,
                    subscription_webhook_hosts=["127.0.0.1"])


def _call(engine: Engine, token: str, method: str, path: str, body: Any = None) -> Any:
    return engine.http.request(method, path, json=body, headers=engine.headers(token))


def _twins(engine: Engine, tmp_path: Path, owner: str) -> None:
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="limits-app"))
    uma = engine.as_role(owner, "user")
    for name in ("sa", "sb"):
        uma.create_twin("limits-app@1.0.0", name, {"station": "ST-01"})


def test_a_token_limited_to_one_twin_reaches_no_subscription_of_another(engine: Engine, tmp_path: Path) -> None:
    _twins(engine, tmp_path, "uma")
    uma = engine.token("uma", "user")
    subs = {}
    for twin in ("sa", "sb"):
        made = _call(engine, uma, "POST", "/api/v1/subscriptions", {"twin": twin, "when": "level > 99",
                                                                     "webhook": f"{HOOK}/{twin}"})
        assert made.status_code == 201, made.text
        subs[twin] = made.json()["id"]
    made = _call(engine, uma, "POST", "/api/v1/me/tokens", {"scopes": ["subscriptions:manage"], "twins": ["sa"],
                                                            "expires_in": "1d"})
    assert made.status_code == 201, made.text
    scoped = made.json()["token"]
    assert _call(engine, scoped, "GET", "/api/v1/twins/sb").status_code == 403

    listed = _call(engine, scoped, "GET", "/api/v1/subscriptions")
    assert listed.status_code == 200 and [s["id"] for s in listed.json()["items"]] == [subs["sa"]], listed.text
    assert f"{HOOK}/sb" not in listed.text
    assert _call(engine, scoped, "GET", "/api/v1/subscriptions?twin=sb").json()["items"] == []
    for method, path in (("GET", ""), ("POST", "/test"), ("DELETE", "")):
        refused = _call(engine, scoped, method, f"/api/v1/subscriptions/{subs['sb']}{path}")
        assert refused.status_code == 404, (method, path, refused.text)
        assert f"{HOOK}/sb" not in refused.text
    assert _call(engine, uma, "GET", f"/api/v1/subscriptions/{subs['sb']}").status_code == 200  # still there
    created = _call(engine, scoped, "POST", "/api/v1/subscriptions", {"twin": "sb", "when": "level > 99",
                                                                      "webhook": f"{HOOK}/more"})
    assert created.status_code == 403, created.text

    shown = _call(engine, scoped, "GET", f"/api/v1/subscriptions/{subs['sa']}")  # its own twin's: as before
    assert shown.status_code == 200 and shown.json()["target"] == f"{HOOK}/sa"
    assert _call(engine, scoped, "DELETE", f"/api/v1/subscriptions/{subs['sa']}").status_code == 204


def test_a_twin_made_later_under_the_tokens_twin_name_is_another_twin(engine: Engine, tmp_path: Path) -> None:
    _twins(engine, tmp_path, "uma")
    uma = engine.token("uma", "user")
    made = _call(engine, uma, "POST", "/api/v1/me/tokens", {"scopes": ["twins:read"], "twins": ["sa"],
                                                            "expires_in": "1d"})
    reader = made.json()["token"]
    assert _call(engine, reader, "GET", "/api/v1/twins/sa").status_code == 200
    assert _call(engine, uma, "DELETE", "/api/v1/twins/sa").status_code == 204
    engine.sdk(uma).create_twin("limits-app@1.0.0", "sa", {"station": "ST-02"})
    again = _call(engine, reader, "GET", "/api/v1/twins/sa")
    assert again.status_code == 403 and "limited to twins sa" in again.json()["message"], again.text
    assert _call(engine, reader, "GET", "/api/v1/twins").json()["items"] == []  # nor is it listed


def test_an_exchanged_token_says_its_limits_and_ends_with_its_subject(engine: Engine, tmp_path: Path) -> None:
    _twins(engine, tmp_path, "uma")
    with engine.runtime.db.session() as session:
        session.add(Endpoint(name="site-x", protocol="file", location=str(tmp_path / "site-x"), created_by="admin"))
    subject = engine.token("uma", "user", ttl=timedelta(minutes=5))
    answer = engine.http.post("/api/v1/oauth/token", data={
        "grant_type": GRANT_TYPE, "subject_token": subject, "subject_token_type": ACCESS_TOKEN,
        "audience": "lake:site-x", "scope": "lake:read twins:read", "resource": "sa", "expires_in": "1h"})
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert claims["scope"] == "lake:read twins:read" and claims["twins"] == ["sa"] and claims["aud"] == "lake:site-x"
    assert claims["exp"] <= jwt.decode(subject, options={"verify_signature": False})["exp"]
    assert answer.json()["expires_in"] <= 300
