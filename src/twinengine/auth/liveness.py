"""Whether an OpenID provider still vouches for a token in use, and what it says about the person now: asked by
token introspection (RFC 7662) with the engine's confidential client, on a token's first use and then at most
every ``recheck_s`` seconds. A provider answers ``active: false`` for a token it revoked or of a person it no
longer knows; the engine then ends that person's access at once (``block``): the identity is disabled, the
engine tokens and portal sessions made from their sign-ins are revoked, and the groups the provider asserted are
dropped. An answer that carries the groups or entitlements claims replaces those of the token (``refreshed``),
so a person the provider removes from a group leaves the engine group at the next recheck, not at their next
token. A provider that cannot introspect its access tokens may instead flag a suspended person in their tokens
(``disabled_claim``)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
from sqlalchemy import update

from twinengine.auth.claims import ExternalPerson
from twinengine.auth.external import find_identity, membership_source
from twinengine.auth.groups import set_memberships
from twinengine.auth.models import ApiToken
from twinengine.config import OidcProvider
from twinengine.errors import TokenInvalid
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["Answer", "Liveness", "block", "refreshed", "refused", "suspended"]

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

    def check(self, token: str) -> Answer:
        """``active``'s verdict with the provider's answer (remembered ``recheck_s`` seconds)."""
        if not self.enabled:
            return Answer(True)
        digest = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        with self._lock:
            known = self._answers.get(digest)
            if known is not None and (not known[0] or now - known[1] < float(self.provider.recheck_s or 0)):
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


def block(db: Database, person: ExternalPerson) -> str | None:
    """End the access of ``person``'s identity (its name; None when it has none): disabled (as an admin
    disables one, who may enable it again once the provider vouches for the person again), every engine token
    of it (portal sessions, scoped tokens) revoked, and the memberships the provider asserted removed."""
    with db.session() as session:
        identity = find_identity(session, issuer=person.issuer, subject=person.subject)
        if identity is None:
            return None
        identity.disabled = True
        revoked = session.execute(update(ApiToken).where(
            ApiToken.identity == identity.name, ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow()))
        set_memberships(session, identity=identity.name, groups=(), source=membership_source(person))
        name = identity.name
    _log.info("provider %s no longer vouches for %s: %s tokens revoked", person.provider, name,
              getattr(revoked, "rowcount", "?"))
    return name


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
