"""Who is calling, and in which role: the result of verifying a token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["GROUP_NAME_PATTERN", "RESERVED_NAMES", "SYSTEM", "Principal", "Role", "reserved"]

GROUP_NAME_PATTERN = r"^[a-z0-9][a-z0-9._:-]{0,63}$"
"""Group names: lower-case letters, digits, '.', '_', ':' and '-' (a provider's VO names keep their dots)."""


class Role(StrEnum):
    """What a token lets its holder do (see ``auth.policy`` for the table)."""

    DEVELOPER = "developer"  # publishes DT applications
    USER = "user"  # creates, runs and reads twins
    PROVIDER = "provider"  # manages storage and compute endpoints
    ADMIN = "admin"  # everything


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: identity name, role of the token used, and where the token came from."""

    name: str
    role: Role
    issuer: str = "twinengine"
    token_id: str | None = None
    groups: frozenset[str] = frozenset()  # the groups the identity is in when the request is authorised
    # A scoped token's limits (``auth.scopes``): the scopes it carries and the twins (names or ids) it is for,
    # and, where the token recorded them, those twins' ids (the limit itself: a twin made later under one of
    # the names is not among them); None: not limited in that way.
    scopes: frozenset[str] | None = None
    twins: frozenset[str] | None = None
    twin_ids: frozenset[str] | None = None
    # When the token the caller came with ends (None: never, or not known): a token made from it (a scoped or
    # an exchanged token, a portal session) ends no later (``auth.lifetimes``).
    expires_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


# Daemons and engine-internal work act as this principal; it never comes from a token.
SYSTEM = Principal(name="system", role=Role.ADMIN, issuer="internal")

# Names the engine records for itself: SYSTEM's (owner and lake origin of what the engine makes), the author of
# retraining it starts, the audit actor of requests without a token and of admin commands run beside the store.
# No token or OIDC subject may carry one, or its holder would be taken for the engine.
RESERVED_NAMES = frozenset({SYSTEM.name, "engine", "anonymous", "local-admin"})


def reserved(name: str) -> bool:
    """Whether ``name`` is one the engine keeps for itself (in any letter case: no look-alike in a listing)."""
    return name.casefold() in RESERVED_NAMES
