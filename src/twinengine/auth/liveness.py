"""Whether an OpenID provider still vouches for a token in use, and what it says about the person now: asked by
token introspection (RFC 7662) with the engine's confidential client, on a token's first use and then at most
every ``recheck_s`` seconds. An answer that carries the groups or entitlements claims replaces those of the
token (``refreshed``), so a person the provider removes from a group leaves the engine group at the next
recheck, not at their next token. A provider that cannot introspect its access tokens may instead flag a
suspended person in their tokens (``disabled_claim``).

A provider answers ``active: false`` for a token it revoked (its holder signed out, a refresh token was
replayed and the provider ended the grant) and for every token of a person it removed or suspended: the answer
does not say which. So the token is refused and its person is put on hold (``hold``): the identity refuses
every token and session and its standing work (triggers, schedules, runs) stops, as a disabled one's does,
until the provider vouches for the person again (``release``: a token it says is active, asked after the hold
began, or a token it issued since), which a new sign-in does; nobody needs an admin. A token flagged suspended
does more (``block``): every engine token of the person is revoked and the groups the provider asserted are
dropped. An admin's disable is the admin's: the provider neither lifts nor replaces it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx
from sqlalchemy import update

from twinengine.auth.claims import ExternalPerson
from twinengine.auth.external import find_identity, membership_source
from twinengine.auth.groups import set_memberships
from twinengine.auth.models import ApiToken, Identity
from twinengine.config import OidcProvider
from twinengine.errors import TokenInvalid
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["Answer", "Liveness", "block", "held_by", "hold", "issued_at", "refreshed", "refused", "release",
           "suspended"]

_log = logging.getLogger(__name__)
_REMEMBERED = 4096  # tokens whose last answer is kept


@dataclass(frozen=True)
class Answer:
    """What the provider said about a token: ``active``; ``said``, the introspection answer (None when it was not
    asked or could not be reached); ``fresh`` when asked for this use rather than remembered."""

    active: bool
    said: dict[str, Any] | None = None
    fresh: bool = False


class Liveness:
    """The provider's answers about tokens, each kept ``provider.recheck_s`` seconds (a refusal for good)."""

    def __init__(self, provider: OidcProvider, endpoint: str | None, *, timeout: float = 10.0) -> None:
        self.provider = provider
        self.endpoint = endpoint
        self._timeout = timeout
        # digest -> (active, asked at, the answer)
        self._answers: OrderedDict[bytes, tuple[bool, float, dict[str, Any] | None]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Asked only where the provider offers introspection and the engine has a confidential client there."""
        p = self.provider
        return bool(self.endpoint and p.recheck_s is not None and p.client_id and p.client_secret)

    def active(self, token: str) -> bool:
        """False when the provider no longer vouches for ``token``; True when it does, when it was asked less
        than ``recheck_s`` ago, or when it cannot be reached (then it is asked again on the next use)."""
        return self.check(token).active

    def check(self, token: str, *, fresh: bool = False) -> Answer:
        """``active``'s verdict with the provider's answer (remembered ``recheck_s`` seconds; ``fresh``: an
        active one is asked again now, as for a person on hold)."""
        if not self.enabled:
            return Answer(True)
        digest = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        with self._lock:
            known = self._answers.get(digest)
            if known is not None and (not known[0] or (not fresh and now - known[1] <
                                                         float(self.provider.recheck_s or 0))):
                return Answer(known[0], known[2])
        said = self._ask(token)
        if said is None:
            return Answer(True)
        answer = Answer(said.get("active") is True, said if said.get("active") is True else None, fresh=True)
        with self._lock:
            self._answers[digest] = (answer.active, now, answer.said)
            self._answers.move_to_end(digest)
            while len(self._answers) > _REMEMBERED:
                self._answers.popitem(last=False)
        return answer

    def _ask(self, token: str) -> dict[str, Any] | None:
        p = self.provider
        assert self.endpoint is not None and p.client_id is not None and p.client_secret is not None
        try:
            response = httpx.post(self.endpoint, data={"token": token, "token_type_hint": "access_token"},
                                  auth=(p.client_id, p.client_secret), timeout=self._timeout)
            if response.status_code == 400 and "unsupported_token_type" in response.text:
                # e.g. panva's oidc-provider introspects no JWT access tokens: then only their lifetime bounds them
                _log.warning("provider %s cannot introspect its access tokens; not asked again", p.id)
                self.endpoint = None
                return None
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            _log.warning("token introspection at provider %s failed: %s", p.id, exc)
            return None
        return answer if isinstance(answer, dict) else {"active": False}


def refreshed(provider: OidcProvider, claims: dict[str, Any], said: dict[str, Any] | None) -> dict[str, Any]:
    """``claims`` of a token with the groups and entitlements the provider's answer ``said`` holds now, where it
    holds either (an answer with neither leaves the token's own: that provider tells nothing more)."""
    keys = [k for k in (provider.groups_claim, provider.entitlements_claim) if k]
    if said is None or not any(k in said for k in keys):
        return claims
    return {**claims, **{k: said.get(k) for k in keys}}


def held_by(provider: str) -> str:
    """What ``Identity.disabled_by`` says of an identity its provider (by id) put on hold."""
    return f"provider:{provider}"


def _disable(identity: Identity, person: ExternalPerson) -> None:
    """Disable ``identity`` for its provider, unless an admin disabled it first."""
    if not identity.disabled:
        identity.disabled, identity.disabled_by, identity.disabled_at = True, held_by(person.provider), utcnow()


def hold(db: Database, person: ExternalPerson, *, ended: str | None) -> str | None:
    """Put ``person``'s identity on hold (its name; None when it has none): the provider said a token of theirs
    (its ``jti``: ``ended``) is no longer active. What the engine made from that token (scoped and exchanged
    tokens, portal sessions) is revoked: it ended with it. Their other tokens, sessions and standing work are
    refused while the hold lasts (as a disabled identity's), not revoked: ``release`` lifts it when the
    provider vouches for them again."""
    with db.session() as session:
        identity = find_identity(session, issuer=person.issuer, subject=person.subject)
        if identity is None:
            return None
        _disable(identity, person)
        if ended is not None:
            session.execute(update(ApiToken).where(
                ApiToken.identity == identity.name, ApiToken.provider_jti == ended,
                ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow()))
        name = identity.name
    _log.info("provider %s no longer vouches for a token of %s: on hold until it vouches for them again",
              person.provider, name)
    return name


def release(db: Database, person: ExternalPerson, *, since: datetime | None) -> bool:
    """Lift the provider's hold on ``person``'s identity, where it began before ``since`` (when the provider
    vouched for them: the moment it answered that a token is active, or a token's ``iat``); an admin's disable
    stays. Whether a hold was lifted."""
    with db.session() as session:
        identity = find_identity(session, issuer=person.issuer, subject=person.subject)
        if identity is None or not identity.disabled or identity.disabled_by != held_by(person.provider):
            return False
        began = identity.disabled_at
        if since is None or (began is not None and since <= began):
            return False
        identity.disabled, identity.disabled_by, identity.disabled_at = False, None, None
        name = identity.name
    _log.info("provider %s vouches for %s again: the hold is lifted", person.provider, name)
    return True


def block(db: Database, person: ExternalPerson) -> str | None:
    """End the access of ``person``'s identity (its name; None when it has none), whom the provider flags
    suspended: on hold (as ``hold``; an admin's disable stays as it is), every engine token of it (portal
    sessions, scoped tokens) revoked, and the memberships the provider asserted removed."""
    with db.session() as session:
        identity = find_identity(session, issuer=person.issuer, subject=person.subject)
        if identity is None:
            return None
        _disable(identity, person)
        revoked = session.execute(update(ApiToken).where(
            ApiToken.identity == identity.name, ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow()))
        set_memberships(session, identity=identity.name, groups=(), source=membership_source(person))
        name = identity.name
    _log.info("provider %s says %s is suspended: %s tokens revoked", person.provider, name,
              getattr(revoked, "rowcount", "?"))
    return name


def issued_at(claims: dict[str, Any]) -> datetime | None:
    """When the provider issued the token ``claims`` are of (its ``iat``), if it says."""
    iat = claims.get("iat")
    return datetime.fromtimestamp(float(iat), UTC) if isinstance(iat, int | float) else None


def suspended(provider: OidcProvider, claims: dict[str, Any]) -> bool:
    """Whether ``claims`` carry the provider's flag that the person is suspended (``disabled_claim``)."""
    if provider.disabled_claim is None:
        return False
    flag = claims.get(provider.disabled_claim)
    return flag is True or (isinstance(flag, str) and flag.lower() == "true")


def refused(provider: OidcProvider) -> TokenInvalid:
    """The error of a token the provider no longer vouches for."""
    return TokenInvalid(f"OIDC provider {provider.id!r} no longer vouches for this token (revoked there, or the "
                        "person is no longer known there); sign in again")
