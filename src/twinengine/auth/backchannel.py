"""OpenID Connect Back-Channel Logout 1.0: the provider tells the engine, server to server, that a person's
session there ended (they signed out, or were removed or suspended), so a person none of whose tokens is in use
here is stopped too, not only one whose token the engine rechecks (``auth.liveness``).

The provider POSTs a *logout token* to ``/auth/oidc/<id>/backchannel-logout``: a JWT it signs with the keys the
engine already verifies its tokens with, for the engine's client (``aud`` = ``client_id``). It is checked as
section 2.6 says (``validate``): signature by an asymmetric key of the provider's JWKS (never ``none``),
``iss``, ``aud``, ``iat`` (within ``MAX_AGE_S``; ``exp`` when present), ``jti`` (a replay is refused),
the back-channel logout event in ``events``, a ``sub`` or a ``sid``, and no ``nonce``.

A valid one ends the person's access as a provider's suspension flag does (``liveness.block``): the identity its
``sub`` names is put on hold (its standing work stops), every engine token of it (portal sessions, scoped
tokens) is revoked and the groups the provider asserted are dropped; a new sign-in lifts the hold. A ``sid``
ends the portal sessions opened through the provider's sign-in page in that provider session (``session_key``).
A ``sub`` or ``sid`` the engine does not know is nothing to do.

Replays are refused by the ``jti`` values accepted in the last ``MAX_AGE_S`` seconds (a logout token is refused
after that anyway): those each engine process remembers (at most ``_REMEMBERED``), and those the audit log holds
for every process sharing the store (``received_before``), so a copy replayed to another process cannot hold again
a person who signed in since the first delivery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from datetime import timedelta
from typing import Any

import jwt
from sqlalchemy import select, update

from twinengine.auth.claims import ExternalPerson
from twinengine.auth.liveness import block
from twinengine.auth.models import ApiToken, AuditEvent, Identity
from twinengine.auth.oidc import ALGORITHMS, OidcVerifier
from twinengine.auth.principal import Role
from twinengine.errors import TokenInvalid
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["AUDIT_ACTION", "EVENT", "MAX_AGE_S", "MAX_TOKEN_CHARS", "LogoutTokens", "apply", "audit_target",
           "received_before", "session_key", "validate"]

_log = logging.getLogger(__name__)

EVENT = "http://schemas.openid.net/event/backchannel-logout"
MAX_AGE_S = 300  # a logout token issued longer ago (or later: clock skew) is refused
MAX_TOKEN_CHARS = 16_384  # longer is no logout token: refused before it is parsed
_SKEW_S = 60
_REMEMBERED = 4096
AUDIT_ACTION = "session-backchannel_logout"  # each logout token accepted, its jti in the target


class LogoutTokens:
    """The ``jti`` values of the logout tokens accepted in the last ``MAX_AGE_S`` seconds (one engine process)."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, provider: str, jti: str) -> bool:
        """Whether ``jti`` of ``provider`` is new here (it is then remembered); False for a replay."""
        now = time.monotonic()
        key = f"{provider}\x00{jti}"
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now - MAX_AGE_S - _SKEW_S:
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            while len(self._seen) > _REMEMBERED:
                self._seen.popitem(last=False)
        return True


def audit_target(provider: str, jti: str) -> str:
    """The audit target of an accepted logout token: its provider and ``jti``, so that every engine process
    sharing the store can tell a replay (``received_before``)."""
    return f"oidc:{provider} jti:{jti}"[:400]


def received_before(db: Database, provider: str, jti: str) -> bool:
    """Whether an engine process sharing this store accepted the logout token ``jti`` of ``provider`` within the
    window a logout token is valid for (the audit log holds each one accepted). Each process also remembers its
    own (``LogoutTokens``); this catches a token replayed to another process, which would otherwise hold again
    a person who signed in after the first delivery."""
    since = utcnow() - timedelta(seconds=MAX_AGE_S + 2 * _SKEW_S)
    with db.session(readonly=True) as session:
        return session.scalar(select(AuditEvent.id).where(
            AuditEvent.actor == f"oidc:{provider}"[:64], AuditEvent.at >= since,
            AuditEvent.action == AUDIT_ACTION, AuditEvent.target == audit_target(provider, jti)).limit(1)) is not None


