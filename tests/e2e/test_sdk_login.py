"""The SDK signs in as ``twin login`` does, through a real OpenID provider on loopback: ``Client.login()`` runs the
device flow, keeps the tokens where ``twin login`` keeps them and shares them with it; a service signs in with
``Client.from_client_credentials`` and no person at all."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from oidc_fixtures import SERVICE_CLIENT, SERVICE_SECRET, LoopbackProvider, engine_url, oidc_provider
from twinengine import credentials
from twinengine.client import Client
from twinengine.errors import InvalidInput, TokenInvalid

__all__ = ["engine_url", "oidc_provider"]



@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("TWIN_TOKEN", raising=False)
    return tmp_path / "config"


def test_login_runs_the_device_flow_once_and_shares_the_kept_sign_in(
        engine_url: str, oidc_provider: LoopbackProvider, home: Path) -> None:
    shown: list[tuple[str, str]] = []

    def approve(verification_uri: str, user_code: str, complete: str | None) -> None:
        shown.append((verification_uri, user_code))
        oidc_provider.approve_device(verification_uri, user_code, "alice")  # the person, in their browser

    with Client.login(engine_url, provider="loop", show=approve) as client:
        me = client.me()
    assert (me.name, me.role.value) == ("loop.alice", "user") and {"example-vo", "hydro"} <= set(me.groups)
    assert len(shown) == 1
    path = credentials.credentials_path()
    assert path.parent.parent == home and stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = credentials.load(engine_url)
    assert saved is not None and saved.refresh_token and saved.provider == "loop"

    saved.expires_at = 0  # due: the next request renews it with the refresh token, as `twin` would
    credentials.save(saved)

    def refuse(*_: object) -> None:
        raise AssertionError("a kept sign-in needs no new device flow")

    with Client.login(engine_url, show=refuse) as again:
        assert again.me().name == "loop.alice"
    renewed = credentials.load(engine_url)
    assert renewed is not None and renewed.access_token != saved.access_token
    assert credentials.bearer(engine_url) == renewed.bearer()  # what `twin` commands use


def test_a_refused_refresh_drops_the_kept_sign_in(engine_url: str, oidc_provider: LoopbackProvider,
                                                  home: Path) -> None:
    with Client.login(engine_url, show=lambda u, c, _: oidc_provider.approve_device(u, c, "carol")) as client:
        assert client.me().name == "loop.carol"
    saved = credentials.load(engine_url)
    assert saved is not None
    saved.expires_at, saved.refresh_token = 0, "not-a-refresh-token"
    credentials.save(saved)
    with pytest.raises(TokenInvalid, match="refused to renew"):
        credentials.bearer(engine_url)
    assert credentials.load(engine_url) is None


def test_a_service_signs_in_with_client_credentials(engine_url: str, home: Path) -> None:
    with Client.from_client_credentials(engine_url, SERVICE_CLIENT, SERVICE_SECRET, provider="loop") as service:
        me = service.me()
        assert (me.name, me.role.value, me.groups) == (f"loop.{SERVICE_CLIENT}", "user", [])
        service.list_twins()
    assert not credentials.credentials_path().exists()  # a service's secret and tokens are never written
    with pytest.raises(TokenInvalid, match="refused the client credentials"):
        Client.from_client_credentials(engine_url, SERVICE_CLIENT, "wrong", provider="loop").me()
    with pytest.raises(InvalidInput, match="--provider"):
        Client.from_client_credentials(engine_url, SERVICE_CLIENT, SERVICE_SECRET, provider="nope")
    assert os.environ.get("TWIN_TOKEN") is None
