"""The scope vocabulary of scoped tokens: each scope names the policy actions (``auth.policy.RULES``) it lets
a token do. A scoped token may do an action only when one of its scopes lists it *and* its creator may do
it (the rules are evaluated for the creator's identity and role at every use).

Nothing that manages tokens, identities, groups or the audit log is in any scope: a scoped token cannot make
another token, nor widen its own limits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twinengine.auth.principal import Principal
from twinengine.errors import ValidationFailed

__all__ = ["KEY_ACTIONS", "SCOPES", "TWIN_ACTIONS", "check_scopes", "scope_refusal"]

_READ_TWINS = ("twin.list", "twin.read", "stream.read", "app.read", "collection.read")

SCOPES: dict[str, frozenset[str]] = {
    "twins:read": frozenset(_READ_TWINS),
    "twins:operate": frozenset((*_READ_TWINS, "twin.operate", "stream.append", "stream.manage", "workflow.run",
                                "workflow.cancel", "assimilation.run", "calibration.run", "calibration.decide")),
    "twins:manage": frozenset((*_READ_TWINS, "twin.create", "twin.manage")),
    "streams:read": frozenset(("twin.list", "twin.read", "stream.read")),
    "streams:write": frozenset(("twin.list", "stream.append")),
    "workflows:run": frozenset(("twin.list", "twin.read", "workflow.run", "workflow.cancel",
                                "workflow.process.manage", "assimilation.run")),
    "subscriptions:manage": frozenset(("twin.list", "twin.read", "subscription.create", "subscription.manage")),
    "apps:read": frozenset(("app.read",)),
    "apps:publish": frozenset(("app.read", "app.publish")),
    "lake:read": frozenset(("lake.read", "lake.endpoint.read", "lake.rule.read", "collection.read")),
    "lake:write": frozenset(("lake.read", "lake.endpoint.read", "lake.rule.read", "lake.write",
                             "lake.rule.create", "lake.import")),
}
"""Scope → the actions it allows."""

KEY_ACTIONS: dict[str, str] = {
    "twins:read": "twin.read", "twins:operate": "twin.operate", "twins:manage": "twin.manage",
    "streams:read": "stream.read", "streams:write": "stream.append", "workflows:run": "workflow.run",
    "subscriptions:manage": "subscription.create",
    "apps:read": "app.read", "apps:publish": "app.publish", "lake:read": "lake.read", "lake:write": "lake.write",
}
"""Scope → the action that gives it its name: a creator who may not do it may not ask for the scope."""

TWIN_ACTIONS = frozenset(a for actions in SCOPES.values() for a in actions
                         if a.startswith(("twin.", "stream.")) and a not in ("twin.list", "twin.create"))
"""Actions on one twin: a token limited to some twins does them on those twins only."""


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes, each one known (a 422 naming the unknown one and listing the vocabulary otherwise)."""
    found = frozenset(scopes)
    for scope in sorted(found):
        if scope not in SCOPES:
            raise ValidationFailed.one("scope", f"unknown scope {scope!r}; known: {', '.join(sorted(SCOPES))}")
    if not found:
        raise ValidationFailed.one("scope", "a scoped token needs at least one scope")
    return found


def scope_refusal(principal: Principal, action: str, resource: Any) -> str | None:
    """Why ``principal``'s token limits refuse ``action`` on ``resource`` (None: they allow it)."""
    if principal.scopes is not None and not any(action in SCOPES.get(s, ()) for s in principal.scopes):
        return f"the token's scopes ({', '.join(sorted(principal.scopes))}) do not allow {action}"
    if principal.twins is not None and action in TWIN_ACTIONS and resource is not None:
        names = {getattr(resource, "name", None), getattr(resource, "id", None)}
        if not names & principal.twins:
            shown = getattr(resource, "name", None) or "this twin"
            return f"the token is limited to twins {', '.join(sorted(principal.twins))}, not {shown}"
    return None
