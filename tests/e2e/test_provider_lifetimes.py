"""What the engine makes from a person's sign-in at an OpenID provider ends with it, and what the provider says of
the person reaches everything done in their name, without locking anyone out: a scoped, an exchanged token and a
portal session made from a provider's access token end when it does; a token the provider ended (its holder
signed out, a refresh token was replayed, the person removed) is refused, what was made from it revoked, and
the person held (tokens, sessions, standing triggers) until the provider vouches for them again, which their
next sign-in does. The provider is panva's oidc-provider on loopback, answering introspection about its JWT
access tokens as Keycloak does; nothing is faked."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx2 as httpx
import jwt
import pytest

from helpers import LiveEngine, admin_token, make_app, stop_process
from oidc_fixtures import CLI_CLIENT, PEOPLE, LoopbackProvider, served, start_provider
from twinengine.config import Settings
from twinengine.delegation.exchange import ACCESS_TOKEN, GRANT_TYPE
from twinengine.lake.models import Endpoint
from twinengine.store.engine import Database

HYDRO = {"groups": ["hydrology"], "eduperson_entitlement": []}
PEOPLE_HERE = {**PEOPLE, **{who: {"name": who.title(), "email": f"{who}@example.org", **HYDRO}
                            for who in ("dora", "eve", "fay", "gus", "hal")}}
GRAPH = '{"process_graph": {"a": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": true}}}'


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackProvider]:
    started = start_provider(tmp_path_factory.mktemp("lifetimes-provider"), people=PEOPLE_HERE, introspect_jwt=True)
    try:
        yield started
    finally:
        stop_process(started.process, timeout=10)


@pytest.fixture(scope="module")
def brief(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackProvider]:
    """A provider whose access tokens live 3 s (no introspection): what is made from them is seen to end."""
    started = start_provider(tmp_path_factory.mktemp("brief-provider"), people=PEOPLE_HERE, access_token_ttl=3)
    try:
        yield started
    finally:
        stop_process(started.process, timeout=10)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, provider: LoopbackProvider,
         brief: LoopbackProvider) -> Iterator[LiveEngine]:
    root = tmp_path_factory.mktemp("lifetimes")
    settings = Settings(data_dir=root / "data", warm_routes=False, token_recheck=0,
                        oidc_providers=[provider.settings("loop", recheck_s=0, disabled_claim="account_disabled"),
                                        brief.settings("brief", recheck_s=None)])
    with served(settings) as url:
        engine = LiveEngine(url=url, admin_token=admin_token(settings), settings=settings)
        dev = _call(engine, engine.admin_token, "POST", "/api/v1/tokens", json={"name": "dev", "role": "developer"})
        engine.client(dev.json()["token"]).publish_app(make_app(
            root, name="life-app", manifest={"workflows": {"sum": {"process_graph": "sum.json"}}},
            files={"sum.json": GRAPH}))
        db = Database(settings.db_url)
        with db.session() as session:
            session.add(Endpoint(name="site-x", protocol="file", location=str(root / "site-x"), created_by="admin"))
        db.dispose()
        yield engine


def _call(engine: LiveEngine, bearer: str, method: str = "GET", path: str = "/api/v1/me", **kwargs: Any) -> Any:
    return httpx.request(method, f"{engine.url}{path}", headers={"Authorization": f"Bearer {bearer}"}, timeout=60,
                         **kwargs)


def _exp(token: str) -> int:
    return int(jwt.decode(token.rpartition("/")[2], options={"verify_signature": False})["exp"])


def _identity(engine: LiveEngine, name: str) -> dict[str, Any]:
    rows = _call(engine, engine.admin_token, path="/api/v1/identities").json()
    return next(r for r in rows if r["name"] == name)


def _twin(engine: LiveEngine, bearer: str, name: str, group: str | None = None) -> None:
    made = _call(engine, bearer, "POST", "/api/v1/twins", json={"app": "life-app", "name": name, "group": group,
                                                                "parameters": {"station": "ST-01"}})
    assert made.status_code == 201, made.text


def test_what_is_made_from_a_provider_token_ends_with_it(live: LiveEngine, provider: LoopbackProvider) -> None:
    dora = f"oidc/loop/{provider.device_tokens('dora')['access_token']}"
    ends = _exp(dora)
    _twin(live, dora, "reach-vox", group="hydro")
    said = live.twin("--json", "token", "create", "--scope", "twins:read", "--twin", "reach-vox", "--expires", "365d",
                     token=dora)
    assert "not in 365d: a token never outlives the one it is made with" in said  # the CLI says so (stderr)
    issued = json.loads(said[said.index("{"):])
    assert datetime.fromisoformat(issued["expires_at"]).timestamp() <= ends and _exp(issued["token"]) <= ends
    assert _call(live, issued["token"], path="/api/v1/twins/reach-vox").status_code == 200
    exchanged = httpx.post(f"{live.url}/api/v1/oauth/token", timeout=60, data={
        "grant_type": GRANT_TYPE, "subject_token": dora, "subject_token_type": ACCESS_TOKEN,
        "audience": "lake:site-x", "scope": "lake:read", "expires_in": "1h"})
    assert exchanged.status_code == 200, exchanged.text
    assert _exp(exchanged.json()["access_token"]) <= ends and exchanged.json()["expires_in"] <= ends - time.time() + 1
    session = httpx.post(f"{live.url}/api/v1/session", json={"token": dora}, timeout=60)
    assert session.status_code == 201 and datetime.fromisoformat(session.json()["expires_at"]).timestamp() <= ends


def test_a_token_made_from_a_brief_sign_in_stops_with_it(live: LiveEngine, brief: LoopbackProvider) -> None:
    """A 365-day token asked for with a 3 s provider token: refused once the provider token has expired, though
    the provider was never asked again (the person suspended there meanwhile, say)."""
    hal = f"oidc/brief/{brief.device_tokens('hal')['access_token']}"
    made = _call(live, hal, "POST", "/api/v1/me/tokens", json={"scopes": ["twins:read"], "expires_in": "365d"})
    assert made.status_code == 201, made.text
    brief.suspend("hal")
    time.sleep(max(0.0, _exp(hal) + 1.1 - time.time()))
    refused = _call(live, made.json()["token"], path="/api/v1/twins")
    assert refused.status_code == 401 and "expired" in refused.text, refused.text


def _revoke_at_provider(provider: LoopbackProvider, refresh_token: str) -> None:
    """What ``twin logout`` does at the provider (``credentials.forget``): its refresh token revoked."""
    revoked = httpx.post(f"{provider.issuer}/token/revocation", timeout=30, data={
        "token": refresh_token, "client_id": CLI_CLIENT, "token_type_hint": "refresh_token"})
    assert revoked.status_code == 200, revoked.text


def test_signing_out_refuses_the_old_token_and_locks_nobody_out(live: LiveEngine, provider: LoopbackProvider) -> None:
    first = provider.device_tokens("eve")
    old = f"oidc/loop/{first['access_token']}"
    assert _call(live, old).json()["name"] == "loop.eve"
    scoped = _call(live, old, "POST", "/api/v1/me/tokens", json={"scopes": ["twins:read"], "expires_in": "1d"})
    assert scoped.status_code == 201, scoped.text

    _revoke_at_provider(provider, first["refresh_token"])
    refused = _call(live, old)  # an SDK session still holding the token
    assert refused.status_code == 401 and "no longer vouches" in refused.text, refused.text
    assert _call(live, scoped.json()["token"]).status_code == 401  # made from it: ended with it

    again = _call(live, f"oidc/loop/{provider.device_tokens('eve')['access_token']}")  # `twin login` again
    assert again.status_code == 200 and again.json()["name"] == "loop.eve", again.text
    assert _identity(live, "loop.eve")["disabled"] is False
    assert _call(live, old).status_code == 401  # the old token stays refused
    assert _call(live, scoped.json()["token"]).status_code == 401  # and what was made from it stays revoked


def test_a_replayed_refresh_token_still_ends_the_grant_and_its_tokens(live: LiveEngine,
                                                                     provider: LoopbackProvider) -> None:
    first = provider.device_tokens("fay")
    renewed = httpx.post(f"{provider.issuer}/token", timeout=30, data={
        "grant_type": "refresh_token", "client_id": CLI_CLIENT, "refresh_token": first["refresh_token"]})
    assert renewed.status_code == 200, renewed.text
    thief = f"oidc/loop/{renewed.json()['access_token']}"
    assert _call(live, thief).status_code == 200
    made = _call(live, thief, "POST", "/api/v1/me/tokens", json={"scopes": ["twins:read"], "expires_in": "1d"})
    replayed = httpx.post(f"{provider.issuer}/token", timeout=30, data={
        "grant_type": "refresh_token", "client_id": CLI_CLIENT, "refresh_token": first["refresh_token"]})
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"  # the provider ends the grant
    assert _call(live, thief).status_code == 401
    assert _call(live, made.json()["token"]).status_code == 401
    held = _identity(live, "loop.fay")  # held until the provider vouches for her again: her standing work stops
    assert held["disabled"] is True and held["disabled_by"] == "provider:loop", held
    assert _call(live, f"oidc/loop/{provider.device_tokens('fay')['access_token']}").status_code == 200


def test_a_person_the_provider_removes_loses_every_credential_and_standing_trigger(
        live: LiveEngine, provider: LoopbackProvider) -> None:
    gus = f"oidc/loop/{provider.device_tokens('gus')['access_token']}"
    _twin(live, gus, "gus-reach")
    trigger = _call(live, gus, "POST", "/api/v1/twins/gus-reach/triggers",
                    json={"name": "on_call", "kind": "webhook", "workflow": "sum"})
    assert trigger.status_code == 201, trigger.text
    hook, secret = f"{live.url}/api/v1/hooks/{trigger.json()['id']}", trigger.json()["secret"]
    fired = httpx.post(hook, json={}, headers={"X-Twin-Trigger-Secret": secret}, timeout=60)
    assert fired.status_code == 202 and fired.json()["run_id"], fired.text
    opened = httpx.post(f"{live.url}/api/v1/session", json={"token": gus}, timeout=60)
    assert opened.status_code == 201, opened.text
    cookie = opened.cookies["twin_session"]

    provider.forget("gus")  # removed at the provider: it answers that his token is no longer active
    assert _call(live, gus).status_code == 401
    held = httpx.post(hook, json={}, headers={"X-Twin-Trigger-Secret": secret, "X-Twin-Delivery": "after"},
                      timeout=60)
    assert held.status_code == 202 and held.json()["run_id"] is None, held.text  # his trigger fires nothing
    portal = httpx.get(f"{live.url}/api/v1/me", cookies={"twin_session": cookie}, timeout=60)
    assert portal.status_code == 401, portal.text  # his portal session too
    assert _identity(live, "loop.gus")["disabled"] is True
