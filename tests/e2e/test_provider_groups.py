"""A person the OpenID provider removes from a group loses the group's twins at the engine's next recheck of
their token, not at their next token: the engine introspects the token every ``recheck_s`` seconds and the
groups the provider tells now replace those the token was issued with. The provider (panva's oidc-provider on
loopback) issues opaque access tokens here, which it introspects; nothing is faked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers import Engine, make_app, stop_process
from oidc_fixtures import LoopbackProvider, start_provider
from twinengine.api import create_app
from twinengine.auth.groups import groups_of
from twinengine.config import Settings
from twinengine.runtime import Runtime

pytestmark = pytest.mark.every_store  # the store itself, its concurrency, or engines in several processes: both stores

RECHECK_S = 1
PATIENCE_S = 60  # the removal must show within this; it shows after about RECHECK_S


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackProvider]:
    """A provider of this module's own (the test changes a person's groups there), with opaque tokens."""
    started = start_provider(tmp_path_factory.mktemp("groups-provider"), access_token_format="opaque")
    try:
        yield started
    finally:
        stop_process(started.process, timeout=10)


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, provider: LoopbackProvider) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, warm_routes=False,
                    oidc_providers=[provider.settings("loop", recheck_s=RECHECK_S)])


def _bearer(provider: LoopbackProvider, login: str) -> dict[str, str]:
    return {"Authorization": f"Bearer oidc/loop/{provider.device_tokens(login)['access_token']}"}


def test_removed_from_a_group_at_the_provider_loses_its_twins_within_seconds(
        engine: Engine, provider: LoopbackProvider, tmp_path: Path) -> None:
    engine.as_role("dev", "developer").publish_app(make_app(tmp_path, name="grp-app"))
    alice, carol = _bearer(provider, "alice"), _bearer(provider, "carol")
    assert "." not in alice["Authorization"].removeprefix("Bearer oidc/loop/")  # opaque, not a JWT
    made = engine.http.post("/api/v1/twins", headers=alice, json={
        "app": "grp-app", "name": "hydro-reach", "parameters": {"station": "ST-01"}, "group": "hydro"})
    assert made.status_code == 201, made.text
    seen = engine.http.get("/api/v1/twins/hydro-reach", headers=carol)
    assert seen.status_code == 200 and seen.json()["access"] == "owner", seen.text

    provider.set_groups("carol", [])  # the provider's admin takes her out of hydrology; her token is unchanged
    removed = time.monotonic()
    deadline = removed + PATIENCE_S
    while (answer := engine.http.get("/api/v1/twins/hydro-reach", headers=carol)).status_code == 200:
        assert time.monotonic() < deadline, "still a member after the provider removed her"
        time.sleep(0.2)
    print(f"removed at the provider: refused {time.monotonic() - removed:.1f} s later (recheck_s = {RECHECK_S})")
    assert answer.status_code == 403 and "twin.read" in answer.json()["message"], answer.text
    assert engine.http.get("/api/v1/twins", headers=carol).json()["total"] == 0
    assert "hydro" not in engine.http.get("/api/v1/me", headers=carol).json()["groups"]
    with engine.runtime.db.session(readonly=True) as session:
        assert "hydro" not in groups_of(session, "loop.carol") and "hydro" in groups_of(session, "loop.alice")
    assert engine.http.get("/api/v1/twins/hydro-reach", headers=alice).status_code == 200  # others untouched

    provider.set_groups("carol", ["hydrology"])  # and back in: access returns the same way
    deadline = time.monotonic() + PATIENCE_S
    while (answer := engine.http.get("/api/v1/twins/hydro-reach", headers=carol)).status_code != 200:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)


def test_an_opaque_token_is_only_what_the_provider_says_it_is(engine: Engine, provider: LoopbackProvider) -> None:
    made_up = engine.http.get("/api/v1/me", headers={"Authorization": "Bearer oidc/loop/not-a-token-of-anyone"})
    assert made_up.status_code == 401 and "not active" in made_up.json()["message"], made_up.text
    unprefixed = engine.http.get("/api/v1/me", headers={"Authorization": "Bearer not-a-token-of-anyone"})
    assert unprefixed.status_code == 401 and "not a valid JWT" in unprefixed.json()["message"]
    me = engine.http.get("/api/v1/me", headers=_bearer(provider, "alice"))
    assert me.status_code == 200 and me.json()["name"] == "loop.alice", me.text


def test_an_opaque_token_for_another_audience_is_refused(tmp_path: Path, provider: LoopbackProvider) -> None:
    settings = Settings(data_dir=tmp_path / "data", warm_routes=False,
                        oidc_providers=[provider.settings("loop", recheck_s=RECHECK_S, audience="another-service")])
    runtime = Runtime.from_settings(settings)
    try:
        with TestClient(create_app(runtime=runtime)) as http:
            refused = http.get("/api/v1/me", headers=_bearer(provider, "alice"))
    finally:
        runtime.close()
    assert refused.status_code == 401 and "not for audience 'another-service'" in refused.json()["message"], \
        refused.text
