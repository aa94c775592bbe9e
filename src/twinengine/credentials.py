"""What ``twin login`` and ``Client.login()`` keep: per profile and engine URL, the tokens an OpenID provider
issued, in ``$XDG_CONFIG_HOME/twinengine/credentials.json`` (mode 0600), and how they are got and renewed; and the
client-credentials grant a service signs in with (``ServiceGrant``, kept in memory only: its secret is the
caller's).

Sign-in uses the device authorization grant (RFC 8628) with PKCE when the provider offers it, else the code flow
with a loopback redirect (RFC 8252) in the user's browser. The provider and its public client are the ones the
engine lists at ``/openeo/1.2/credentials/oidc``. An expired access token is renewed with the refresh token.

A profile (``default`` unless named) is one sign-in per engine: two people, or one person's two identities,
keep theirs side by side (``twin login --profile ci``). A file an older ``twin`` wrote (engine URLs at the top
level) is read as the ``default`` profile and rewritten in the new form at the next change.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx

from twinengine.errors import InvalidInput, TokenInvalid

__all__ = ["DEFAULT_PROFILE", "DEVICE_GRANT", "Saved", "ServiceGrant", "bearer", "browser_sign_in", "check_profile",
           "credentials_path", "device_sign_in", "forget", "load", "profiles", "provider_of", "refresh", "save",
           "sign_in"]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_PROFILE = "default"
_EARLY_S = 30  # renew this long before the access token expires
_PROFILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class Saved:
    """One engine's sign-in: the provider, its public client, and the tokens."""

    url: str
    provider: str
    issuer: str
    client_id: str
    token_endpoint: str
    access_token: str
    refresh_token: str | None
    expires_at: float
    scope: str | None = None
    revocation_endpoint: str | None = None
    profile: str = DEFAULT_PROFILE

    def bearer(self) -> str:
        return f"oidc/{self.provider}/{self.access_token}"


def credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "twinengine" / "credentials.json"


def _key(url: str) -> str:
    return url.rstrip("/")


def check_profile(profile: str) -> str:
    """A profile's name: letters, digits, '.', '_', '-' (at most 64), as it is a key of the file."""
    if not _PROFILE.fullmatch(profile):
        raise InvalidInput(f"--profile: {profile!r} is not a profile name (letters, digits, '.', '_', '-'; at most "
                           "64; starts with a letter or digit)")
    return profile


def _read() -> dict[str, dict[str, Any]]:
    """Profile -> engine URL -> kept sign-in."""
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path} cannot be read ({exc}); delete it and run `twin login` again") from exc
    if not isinstance(data, dict):
        return {}
    if "profiles" not in data:  # an older twin's file: engine URLs at the top level
        return {DEFAULT_PROFILE: {k: v for k, v in data.items() if isinstance(v, dict)}}
    found = data.get("profiles")
    return {str(k): dict(v) for k, v in found.items() if isinstance(v, dict)} if isinstance(found, dict) else {}


def _write(profiles: dict[str, dict[str, Any]]) -> None:
    """Replace the file at once, created 0600 in a 0700 folder: tokens are for its owner's eyes only."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"profiles": {k: v for k, v in profiles.items() if v}}, out, indent=2)
    os.replace(temporary, path)


def profiles() -> dict[str, list[str]]:
    """Each profile with the engine URLs it holds a sign-in for."""
    return {name: sorted(engines) for name, engines in sorted(_read().items()) if engines}


def load(url: str, profile: str = DEFAULT_PROFILE) -> Saved | None:
    entry = _read().get(check_profile(profile), {}).get(_key(url))
    return Saved(**{**entry, "profile": profile}) if isinstance(entry, dict) else None


def save(saved: Saved) -> None:
    data = _read()
    data.setdefault(check_profile(saved.profile), {})[_key(saved.url)] = asdict(saved)
    _write(data)


def _drop(url: str, profile: str) -> dict[str, Any] | None:
    data = _read()
    entry = data.get(profile, {}).pop(_key(url), None)
    if entry is not None:
        _write(data)
    return entry if isinstance(entry, dict) else None


def forget(url: str, profile: str = DEFAULT_PROFILE) -> Saved | None:
    """Drop the profile's sign-in to the engine (and revoke its refresh token at the provider, where it offers
    that); the other profiles' stay."""
    entry = _drop(url, check_profile(profile))
    if entry is None:
        return None
    saved = Saved(**{**entry, "profile": profile})
    if saved.refresh_token and saved.revocation_endpoint:
        with contextlib.suppress(httpx.HTTPError):  # best effort: the local copy is gone either way
            httpx.post(saved.revocation_endpoint, data={"token": saved.refresh_token, "client_id": saved.client_id,
                                                        "token_type_hint": "refresh_token"}, timeout=10)
    return saved


def _session(client_id: str) -> Any:
    from authlib.integrations.requests_client import OAuth2Session  # only when tokens are fetched

    return OAuth2Session(client_id, token_endpoint_auth_method="none")


