"""The portal's "Sign in with <provider>" against a real OpenID provider on loopback: the authorization code flow
with PKCE, state and nonce, ending in the same session cookie as a pasted token. Hostile answers (a replayed
code, a code with another browser's PKCE verifier, a forged state, a flow cookie the engine did not sign) are
refused with a message on the sign-in page, and no session is opened."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest

from oidc_fixtures import LoopbackProvider, oidc_provider, served
from oidc_fixtures import portal_callback as to_callback
from twinengine.api.cookies import SESSION_COOKIE
from twinengine.api.routes.signin import FLOW_COOKIE
from twinengine.config import Settings

__all__ = ["oidc_provider"]


@pytest.fixture(scope="module")
def engine_url(tmp_path_factory: pytest.TempPathFactory, oidc_provider: LoopbackProvider) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("portal-signin") / "data", warm_routes=False,
                        oidc_providers=[oidc_provider.settings("loop"),
                                        {"id": "tokens-only", "issuer": "https://tokens.example"}])
    with served(settings) as url:
        yield url


def landing(response: httpx.Response) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(response.headers["location"])
    return parts.path, parse_qs(parts.query)


def test_providers_with_a_client_are_offered(engine_url: str) -> None:
    offered = httpx.get(f"{engine_url}/api/v1/auth/providers").json()
    assert offered == [{"id": "loop", "title": "Loopback University", "login_url": "/auth/oidc/loop/login"}]


def test_the_code_flow_opens_a_session_as_that_person(engine_url: str) -> None:
    with httpx.Client(timeout=30) as browser:
        login = browser.get(f"{engine_url}/auth/oidc/loop/login?next=/ui/catalog")
        query = parse_qs(urlsplit(login.headers["location"]).query)
        assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
        assert query["state"][0] and query["nonce"][0] and query["response_type"] == ["code"]
        done = browser.get(to_callback(browser, engine_url, "alice"))
        assert done.status_code == 303 and done.headers["location"] == "/ui/catalog", done.headers
        assert browser.cookies.get(SESSION_COOKIE)
        session = browser.get(f"{engine_url}/api/v1/session").json()
        assert (session["name"], session["role"]) == ("loop.alice", "user") and session["csrf_token"]


def test_a_replayed_code_is_refused(engine_url: str) -> None:
    with httpx.Client(timeout=30) as browser:
        callback = to_callback(browser, engine_url, "alice")
        flow = browser.cookies.get(FLOW_COOKIE, path="/auth/oidc")
        assert browser.get(callback).status_code == 303
    with httpx.Client(timeout=30, cookies={FLOW_COOKIE: flow}) as thief:  # the whole answer, cookie and all
        replayed = thief.get(callback)
        path, query = landing(replayed)
        assert path == "/ui/signin" and "refused the authorization code" in query["error"][0], query
        assert not thief.cookies.get(SESSION_COOKIE)
    with httpx.Client(timeout=30) as stranger:  # without the flow cookie: nothing is under way there
        path, query = landing(stranger.get(callback))
        assert "no sign-in is under way" in query["error"][0]


def test_a_code_with_another_browsers_pkce_verifier_is_refused(engine_url: str) -> None:
    with httpx.Client(timeout=30) as victim, httpx.Client(timeout=30) as attacker:
        stolen = parse_qs(urlsplit(to_callback(victim, engine_url, "alice")).query)["code"][0]
        own = parse_qs(urlsplit(to_callback(attacker, engine_url, "bob")).query)["state"][0]
        injected = attacker.get(f"{engine_url}/auth/oidc/loop/callback", params={"code": stolen, "state": own})
        path, query = landing(injected)
        assert path == "/ui/signin" and "refused the authorization code" in query["error"][0], query
        assert not attacker.cookies.get(SESSION_COOKIE)


def test_a_forged_state_or_cookie_is_refused(engine_url: str) -> None:
    with httpx.Client(timeout=30) as browser:
        code = parse_qs(urlsplit(to_callback(browser, engine_url, "alice")).query)["code"][0]
        forged = browser.get(f"{engine_url}/auth/oidc/loop/callback", params={"code": code, "state": "forged"})
        assert "state does not match" in landing(forged)[1]["error"][0]
    with httpx.Client(timeout=30, cookies={FLOW_COOKIE: "e30.0000"}) as browser:
        made_up = browser.get(f"{engine_url}/auth/oidc/loop/callback", params={"code": "x", "state": "y"})
        assert "no sign-in is under way" in landing(made_up)[1]["error"][0]


def test_unknown_providers_and_provider_errors_come_back_as_messages(engine_url: str) -> None:
    unknown = httpx.get(f"{engine_url}/auth/oidc/tokens-only/login")
    assert "no OpenID provider 'tokens-only' is configured for signing in" in landing(unknown)[1]["error"][0]
    denied = httpx.get(f"{engine_url}/auth/oidc/loop/callback", params={"error": "access_denied",
                                                                         "error_description": "you said no"})
    assert landing(denied)[1]["error"] == ["the provider did not sign you in: you said no"]


@pytest.mark.parametrize("elsewhere", ["https://evil.example/", "//evil.example/ui/", "/ui/signin?next=x"])
def test_the_page_to_return_to_is_a_portal_page(engine_url: str, elsewhere: str) -> None:
    with httpx.Client(timeout=30) as browser:
        done = browser.get(to_callback(browser, engine_url, "alice", elsewhere))
        assert done.status_code == 303 and done.headers["location"] == "/ui/"  # never an open redirect


@pytest.mark.browser
def test_the_browser_signs_in_and_out_through_the_provider(engine_url: str, oidc_provider: LoopbackProvider,
                                                            chromium_browser: Any, tmp_path: Path) -> None:
    from browser import AXE

    context = chromium_browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{engine_url}/ui/")
        page.wait_for_url("**/ui/signin**")
        button = page.get_by_role("link", name="Sign in with Loopback University")
        button.wait_for()
        page.evaluate(AXE.read_text())  # the sign-in page with its provider buttons stays accessible
        violations = page.evaluate("""() => axe.run(document, {resultTypes: ['violations']}).then(r =>
            r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => v.id))""")
        assert violations == []
        button.click()
        page.wait_for_url(f"{oidc_provider.issuer}/interaction/**")
        page.get_by_label("Username").fill("carol")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{engine_url}/ui/")
        page.wait_for_selector("[data-page=home]:not([aria-busy])")
        assert page.inner_text("#who").startswith("loop.carol (developer)")
        page.screenshot(path=str(tmp_path / "signed-in.png"))
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{oidc_provider.issuer}/session/end**")  # the provider's own logout
        assert "id_token_hint" in page.url
        page.goto(f"{engine_url}/api/v1/session")
        assert "AuthenticationRequired" in page.content()  # the engine's session is gone
    finally:
        context.close()
