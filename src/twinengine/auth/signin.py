"""The portal's "Sign in with <provider>": the OpenID Connect authorization code flow with PKCE (S256), state and
nonce, through authlib's client. What the browser must bring back (state, nonce, PKCE verifier, the page to
return to) travels in a short-lived cookie the engine signs; the ID token is verified against the provider's
JWKS, for this client, with this nonce. The claims then name the person as an access token's would."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import jwt

from twinengine.auth.issuer import BuiltinIssuer
from twinengine.auth.oidc import ALGORITHMS, OidcVerifier
from twinengine.errors import InvalidInput, TokenInvalid

if TYPE_CHECKING:
    from authlib.integrations.requests_client import OAuth2Session

__all__ = ["FLOW_TTL_S", "PendingSignIn", "finish", "pack", "pack_logout", "start", "unpack", "unpack_logout"]

FLOW_TTL_S = 600  # a person has ten minutes at the provider


@dataclass(frozen=True)
class PendingSignIn:
    """A sign-in under way: what the callback must match, and where the person goes afterwards."""

    provider: str
    state: str
    nonce: str
    verifier: str
    next: str
    started: float


def _client(verifier: OidcVerifier, redirect_uri: str) -> OAuth2Session:
    """authlib's client, and requests under it (a tenth of a second to import), on the first sign-in: not
    while the engine starts."""
    from authlib.integrations.requests_client import OAuth2Session

    p = verifier.provider
    if p.client_id is None:
        raise InvalidInput(f"provider {p.id!r} has no client_id: the portal cannot sign in through it")
    return OAuth2Session(p.client_id, p.client_secret, scope=" ".join(p.scopes), redirect_uri=redirect_uri,
                         code_challenge_method="S256",
                         token_endpoint_auth_method="client_secret_basic" if p.client_secret else "none")


def start(verifier: OidcVerifier, *, redirect_uri: str, next_page: str) -> tuple[str, PendingSignIn]:
    """The provider's authorization URL to send the browser to, and what to keep until it comes back."""
    pending = PendingSignIn(provider=verifier.provider.id, state=secrets.token_urlsafe(32),
                            nonce=secrets.token_urlsafe(32), verifier=secrets.token_urlsafe(48), next=next_page,
                            started=time.time())
    url, _ = _client(verifier, redirect_uri).create_authorization_url(
        verifier.discovery.require("authorization_endpoint"), state=pending.state, nonce=pending.nonce,
        code_verifier=pending.verifier)
    return str(url), pending


def pack(issuer: BuiltinIssuer, pending: PendingSignIn) -> str:
    """The cookie value: the pending sign-in and the engine's MAC over it (the browser cannot alter it)."""
    body = base64.urlsafe_b64encode(json.dumps(asdict(pending)).encode()).decode()
    return f"{body}.{issuer.mac('oidc-sign-in', body)}"


def unpack(issuer: BuiltinIssuer, value: str | None) -> PendingSignIn:
    """The pending sign-in of a cookie the engine made, not older than ``FLOW_TTL_S``."""
    body, _, mac = (value or "").partition(".")
    if not body or not hmac.compare_digest(mac, issuer.mac("oidc-sign-in", body)):
        raise TokenInvalid("no sign-in is under way in this browser (start again from the sign-in page)")
    pending = PendingSignIn(**json.loads(base64.urlsafe_b64decode(body)))
    if time.time() - pending.started > FLOW_TTL_S:
        raise TokenInvalid("the sign-in took too long; start again")
    return pending


def pack_logout(issuer: BuiltinIssuer, provider: str, id_token: str) -> str:
    """The cookie that lets sign-out end the session at the provider too (``id_token_hint``)."""
    body = base64.urlsafe_b64encode(json.dumps([provider, id_token]).encode()).decode()
    return f"{body}.{issuer.mac('oidc-logout', body)}"


def unpack_logout(issuer: BuiltinIssuer, value: str | None) -> tuple[str, str] | None:
    """(provider, ID token) of a cookie from ``pack_logout``; None for no cookie or one the engine did not make."""
    body, _, mac = (value or "").partition(".")
    if not body or not hmac.compare_digest(mac, issuer.mac("oidc-logout", body)):
        return None
    provider, id_token = json.loads(base64.urlsafe_b64decode(body))
    return str(provider), str(id_token)


def _id_token_claims(verifier: OidcVerifier, id_token: str, pending: PendingSignIn) -> dict[str, Any]:
    p = verifier.provider
    try:
        key = verifier.signing_key(id_token)
        claims: dict[str, Any] = jwt.decode(id_token, key, algorithms=ALGORITHMS, issuer=p.issuer,
                                            audience=p.client_id, options={"require": ["iss", "aud", "exp", "sub"]})
    except jwt.InvalidTokenError as exc:
        raise TokenInvalid(f"the provider's ID token was refused: {exc}") from exc
    if not hmac.compare_digest(str(claims.get("nonce", "")), pending.nonce):
        raise TokenInvalid("the ID token does not carry this sign-in's nonce (a replayed response?)")
    return claims


def finish(verifier: OidcVerifier, pending: PendingSignIn, *, state: str, code: str,
           redirect_uri: str) -> tuple[dict[str, Any], str]:
    """The verified claims of the person who signed in, and the ID token (the hint for the provider's logout).

    The state must be this browser's; the code is exchanged with the PKCE verifier, once (the provider refuses
    a code used before). Claims of the access token, when it is a JWT for the engine, fill what the ID
    token leaves out (groups and entitlements are often only there)."""
    from authlib.common.errors import AuthlibBaseError
    from requests import RequestException

    if not hmac.compare_digest(state, pending.state):
        raise TokenInvalid("the sign-in's state does not match this browser's (a forged or stale response)")
    try:
        token = _client(verifier, redirect_uri).fetch_token(verifier.discovery.require("token_endpoint"), code=code,
                                                            code_verifier=pending.verifier)
    except AuthlibBaseError as exc:
        raise TokenInvalid(f"the provider refused the authorization code: {exc.description or exc.error}") from exc
    except RequestException as exc:
        raise TokenInvalid(f"the provider could not be reached: {exc}") from exc
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise TokenInvalid("the provider sent no ID token (is `openid` among the scopes?)")
    claims = _id_token_claims(verifier, id_token, pending)
    access = token.get("access_token")
    extra = verifier.claims(access) if isinstance(access, str) and access.count(".") == 2 else None
    if extra is not None and extra.get("sub") == claims["sub"]:
        claims = {**extra, **claims}
    return claims, id_token