def _tokens_into(saved: Saved, token: dict[str, Any]) -> Saved:
    saved.access_token = str(token["access_token"])
    saved.refresh_token = str(token.get("refresh_token") or saved.refresh_token or "") or None
    saved.expires_at = float(token.get("expires_at") or time.time() + float(token.get("expires_in", 300)))
    saved.scope = str(token["scope"]) if token.get("scope") else saved.scope
    return saved


def refresh(saved: Saved) -> Saved:
    """New tokens from the refresh token (saved); refused: sign in again."""
    from authlib.common.errors import AuthlibBaseError

    if not saved.refresh_token:
        raise TokenInvalid(f"the sign-in to {saved.url} has expired; run `twin login` again")
    try:
        token = _session(saved.client_id).refresh_token(saved.token_endpoint, refresh_token=saved.refresh_token)
    except AuthlibBaseError as exc:
        if exc.error == "invalid_grant":  # revoked, or the provider no longer knows the person: a dead sign-in
            _drop(saved.url, saved.profile)
        raise TokenInvalid(f"the provider refused to renew the sign-in ({exc.description or exc.error}); run "
                           "`twin login` again") from exc
    save(_tokens_into(saved, dict(token)))
    return saved


def bearer(url: str, profile: str = DEFAULT_PROFILE) -> str | None:
    """The bearer token ``twin login`` left for ``url`` in ``profile`` (renewed when due); None when there is
    none."""
    saved = load(url, profile)
    if saved is None:
        return None
    if saved.expires_at - _EARLY_S <= time.time():
        saved = refresh(saved)
    return saved.bearer()


def provider_of(url: str, provider: str | None, *, public_client: bool = True) -> dict[str, Any]:
    """The provider the engine lists under that id (or its only one), with its public client (any provider
    with ``public_client=False``: a service brings its own client)."""
    try:
        answer = httpx.get(f"{_key(url)}/openeo/1.2/credentials/oidc", timeout=30)
    except httpx.HTTPError as exc:
        raise InvalidInput(f"--url: the engine at {url} cannot be reached ({exc})") from exc
    listed = answer.json().get("providers", []) if answer.status_code == 200 else []
    usable = [p for p in listed if p.get("default_clients") or not public_client]
    if not usable:
        raise InvalidInput(f"--url: the engine at {url} lists no OpenID provider to sign in with")
    if provider is None:
        if len(usable) > 1:
            raise InvalidInput("--provider: choose one of " + ", ".join(p["id"] for p in usable))
        return dict(usable[0])
    for p in usable:
        if p["id"] == provider:
            return dict(p)
    raise InvalidInput(f"--provider: {provider!r} is not among " + ", ".join(p["id"] for p in usable))


def device_sign_in(url: str, listed: dict[str, Any], discovery: dict[str, Any],
                   show: Callable[[str, str, str | None], None], *, wait: Callable[[float], None] = time.sleep,
                   timeout: float = 600) -> Saved:
    """RFC 8628 with PKCE: ask for a user code, ``show`` (URL, code, URL with the code) it, poll until approved."""
    from authlib.common.errors import AuthlibBaseError
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    client_id = str(listed["default_clients"][0]["id"])
    verifier = secrets.token_urlsafe(48)
    scope = " ".join(listed.get("scopes") or ["openid"])
    started = httpx.post(str(discovery["device_authorization_endpoint"]), timeout=30, data={
        "client_id": client_id, "scope": scope, "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256"})
    if started.status_code != 200:
        raise TokenInvalid(f"the provider refused to start a device sign-in: {started.text[:300]}")
    grant = started.json()
    show(str(grant["verification_uri"]), str(grant["user_code"]), grant.get("verification_uri_complete"))
    interval = float(grant.get("interval", 5))
    deadline = time.monotonic() + min(timeout, float(grant.get("expires_in", timeout)))
    session = _session(client_id)
    while time.monotonic() < deadline:
        wait(interval)
        try:
            token = session.fetch_token(str(discovery["token_endpoint"]), grant_type=DEVICE_GRANT,
                                        device_code=grant["device_code"], code_verifier=verifier)
        except AuthlibBaseError as exc:
            if exc.error == "authorization_pending":
                continue
            if exc.error == "slow_down":
                interval += 5
                continue
            raise TokenInvalid(f"the sign-in was not approved: {exc.description or exc.error}") from exc
        saved = Saved(url=_key(url), provider=str(listed["id"]), issuer=str(listed["issuer"]), client_id=client_id,
                      token_endpoint=str(discovery["token_endpoint"]), access_token="", refresh_token=None,
                      expires_at=0.0, revocation_endpoint=discovery.get("revocation_endpoint"))
        return _tokens_into(saved, dict(token))
    raise TokenInvalid("the code was not approved in time; run `twin login` again")


