"""How long a credential made from another may live: never past the one it was made from.

A scoped token, a token exchanged for a site, a portal session and a token an identity makes for itself are
made from the token their caller came with, whatever its issuer: the engine's own, or an OpenID provider's
access token (minutes, at most providers). Each ends no later than that token (``Principal.expires_at``), so
nothing made from a provider's sign-in outlives it, and a person the provider stops vouching for is left with
nothing that the engine made from their sign-ins once their last provider token has expired. What is made
from a provider's token records it (``provider_jti``), and is revoked as soon as the provider says that token
is no longer active (``auth.liveness.hold``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twinengine.auth.principal import SYSTEM, Principal

__all__ = ["end_of", "provider_jti", "token_end"]


def token_end(claims: dict[str, Any], recorded: datetime | None = None) -> datetime | None:
    """When a token ends: the sooner of its ``exp`` claim and the expiry its record holds (None: neither)."""
    exp = claims.get("exp")
    ends = [t for t in (recorded, datetime.fromtimestamp(float(exp), UTC) if isinstance(exp, int | float) else None)
            if t is not None]
    return min(ends) if ends else None


def end_of(principal: Principal, *others: datetime | None) -> datetime | None:
    """The latest end a credential made from ``principal``'s token may have: that token's end, and any of
    ``others`` (a parent token's, a setting's), the soonest of them; None when none is bounded."""
    ends = [t for t in (principal.expires_at, *others) if t is not None]
    return min(ends) if ends else None


def provider_jti(principal: Principal, engine_issuer: str) -> str | None:
    """The id of the OpenID provider's token ``principal`` came with, recorded on what is made from it so that
    it ends when the provider ends that token (None: an engine token, the engine itself, no ``jti``)."""
    if principal.issuer in (engine_issuer, SYSTEM.issuer):
        return None
    return principal.token_id
