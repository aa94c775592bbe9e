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

__all__ = ["KEY_ACTIONS", "SCOPES", "TWIN_ACTIONS", "check_scopes", "scope_refusal", "twin_ids_only", "twin_limit",
           "twin_of", "within_twins"]

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

_NOT_SAID = object()


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes, each one known (a 422 naming the unknown one and listing the vocabulary otherwise)."""
    found = frozenset(scopes)
    for scope in sorted(found):
        if scope not in SCOPES:
            raise ValidationFailed.one("scope", f"unknown scope {scope!r}; known: {', '.join(sorted(SCOPES))}")
    if not found:
        raise ValidationFailed.one("scope", "a scoped token needs at least one scope")
    return found


def twin_of(resource: Any, action: str) -> tuple[frozenset[str], str] | None:
    """The keys (id, and names where known) of the twin ``resource`` is or belongs to, and its name to show;
    None when it belongs to no twin. Everything of a twin names it by ``twin_id`` (a twin: its own id; a
    run, subscription, delivery, calibration: their twin's), and a twin's name by ``twin_name`` where it
    keeps one; a resource that names none is the twin itself when the action is one on a twin."""
    if resource is None:
        return None
    own = getattr(resource, "twin_id", _NOT_SAID)
    if own is None:
        return None  # of no twin: a run without one, a lake upload
    itself = own is _NOT_SAID or getattr(resource, "id", None) == own  # the twin itself
    if own is _NOT_SAID and action not in TWIN_ACTIONS:
        return None
    name = getattr(resource, "name", None) if itself else getattr(resource, "twin_name", None)
    keys = {getattr(resource, "id", None) if own is _NOT_SAID else own, name}
    found = frozenset(k for k in keys if isinstance(k, str))
    return found, str(name or next(iter(sorted(found)), "this twin"))


def twin_ids_only(principal: Principal) -> bool:
    """Whether ``principal``'s twin limit is by id alone (``twin_limit``): the token recorded its twins' ids."""
    return principal.twin_ids is not None


def twin_limit(principal: Principal) -> frozenset[str] | None:
    """The twins ``principal``'s token is limited to, for a listing's filter: their ids where the token recorded
    them (match ``Twin.id``), else the names or ids it lists; None: not limited."""
    return principal.twin_ids if principal.twin_ids is not None else principal.twins


def within_twins(principal: Principal, keys: frozenset[str]) -> bool:
    """Whether a twin named by ``keys`` is one ``principal``'s token is limited to (always, when unlimited): by
    id where the token recorded its twins' ids (a twin made later under one of its names is another), else by
    the names or ids it lists."""
    limit = twin_limit(principal)
    return limit is None or bool(keys & limit)


def scope_refusal(principal: Principal, action: str, resource: Any) -> str | None:
    """Why ``principal``'s token limits refuse ``action`` on ``resource`` (None: they allow it). A token limited
    to some twins is refused every action on anything of another twin (``twin_of``), whatever the action."""
    if principal.scopes is not None and not any(action in SCOPES.get(s, ()) for s in principal.scopes):
        return f"the token's scopes ({', '.join(sorted(principal.scopes))}) do not allow {action}"
    if principal.twins is not None or principal.twin_ids is not None:
        found = twin_of(resource, action)
        if found is not None and not within_twins(principal, found[0]):
            limit = sorted(principal.twins or principal.twin_ids or ())
            return f"the token is limited to twins {', '.join(limit)}, not {found[1]}"
    return None
