"""The official ``openeo`` client signs in unchanged through a real OpenID provider on loopback: the engine's
``/credentials/oidc`` names a default client with the device code + PKCE and refresh token grants, the client
runs the device flow (the code approved here as a person would in a browser), and later signs in again with the
refresh token it stored, without anyone at the provider."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import openeo
import pytest

from oidc_fixtures import CLI_CLIENT, LoopbackProvider, engine_url, oidc_provider

__all__ = ["engine_url", "oidc_provider"]



def approver(provider: LoopbackProvider, login: str, errors: list[BaseException]):  # type: ignore[no-untyped-def]
    """The ``display`` the client shows its instructions with: approve the code at once, on another thread
    (the client polls meanwhile)."""
    def display(message: str) -> None:
        found = re.search(r"(http://\S+/device\S*)", message)
        if found is None:
            return
        url = found.group(1)
        code = parse_qs(urlsplit(url).query).get("user_code", [""])[0]

        def approve() -> None:
            try:
                provider.approve_device(f"{provider.issuer}/device", code, login)
            except BaseException as exc:
                errors.append(exc)

        threading.Thread(target=approve, daemon=True).start()

    return display


def test_the_listing_names_a_default_client(engine_url: str, oidc_provider: LoopbackProvider) -> None:
    listed = httpx.get(f"{engine_url}/openeo/1.2/credentials/oidc").json()["providers"]
    assert listed[0]["id"] == "loop" and listed[0]["issuer"] == oidc_provider.issuer
    client = listed[0]["default_clients"][0]
    assert client["id"] == CLI_CLIENT
    assert {"urn:ietf:params:oauth:grant-type:device_code+pkce", "refresh_token"} <= set(client["grant_types"])


def test_device_flow_then_refresh_token(engine_url: str, oidc_provider: LoopbackProvider, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # where the client keeps its refresh tokens
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    errors: list[BaseException] = []
    con = openeo.connect(engine_url).authenticate_oidc_device(
        provider_id="loop", store_refresh_token=True, max_poll_time=60,
        display=approver(oidc_provider, "alice", errors))
    assert errors == []
    account = con.describe_account()
    assert account["user_id"] == "loop.alice" and account["info"]["role"] == "user"
    again = openeo.connect(engine_url).authenticate_oidc_refresh_token(provider_id="loop")
    assert again.describe_account()["user_id"] == "loop.alice"
    assert again.auth.bearer != con.auth.bearer  # a new access token, from the stored refresh token