def validate(verifier: OidcVerifier, token: str, seen: LogoutTokens) -> dict[str, Any]:
    """The claims of ``token``, a logout token of ``verifier``'s provider for the engine's client, checked as
    Back-Channel Logout 1.0 section 2.6 says; ``TokenInvalid`` saying why when it is not one."""
    p = verifier.provider
    if p.client_id is None:
        raise TokenInvalid(f"provider {p.id!r} has no client_id: the engine is no client there")
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenInvalid("logout_token is too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise TokenInvalid(f"logout_token is not a JWT: {exc}") from None
    if header.get("alg") not in ALGORITHMS:  # "none" and HMAC never: the provider signs with its JWKS keys
        raise TokenInvalid(f"logout_token: algorithm {header.get('alg')!r} is not accepted")
    key = verifier.signing_key(token)
    try:
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=ALGORITHMS, issuer=p.issuer,
                                            audience=p.client_id, leeway=_SKEW_S,
                                            options={"require": ["iss", "aud", "iat", "jti"]})
    except jwt.InvalidTokenError as exc:
        raise TokenInvalid(f"logout_token rejected: {exc}") from None
    iat = claims["iat"]
    if not isinstance(iat, int | float) or not -_SKEW_S <= time.time() - iat <= MAX_AGE_S:
        raise TokenInvalid(f"logout_token rejected: issued more than {MAX_AGE_S} s ago, or in the future")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(EVENT), dict):
        raise TokenInvalid(f"logout_token rejected: its events claim does not hold {EVENT}")
    if "nonce" in claims:
        raise TokenInvalid("logout_token rejected: it carries a nonce (an ID token, not a logout token)")
    sub, sid = claims.get("sub"), claims.get("sid")
    if not (isinstance(sub, str) and sub) and not (isinstance(sid, str) and sid):
        raise TokenInvalid("logout_token rejected: it names neither a sub nor a sid")
    for name in ("sub", "sid"):
        if name in claims and not (isinstance(claims[name], str) and 0 < len(claims[name]) <= 255):
            raise TokenInvalid(f"logout_token rejected: {name} must be a string of 1 to 255 characters")
    if not isinstance(claims["jti"], str) or not seen.first(p.id, claims["jti"]):
        raise TokenInvalid("logout_token rejected: this jti was received before (a replay)")
    return claims


def session_key(sid: str) -> str:
    """What a portal session opened through the provider's sign-in page records of the provider's session (its
    ``sid``) in ``ApiToken.provider_jti``, where a session made from an access token records that token's id."""
    return f"sid:{sid}"


def apply(db: Database, verifier: OidcVerifier, claims: dict[str, Any]) -> list[str]:
    """End what the valid logout token ``claims`` name: the identity of its ``sub`` (where the provider's
    subject claim is ``sub``) blocked, the portal sessions of its ``sid`` revoked. The identities touched."""
    p = verifier.provider
    touched: list[str] = []
    sub, sid = claims.get("sub"), claims.get("sid")
    if isinstance(sub, str) and sub and p.name_claim == "sub":
        person = ExternalPerson(provider=p.id, issuer=p.issuer, subject=sub, display_name=None, email=None,
                                groups=frozenset(), role=Role(p.role))
        name = block(db, person)
        if name is not None:
            touched.append(name)
    if isinstance(sid, str) and sid:
        with db.session() as session:
            names = list(session.scalars(select(ApiToken.identity).join(
                Identity, Identity.name == ApiToken.identity).where(
                Identity.issuer == p.issuer, ApiToken.provider_jti == session_key(sid),
                ApiToken.revoked_at.is_(None))))
            if names:
                session.execute(update(ApiToken).where(
                    ApiToken.identity.in_(names), ApiToken.provider_jti == session_key(sid),
                    ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow()))
        touched.extend(n for n in dict.fromkeys(names) if n not in touched)
    _log.info("provider %s ended a session (back-channel logout): %s", p.id, ", ".join(touched) or "nobody known")
    return touched
