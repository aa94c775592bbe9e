"""Scoped tokens: a caller makes, for itself, a token limited to some scopes (``auth.scopes``), some twins and
a lifetime, for a script, CI or sharing data. It never does more than its creator: its scopes are checked
against what the creator may do when it is made, its role is the creator's, every use is judged by the rules
for the creator's identity as they stand then, it ends no later than the token it was made with (an engine
token or an OpenID provider's, ``auth.lifetimes``) and works only while that one does. Its limits are in its
claims too (``scope``, ``twins``), for a site that verifies it alone. Anyone may list and revoke their own
tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.issuer import BuiltinIssuer, SignedToken
from twinengine.auth.lifetimes import end_of, provider_jti
from twinengine.auth.models import ApiToken
from twinengine.auth.policy import RULES, require
from twinengine.auth.principal import Principal
from twinengine.auth.scopes import KEY_ACTIONS, SCOPES, TWIN_ACTIONS, check_scopes
from twinengine.auth.service import ensure_identity
from twinengine.errors import NotFound, PermissionDenied, TokenInvalid, ValidationFailed
from twinengine.store.base import utcnow
from twinengine.twins.service import get_twin

__all__ = ["MAX_TWINS", "issue_scoped_token", "list_own_tokens", "revoke_own_token"]

MAX_TWINS = 100


def _role_allows(principal: Principal, action: str) -> bool | None:
    """Whether the creator's role may do ``action`` at all (None: the resource decides, e.g. a twin's owner)."""
    try:
        return principal.is_admin or bool(RULES[action](principal, None))
    except AttributeError:
        return None


def issue_scoped_token(session: Session, issuer: BuiltinIssuer, *, principal: Principal, scopes: Sequence[str],
                       twins: Sequence[str] | None, ttl: timedelta | None, note: str | None = None,
                       audience: str | None = None) -> SignedToken:
    """A token for ``principal``'s own identity limited to ``scopes``, ``twins`` (None: any it may reach) and
    ``ttl``; refused (403) when it would carry a right its creator lacks. ``audience``: a token for that site
    only (token exchange)."""
    require(principal, "token.own", target="a scoped token")
    wanted = check_scopes(scopes)
    if ttl is None:
        raise ValidationFailed.one("expires_in", "a scoped token must expire: give a lifetime such as 7d")
    if principal.issuer == "internal":
        raise PermissionDenied("the engine's internal principal makes no scoped tokens")
    for scope in sorted(wanted):
        if _role_allows(principal, KEY_ACTIONS[scope]) is False:
            raise PermissionDenied(f"{principal.name} (role {principal.role.value}) may not {KEY_ACTIONS[scope]}, "
                                   f"so may not make a token with scope {scope}: a scoped token never does more "
                                   "than its creator")
    names: list[str] | None = None
    ids: list[str] | None = None
    if twins is not None:
        if not twins or len(twins) > MAX_TWINS:
            raise ValidationFailed.one("twins", f"list 1 to {MAX_TWINS} twins, or none for any")
        actions = sorted({a for s in wanted for a in SCOPES[s]} & TWIN_ACTIONS)
        found: dict[str, str] = {}
        for ref in dict.fromkeys(twins):
            twin = get_twin(session, principal=principal, ref=ref)  # 404 / 403 as for a read
            for action in actions:
                require(principal, action, twin, target=f"twin {ref} (a scoped token never does more than its "
                                                        "creator)")
            found[twin.id] = twin.name
        ids, names = list(found), list(found.values())
    parent: ApiToken | None = None
    if principal.issuer == issuer.issuer and principal.token_id is not None:
        parent = session.get(ApiToken, principal.token_id)
    # never past the token it is made with, whoever issued that (an OpenID provider's: minutes)
    ends = end_of(principal, parent.expires_at if parent is not None else None)
    if ends is not None and ends <= utcnow():
        raise TokenInvalid("the token this one would be made with has expired")
    identity = ensure_identity(session, principal.name, created_by=principal.issuer)
    limits: dict[str, Any] = {"scope": " ".join(sorted(wanted))}
    if names is not None:
        limits["twins"] = names
    signed = issuer.sign(principal.name, principal.role, ttl, not_after=ends, audience=audience, limits=limits)
    session.add(ApiToken(jti=signed.jti, identity=principal.name, identity_id=identity.id,
                         role=principal.role.value, issued_at=signed.issued_at, expires_at=signed.expires_at,
                         note=note or "scoped token", scopes=sorted(wanted), twins=names, twin_ids=ids,
                         parent_jti=parent.jti if parent is not None else None, audience=audience,
                         provider_jti=provider_jti(principal, issuer.issuer)))
    session.flush()
    return signed


def list_own_tokens(session: Session, *, principal: Principal) -> list[ApiToken]:
    """The caller's own tokens, scoped or not (their secrets are never stored)."""
    require(principal, "token.own")
    return list(session.scalars(select(ApiToken).where(ApiToken.identity == principal.name)
                                .order_by(ApiToken.issued_at)))


def revoke_own_token(session: Session, *, principal: Principal, jti: str) -> ApiToken:
    """Revoke one of the caller's own tokens (another's is not found, whether it exists or not)."""
    require(principal, "token.own", target=f"token {jti}")
    record = session.get(ApiToken, jti)
    if record is None or record.identity != principal.name:
        raise NotFound(f"you have no token with id {jti!r}")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
    return record
