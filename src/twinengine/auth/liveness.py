"""Whether an OpenID provider still vouches for a token in use: asked by token introspection (RFC 7662) with
the engine's confidential client, on a token's first use and then at most every ``recheck_s`` seconds. A
provider answers ``active: false`` for a token it revoked or of a person it no longer knows; the engine then
ends that person's access at once (``block``): the identity is disabled, the engine tokens and portal
sessions made from their sign-ins are revoked, and the groups the provider asserted are dropped. A provider
that cannot introspect its access tokens may instead flag a suspended person in their tokens
(``disabled_claim``)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
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

__all__ = ["Liveness", "block", "refused", "suspended"]

_log = logging.getLogger(__name__)
_REMEMBERED = 4096  # tokens whose last answer is kept


class Liveness:
    """The provider's answers about tokens, each kept ``provider.recheck_s`` seconds (a refusal for good)."""

    def __init__(self, provider: OidcProvider, endpoint: str | None, *, timeout: float = 10.0) -> None:
        self.provider = provider
        self.endpoint = endpoint
        self._timeout = timeout
        self._answers: OrderedDict[bytes, tuple[bool, float]] = OrderedDict()  # digest -> (active, asked at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Asked only where the provider offers introspection and the engine has a confidential client there."""
        p = self.provider
        return bool(self.endpoint and p.recheck_s is not None and p.client_id and p.client_secret)

    def active(self, token: str) -> bool:
        """False when the provider no longer vouches for ``token``; True when it does, when it was asked less
        than ``recheck_s`` ago, or when it cannot be reached (then it is asked again on the next use)."""
        if not self.enabled:
            return True
        digest = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        with self._lock:
            known = self._answers.get(digest)
            if known is not None and (not known[0] or now - known[1] < float(self.provider.recheck_s or 0)):
                return known[0]
        answer = self._ask(token)
        if answer is None:
            return True
        with self._lock:
            self._answers[digest] = (answer, now)
            self._answers.move_to_end(digest)
            while len(self._answers) > _REMEMBERED:
                self._answers.popitem(last=False)
        return answer

    def _ask(self, token: str) -> bool | None:
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
        return bool(isinstance(answer, dict) and answer.get("active") is True)


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
