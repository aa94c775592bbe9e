"""A person the OpenID provider suspends or forgets loses access: a token flagging them suspended
(``disabled_claim``) disables their identity at once, which refuses their older tokens too and revokes the
engine tokens made from their sign-ins; others are untouched. A person the provider forgot cannot renew a
sign-in. (This provider cannot introspect its JWT access tokens, so the introspection path is checked in
tests/unit/test_oidc_liveness.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx2 as httpx
import pytest

from helpers import stop_process
from oidc_fixtures import LoopbackProvider, served, start_provider
from twinengine.config import Settings


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackProvider]:
    """A provider of this module's own: the test removes a person from it."""
    started = start_provider(tmp_path_factory.mktemp("liveness-provider"))
    try:
        yield started
    finally:
        stop_process(started.process, timeout=10)


@pytest.fixture(scope="module")
def engine_url(tmp_path_factory: pytest.TempPathFactory, provider: LoopbackProvider) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("liveness") / "data", warm_routes=False,
                        token_recheck=timedelta(0),
                        oidc_providers=[provider.settings("loop", recheck_s=0, disabled_claim="account_disabled")])
    with served(settings) as url:
        yield url


def _me(url: str, bearer: str) -> httpx.Response:
    return httpx.get(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {bearer}"}, timeout=30)


def _refresh(provider: LoopbackProvider, tokens: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{provider.issuer}/token", data={"grant_type": "refresh_token", "client_id": "twinengine-cli",
                                                         "refresh_token": tokens["refresh_token"]}, timeout=30)


def test_a_person_the_provider_suspends_or_forgets_loses_access(engine_url: str,
                                                               provider: LoopbackProvider) -> None:
    alice = provider.device_tokens("alice")
    carol = provider.device_tokens("carol")
    alice_bearer, carol_bearer = f"oidc/loop/{alice['access_token']}", f"oidc/loop/{carol['access_token']}"
    assert _me(engine_url, alice_bearer).json()["name"] == "loop.alice"
    assert "hydro" in _me(engine_url, carol_bearer).json()["groups"]
    made = httpx.post(f"{engine_url}/api/v1/me/tokens", headers={"Authorization": f"Bearer {alice_bearer}"},
                      json={"scopes": ["twins:read"], "expires_in": "1d"}, timeout=30)
    assert made.status_code in (200, 201), made.text
    scoped = made.json()["token"]
    assert _me(engine_url, scoped).status_code == 200

    provider.suspend("alice")  # the provider's admin suspends her; her next token says so
    renewed = _refresh(provider, alice)
    assert renewed.status_code == 200, renewed.text
    refused = _me(engine_url, f"oidc/loop/{renewed.json()['access_token']}")
    assert refused.status_code == 401 and "no longer vouches" in refused.text, refused.text
    assert _me(engine_url, alice_bearer).status_code == 401  # her older token stops with it
    assert _me(engine_url, scoped).status_code == 401  # and what she made from her sign-ins
    assert _me(engine_url, carol_bearer).status_code == 200  # nobody else is touched

    provider.forget("carol")  # forgotten: the provider renews nothing for her
    gone = _refresh(provider, carol)
    assert gone.status_code == 400 and gone.json()["error"] == "invalid_grant"
