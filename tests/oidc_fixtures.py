"""A real OpenID provider on loopback for the sign-in tests: panva's ``oidc-provider`` (Node.js, from the npm
registry; ``tests/oidc_provider/``), not a mock of our own. The Python ``oidc-provider-mock`` has the code flow
with PKCE and refresh tokens but no device authorization grant (RFC 8628), which ``twin login`` and the openEO
client need, so one provider serves every flow. ``server.mjs`` only configures it: the people below, a login
page, consent for the engine's own clients, and JWT access tokens for the engine's audience with the person's
groups and entitlements in them (as EGI Check-in and Keycloak are set up for a resource server)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from helpers import REPO, free_port, stop_process, unavailable

PROVIDER_DIR = REPO / "tests" / "oidc_provider"
AUDIENCE = "twinengine"
PORTAL_CLIENT, PORTAL_SECRET = "twinengine-portal", "portal-secret-for-tests"
CLI_CLIENT = "twinengine-cli"
SERVICE_CLIENT, SERVICE_SECRET = "twinengine-service", "service-secret-for-tests"
VO = "urn:mace:egi.eu:group:vo.example.org"
PEOPLE: dict[str, dict[str, Any]] = {
    "alice": {"name": "Alice Example", "email": "alice@example.org", "groups": ["hydrology"],
              "eduperson_entitlement": [f"{VO}:role=member#aai.egi.eu"]},
    "bob": {"name": "Bob Other", "email": "bob@other.org", "groups": [],
            "eduperson_entitlement": ["urn:mace:egi.eu:group:vo.other.org:role=member#aai.egi.eu"]},
    "carol": {"name": "Carol Manager", "email": "carol@example.org", "groups": ["hydrology"],
              "eduperson_entitlement": [f"{VO}:devs:role=manager#aai.egi.eu"]},
}


@dataclass
class LoopbackProvider:
    """A running provider: its issuer URL and how to do what a person does in its pages."""

    issuer: str
    process: subprocess.Popen[bytes]
    accounts_file: Path | None = None
    services_file: Path | None = None

    def suspend(self, login: str) -> None:
        """Mark ``login`` suspended, as a provider's admin would: their next tokens say ``account_disabled``."""
        assert self.accounts_file is not None
        people = json.loads(self.accounts_file.read_text())
        people[login]["suspended"] = True
        self.accounts_file.write_text(json.dumps(people))

    def forget(self, login: str) -> None:
        """Remove ``login`` from the provider's people, as its admin would: it signs nobody in as them again,
        refuses their refresh tokens and answers ``active: false`` when asked about their tokens."""
        assert self.accounts_file is not None
        people = json.loads(self.accounts_file.read_text())
        people.pop(login, None)
        self.accounts_file.write_text(json.dumps(people))

    def set_groups(self, login: str, groups: list[str]) -> None:
        """Put ``login`` in exactly ``groups`` at the provider, as its admin would; tokens issued before keep
        the old ones, introspection tells the new ones."""
        assert self.accounts_file is not None
        people = json.loads(self.accounts_file.read_text())
        people[login]["groups"] = groups
        self.accounts_file.write_text(json.dumps(people))

    def set_service_claims(self, client_id: str, claims: dict[str, Any]) -> None:
        """What the provider puts in the tokens of service ``client_id`` from now on, as its admin would set."""
        assert self.services_file is not None
        services = json.loads(self.services_file.read_text())
        services[client_id] = claims
        self.services_file.write_text(json.dumps(services))

    def settings(self, provider_id: str = "loop", **extra: Any) -> dict[str, Any]:
        """The engine's ``oidc_providers`` entry for this provider, with the rules the tests rely on:
        members of vo.example.org join ``example-vo``, the ``hydrology`` group claim joins ``hydro``, and a
        manager in vo.example.org (or a subgroup) is a developer."""
        return {"id": provider_id, "issuer": self.issuer, "title": "Loopback University", "audience": AUDIENCE,
                "client_id": PORTAL_CLIENT, "client_secret": PORTAL_SECRET, "cli_client_id": CLI_CLIENT,
                "scopes": ["openid", "profile", "email", "groups", "entitlements", "offline_access"],
                "groups_claim": "groups", "entitlements_claim": "eduperson_entitlement",
                "group_rules": [{"entitlement": f"{VO}:*", "group": "example-vo"},
                                {"claim_value": "hydrology", "group": "hydro"}],
                "role_rules": [{"entitlement": f"{VO}:role=manager", "role": "developer"},
                               {"entitlement": f"{VO}:devs:role=manager", "role": "developer"}], **extra}

    def approve_device(self, verification_uri: str, user_code: str, login: str) -> None:
        """What a person does in a browser with the code ``twin login`` shows: enter it, confirm, sign in."""
        with httpx.Client(follow_redirects=True, timeout=30) as browser:
            page = browser.get(verification_uri)
            page = browser.post(verification_uri, data={"xsrf": _hidden(page.text, "xsrf"), "user_code": user_code})
            page = browser.post(verification_uri, data={"xsrf": _hidden(page.text, "xsrf"), "user_code": user_code,
                                                        "confirm": "yes"})
            action = re.search(r'action="(/interaction/[^"]+)"', page.text)
            assert action is not None, page.text[:2000]
            done = browser.post(self.issuer + action.group(1), data={"login": login})
            assert done.status_code == 200 and "Sign-in Success" in done.text, done.text[:2000]

    def device_tokens(self, login: str, *, client_id: str = CLI_CLIENT) -> dict[str, Any]:
        """Tokens of ``login`` through the device flow (for tests that need a real access token)."""
        started = httpx.post(f"{self.issuer}/device/auth", data={"client_id": client_id,
                                                                 "scope": "openid profile email offline_access"})
        started.raise_for_status()
        grant = started.json()
        self.approve_device(grant["verification_uri"], grant["user_code"], login)
        token = httpx.post(f"{self.issuer}/token", data={"client_id": client_id, "device_code": grant["device_code"],
                                                         "grant_type": "urn:ietf:params:oauth:grant-type:device_code"})
        assert token.status_code == 200, token.text
        return dict(token.json())


