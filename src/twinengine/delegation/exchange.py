"""Token exchange (RFC 8693): a caller hands the engine its token and gets back a short-lived token for one
site (a lake storage endpoint, ``lake:<name>``, or a compute site, ``compute:<name>``), limited to some
scopes and twins, so that the site sees the person and no more than what the engine lets them do there.

The exchanged token is a scoped token (``delegation.scoped_tokens``) with an ``aud`` claim: the site verifies it
with the engine's JWKS (signature, ``iss``, ``aud``, ``exp``) and reads its limits from its own claims
(``scope``, space-separated; ``twins``, names, when it is limited to some); the engine itself refuses it (its
audience is another). It lives ``MAX_LIFETIME`` at most, never longer than the subject token it was made from,
whoever issued that (``auth.lifetimes``), and can be revoked like any token of one's own (sites that cannot ask
the engine see revocation only at its expiry).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.issuer import BuiltinIssuer, SignedToken
from twinengine.auth.principal import Principal
from twinengine.compute.models import ComputeSite
from twinengine.delegation.scoped_tokens import issue_scoped_token
from twinengine.errors import ValidationFailed
from twinengine.lake.models import Endpoint

__all__ = ["ACCESS_TOKEN", "GRANT_TYPE", "MAX_LIFETIME", "SUBJECT_TOKEN_TYPES", "exchange"]

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
SUBJECT_TOKEN_TYPES = frozenset({ACCESS_TOKEN, "urn:ietf:params:oauth:token-type:jwt"})
MAX_LIFETIME = timedelta(hours=1)
DEFAULT_LIFETIME = timedelta(minutes=15)


def _check_audience(session: Session, audience: str) -> None:
    kind, _, name = audience.partition(":")
    if kind == "lake" and name:
        found = session.scalar(select(Endpoint.name).where(Endpoint.name == name))
    elif kind == "compute" and name:
        found = session.scalar(select(ComputeSite.name).where(ComputeSite.name == name))
    else:
        raise ValidationFailed.one("audience", f"{audience!r} names no site: use lake:<endpoint> or "
                                               "compute:<site>")
    if found is None:
        raise ValidationFailed.one("audience", f"there is no {kind} site named {name!r}")


def exchange(session: Session, issuer: BuiltinIssuer, *, principal: Principal, audience: str,
             scopes: Sequence[str], twins: Sequence[str] | None = None,
             ttl: timedelta | None = None) -> SignedToken:
    """A token for ``audience`` standing for ``principal`` (whose token was verified), limited to ``scopes``
    and ``twins``; the same checks as any scoped token (never more than its creator)."""
    _check_audience(session, audience)
    lifetime = min(ttl or DEFAULT_LIFETIME, MAX_LIFETIME)
    return issue_scoped_token(session, issuer, principal=principal, scopes=scopes, twins=twins, ttl=lifetime,
                              note=f"exchanged for {audience}"[:200], audience=audience)