def browser_sign_in(url: str, listed: dict[str, Any], discovery: dict[str, Any], open_url: Callable[[str], Any], *,
                    timeout: float = 300) -> Saved:
    """The code flow with PKCE, the browser sent back to a one-shot server on a loopback port (RFC 8252)."""
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from urllib.parse import parse_qs, urlsplit

    from authlib.common.errors import AuthlibBaseError
    from authlib.integrations.requests_client import OAuth2Session

    answer: dict[str, str] = {}

    class Callback(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != "/callback":
                self.send_error(404)
                return
            answer.update({k: v[0] for k, v in parse_qs(parts.query).items()})
            body = b"twinengine: signed in, you may close this tab." if "code" in answer else \
                b"twinengine: the sign-in did not succeed; see the terminal."
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            return None

    client_id = str(listed["default_clients"][0]["id"])
    server = HTTPServer(("127.0.0.1", 0), Callback)
    server.timeout = 1
    redirect = f"http://127.0.0.1:{server.server_address[1]}/callback"
    session = OAuth2Session(client_id, scope=" ".join(listed.get("scopes") or ["openid"]), redirect_uri=redirect,
                            code_challenge_method="S256", token_endpoint_auth_method="none")
    state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    address, _ = session.create_authorization_url(str(discovery["authorization_endpoint"]), state=state,
                                                  code_verifier=verifier, nonce=secrets.token_urlsafe(16))
    try:
        open_url(str(address))
        deadline = time.monotonic() + timeout
        while not answer and time.monotonic() < deadline:
            server.handle_request()
    finally:
        server.server_close()
    if not answer:
        raise TokenInvalid("the browser did not come back in time; run `twin login` again")
    if answer.get("state") != state:
        raise TokenInvalid("the browser came back with another sign-in's state; run `twin login` again")
    if "code" not in answer:
        why = answer.get("error_description") or answer.get("error")
        raise TokenInvalid(f"the provider did not sign you in: {why}")
    try:
        token = session.fetch_token(str(discovery["token_endpoint"]), code=answer["code"], code_verifier=verifier)
    except AuthlibBaseError as exc:
        raise TokenInvalid(f"the provider refused the code: {exc.description or exc.error}") from exc
    saved = Saved(url=_key(url), provider=str(listed["id"]), issuer=str(listed["issuer"]), client_id=client_id,
                  token_endpoint=str(discovery["token_endpoint"]), access_token="", refresh_token=None, expires_at=0.0,
                  revocation_endpoint=discovery.get("revocation_endpoint"))
    return _tokens_into(saved, dict(token))


def sign_in(url: str, provider: str | None, *, show: Callable[[str, str, str | None], None],
            open_url: Callable[[str], Any] | None = None, browser: bool = False,
            profile: str = DEFAULT_PROFILE) -> Saved:
    """Sign in to the engine at ``url`` through ``provider`` (or its only one): the device flow, ``show``
    (URL, code, URL with the code) telling the person what to approve, or with ``browser`` (or a provider
    without the device grant) the loopback code flow through ``open_url``. Not saved yet: the caller checks
    the engine accepts the tokens first (kept under ``profile``)."""
    from twinengine.auth.discovery import Discovery

    check_profile(profile)
    engine = _key(url)
    listed = provider_of(engine, provider)
    discovery = Discovery(str(listed["issuer"])).document()
    if discovery.get("device_authorization_endpoint") and not browser:
        saved = device_sign_in(engine, listed, discovery, show)
    else:
        if open_url is None:
            import webbrowser

            open_url = webbrowser.open
        saved = browser_sign_in(engine, listed, discovery, open_url)
    saved.profile = profile
    return saved


class ServiceGrant:
    """A service's sign-in with the OAuth client-credentials grant (RFC 6749 §4.4) at one of the engine's
    providers: a new access token is fetched when the last one is due. Nothing is written to disk."""

    def __init__(self, url: str, client_id: str, client_secret: str, *, provider: str | None = None,
                 scopes: list[str] | None = None) -> None:
        from twinengine.auth.discovery import Discovery

        self.url = _key(url)
        listed = provider_of(self.url, provider, public_client=False)
        self.provider = str(listed["id"])
        self.token_endpoint = Discovery(str(listed["issuer"])).require("token_endpoint")
        self.client_id, self._secret = client_id, client_secret
        self.scope = " ".join(scopes) if scopes is not None else None
        self._token: str | None = None
        self._expires_at = 0.0

    def fetch(self) -> str:
        """A new access token from the provider; refused (a wrong secret, an unknown client): TokenInvalid."""
        from authlib.common.errors import AuthlibBaseError
        from authlib.integrations.requests_client import OAuth2Session

        session = OAuth2Session(self.client_id, self._secret, scope=self.scope)
        try:
            token = dict(session.fetch_token(self.token_endpoint, grant_type="client_credentials"))
        except AuthlibBaseError as exc:
            raise TokenInvalid(f"the provider refused the client credentials of {self.client_id!r}: "
                               f"{exc.description or exc.error}") from exc
        self._token = str(token["access_token"])
        self._expires_at = float(token.get("expires_at") or time.time() + float(token.get("expires_in", 300)))
        return self._token

    def bearer(self) -> str:
        """The bearer token for the engine, fetched anew when the last is due."""
        token = self._token
        if token is None or self._expires_at - _EARLY_S <= time.time():
            token = self.fetch()
        return f"oidc/{self.provider}/{token}"