def portal_callback(browser: httpx.Client, engine_url: str, login: str, next_page: str = "/ui/catalog",
                    provider_id: str = "loop") -> str:
    """Start a sign-in in ``browser`` and sign in at the provider; stop where the provider sends the browser
    back to the engine (the callback URL with code and state), without following it."""
    url = str(httpx.URL(f"{engine_url}/auth/oidc/{provider_id}/login", params={"next": next_page}))
    while True:
        response = browser.get(url)
        if response.status_code == 200 and "/interaction/" in str(response.url):
            action = str(response.url).rstrip("/") + "/login"
            response = browser.post(action, data={"login": login})
        assert response.status_code in (302, 303), response.text[:2000]
        url = str(httpx.URL(str(response.url)).join(response.headers["location"]))
        if url.startswith(f"{engine_url}/auth/oidc/{provider_id}/callback"):
            return url


def _hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found is not None, html[:2000]
    return found.group(1)


def start_provider(folder: Path, *, people: dict[str, dict[str, Any]] | None = None,
                   access_token_ttl: int = 300, access_token_format: str = "jwt",
                   introspect_jwt: bool = False, backchannel_logout_uri: str | None = None,
                   services: dict[str, tuple[str, dict[str, Any]]] | None = None) -> LoopbackProvider:
    """Start ``server.mjs`` on a free loopback port with ``people`` (subject: claims; default PEOPLE) and the
    engine's two clients; its access tokens for the engine are JWTs, or opaque (``access_token_format``);
    ``introspect_jwt``: it answers introspection about its JWT access tokens too, as Keycloak does;
    ``backchannel_logout_uri``: the portal's client is registered for back-channel logout there (with the
    provider's session id, ``sid``, in its ID and logout tokens); ``services``: more service clients (client
    id: its secret and the claims its tokens carry), signing in with client credentials."""
    node = shutil.which("node")
    if node is None:
        unavailable("oidc", "Node.js is not installed (apt-get install nodejs npm)")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        unavailable("oidc", "oidc-provider is not installed (npm ci --prefix tests/oidc_provider)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    # Loopback redirect URIs of native clients match any port (RFC 8252 §7.3): no engine port needed here.
    clients = [
        {"client_id": PORTAL_CLIENT, "client_secret": PORTAL_SECRET, "application_type": "native",
         "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
         "redirect_uris": ["http://127.0.0.1/auth/oidc/loop/callback", "http://127.0.0.1/auth/oidc/other/callback"],
         **({"backchannel_logout_uri": backchannel_logout_uri, "backchannel_logout_session_required": True}
            if backchannel_logout_uri else {})},
        {"client_id": CLI_CLIENT, "token_endpoint_auth_method": "none", "application_type": "native",
         "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
         "response_types": ["code"], "redirect_uris": ["http://127.0.0.1/callback", "http://localhost/callback"]},
        {"client_id": SERVICE_CLIENT, "client_secret": SERVICE_SECRET, "grant_types": ["client_credentials"],
         "response_types": [], "redirect_uris": []},
    ]
    clients += [{"client_id": client_id, "client_secret": secret, "grant_types": ["client_credentials"],
                 "response_types": [], "redirect_uris": []}
                for client_id, (secret, _claims) in (services or {}).items()]
    config = folder / "provider.json"
    accounts = folder / "people.json"
    accounts.write_text(json.dumps(PEOPLE if people is None else people))
    service_claims = folder / "services.json"
    service_claims.write_text(json.dumps({client_id: claims for client_id, (_s, claims) in (services or {}).items()}))
    config.write_text(json.dumps({"issuer": issuer, "port": port, "audience": AUDIENCE, "clients": clients,
                                  "services_file": str(service_claims),
                                  "accounts_file": str(accounts), "access_token_ttl": access_token_ttl,
                                  "access_token_format": access_token_format,
                                  "introspect_jwt": introspect_jwt}))
    with (folder / "provider.log").open("wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([str(node), str(PROVIDER_DIR / "server.mjs"), str(config)], stdout=log,
                                   stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the OpenID provider exited: {(folder / 'provider.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                return LoopbackProvider(issuer=issuer, process=process, accounts_file=accounts,
                                        services_file=service_claims)
        except httpx.TransportError:
            time.sleep(0.1)
    stop_process(process)
    raise RuntimeError("the OpenID provider did not answer within 30 s")


@pytest.fixture(scope="module")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackProvider]:
    """A provider for the module's tests (its state, codes and sessions, lives in its process)."""
    provider = start_provider(tmp_path_factory.mktemp("oidc-provider"))
    try:
        yield provider
    finally:
        stop_process(provider.process, timeout=10)


@pytest.fixture(scope="module")
def engine_url(tmp_path_factory: pytest.TempPathFactory, oidc_provider: LoopbackProvider) -> Iterator[str]:
    """An engine served in-process that trusts the loopback provider (as ``loop``), for a module's tests."""
    from twinengine.config import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("oidc-engine") / "data", warm_routes=False,
                        oidc_providers=[oidc_provider.settings("loop")])
    with served(settings) as url:
        yield url


@contextmanager
def served(settings: Any) -> Iterator[str]:
    """An engine of ``settings`` (a ``twinengine.config.Settings``) served in-process; yields its URL."""
    from twinengine.api import create_app
    from twinengine.demo.server import InProcessServer
    from twinengine.runtime import Runtime

    runtime = Runtime.from_settings(settings)
    runtime.start()
    try:
        with InProcessServer(create_app(runtime=runtime)) as server:
            yield server.url
    finally:
        runtime.close()
