"""Portal sessions: a person signs in once with a token and the browser then holds a short-lived session
token of the engine's own issuer in an httpOnly cookie; writes also carry a CSRF token bound to it.

The session token is an ordinary engine token (recorded, revocable, audited), so every route accepts it
through the one verification path; signing out revokes it. The user's own token never stays in the browser.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from twinengine.auth.issuer import BuiltinIssuer, SignedToken
from twinengine.auth.lifetimes import end_of, provider_jti
from twinengine.auth.models import ApiToken
from twinengine.auth.principal import SYSTEM, Principal
from twinengine.auth.service import issue_token
from twinengine.errors import InvalidInput, TokenInvalid
from twinengine.store.base import utcnow

__all__ = ["SESSION_NOTE", "close_session", "csrf_token", "open_session"]

SESSION_NOTE = "portal session"


def open_session(session: Session, issuer: BuiltinIssuer, *, principal: Principal, ttl: timedelta) -> SignedToken:
    """A session token for the verified ``principal`` (from a built-in or an OIDC token), same name and role.

    A session lives ``ttl`` at most, and never longer than the token it was opened with (an engine token, or a
    provider's access token pasted in; ``auth.lifetimes``): a session token that opens a new session passes on
    its own end, so no chain of sessions outlives the first. One opened by the provider's sign-in page
    (``principal`` from its ID token, no token end) lives ``ttl``."""
    if principal.issuer == SYSTEM.issuer:
        raise InvalidInput("the engine's internal principal cannot sign in")
    if principal.scopes is not None or principal.twins is not None:  # a session would carry no limits
        raise InvalidInput("a scoped token cannot open a portal session: sign in with an unscoped token")
    used = session.get(ApiToken, principal.token_id) if principal.token_id and principal.issuer == issuer.issuer \
        else None
    not_after = end_of(principal, used.expires_at if used is not None else None)
    if not_after is not None and not_after <= utcnow():
        raise TokenInvalid("token has expired")
    return issue_token(session, issuer, principal=SYSTEM, name=principal.name, role=principal.role, ttl=ttl,
                       note=SESSION_NOTE, not_after=not_after, made_from=provider_jti(principal, issuer.issuer))


def close_session(session: Session, *, principal: Principal) -> bool:
    """Revoke the session token the principal came with; False when it was not a portal session."""
    record = session.get(ApiToken, principal.token_id) if principal.token_id else None
    if record is None or record.note != SESSION_NOTE or record.identity != principal.name:
        return False
    if record.revoked_at is None:
        record.revoked_at = utcnow()
    return True


def csrf_token(issuer: BuiltinIssuer, jti: str) -> str:
    """The CSRF token of the session whose token has id ``jti``: the page sends it in ``X-CSRF-Token``."""
    return issuer.mac("csrf", jti)
