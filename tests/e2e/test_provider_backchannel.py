"""Back-channel logout from a real provider: panva's ``oidc-provider`` on loopback, with the portal's client
registered for OpenID Connect Back-Channel Logout 1.0. A person signs in to the portal through the provider,
holds an engine token made in that session, and signs out at the provider (its own logout page, not the
engine's); the provider then posts its signed logout token to the engine, which holds the person: the portal
session and the engine token stop working at once, no token of theirs having been used since. Another person's
session, opened through the same provider, goes on. (``tests/integration/test_backchannel_logout.py`` checks
each refusal of a forged or malformed logout token with keys of its own.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from helpers import free_port
from oidc_fixtures import LoopbackProvider, portal_callback, start_provider
from streams_fixtures import eventually
from twinengine.api.cookies import SESSION_COOKIE


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoopbackProvider, str]]:
    """The provider, told where the engine's back-channel logout endpoint is, and the engine on that port."""
    from helpers import stop_process
    from twinengine.api import create_app
    from twinengine.config import Settings
    from twinengine.demo.server import InProcessServer
    from twinengine.runtime import Runtime

    port = free_port()
    engine_url = f"http://127.0.0.1:{port}"
    provider = start_provider(tmp_path_factory.mktemp("oidc-provider"),
                              backchannel_logout_uri=f"{engine_url}/auth/oidc/loop/backchannel-logout")
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("backchannel")) / "data", warm_routes=False,
                        oidc_providers=[provider.settings("loop", recheck_s=None)])
    runtime = Runtime.from_settings(settings)
    runtime.start()
    try:
        with InProcessServer(create_app(runtime=runtime), port=port) as server:
            assert server.url == engine_url
            yield provider, engine_url
    finally:
        runtime.close()
        stop_process(provider.process, timeout=10)


def _signed_in(engine_url: str, login: str) -> tuple[httpx.Client, str]:
    """A browser of ``login`` with a portal session opened through the provider, and an engine token that
    session made (as the portal's token page does)."""
    browser = httpx.Client(timeout=30)
    done = browser.get(portal_callback(browser, engine_url, login))
    assert done.status_code == 303 and browser.cookies.get(SESSION_COOKIE), done.text
    csrf = browser.get(f"{engine_url}/api/v1/session").json()["csrf_token"]
    made = browser.post(f"{engine_url}/api/v1/me/tokens", json={"scopes": ["twins:read"], "note": "laptop"},
                        headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    return browser, made.json()["token"]


def _signs_out_at_the_provider(browser: httpx.Client, issuer: str) -> None:
    """What the person does in the provider's own pages: its logout page, "Yes, sign me out"."""
    page = browser.get(f"{issuer}/session/end")
    assert page.status_code == 200, page.text[:2000]
    xsrf = re.search(r'name="xsrf" value="([^"]+)"', page.text)
    assert xsrf is not None, page.text[:2000]
    done = browser.post(f"{issuer}/session/end/confirm", data={"xsrf": xsrf.group(1), "logout": "yes"})
    assert done.status_code in (200, 302, 303), done.text[:2000]


def test_signing_out_at_the_provider_ends_the_persons_access_to_the_engine(
        loop: tuple[LoopbackProvider, str]) -> None:
    provider, engine_url = loop
    alice, alice_token = _signed_in(engine_url, "alice")
    with httpx.Client(timeout=30) as other:  # bob's browser: a session of its own at the provider
        done = other.get(portal_callback(other, engine_url, "bob"))
        assert done.status_code == 303
        assert other.get(f"{engine_url}/api/v1/session").status_code == 200
        me = httpx.get(f"{engine_url}/api/v1/me", headers={"Authorization": f"Bearer {alice_token}"})
        assert me.status_code == 200 and me.json()["name"] == "loop.alice", me.text

        _signs_out_at_the_provider(alice, provider.issuer)

        # the provider posted its logout token while answering the confirmation: nothing of alice's was used
        eventually(lambda: httpx.get(f"{engine_url}/api/v1/me", headers={
            "Authorization": f"Bearer {alice_token}"}).status_code == 401, timeout=10)
        assert alice.get(f"{engine_url}/api/v1/session").status_code == 401
        assert other.get(f"{engine_url}/api/v1/session").status_code == 200  # bob's session goes on
        assert provider.accounts_file is not None  # the provider's folder: its log beside its people
        log = provider.accounts_file.with_name("provider.log").read_text()
        assert "back-channel logout to" not in log, log
    # signing in again through the provider lifts the hold
    again, _ = _signed_in(engine_url, "alice")
    assert again.get(f"{engine_url}/api/v1/session").json()["name"] == "loop.alice"
    alice.close()
    again.close()
