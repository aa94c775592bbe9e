"""Authorization in one place: a table from action name to a predicate over principal and resource.

Services call ``require(principal, "twin.operate", twin)`` at their entry points; daemons act as
``SYSTEM`` and pass. Admins pass everything. Swap ``RULES`` to change policy for a deployment.

Groups: a resource owned by a group (``owner_group``: a twin, a lake dataset, an app) belongs to the group's
members, not to the identity that created it; a grant to a group reaches every member, and a group may hold
the right to publish its apps (``publisher``). Group names and identity names are two namespaces:
the rules never compare one with the other. Scoped tokens (``auth.scopes``) are refused what their scopes or
twins leave out before any rule is consulted, admins' included.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from twinengine.auth.principal import Principal, Role
from twinengine.auth.scopes import scope_refusal
from twinengine.errors import PermissionDenied

__all__ = ["RULES", "Grantable", "Permission", "allowed", "owns", "permission_for", "refusal", "require"]


class Permission(StrEnum):
    """What an owner may grant on a twin; ``operate`` includes ``read``."""

    READ = "read"
    OPERATE = "operate"


_RANK = {Permission.READ: 1, Permission.OPERATE: 2}


class Grantable(Protocol):
    """A resource with an owner who can grant others access (a twin). It may also have ``owner_group`` (the
    group that owns it, or None) and ``group_permission_of(groups)`` (the best grant to any of ``groups``)."""

    owner: str

    def permission_of(self, identity: str) -> Permission | None: ...


def owns(principal: Principal, resource: Grantable) -> bool:
    """Whether ``principal`` owns ``resource``: through its group when a group owns it, else by name."""
    group = getattr(resource, "owner_group", None)
    if group is not None:
        return group in principal.groups
    return resource.owner == principal.name


def permission_for(principal: Principal, resource: Grantable) -> Permission | None:
    """The best grant ``principal`` holds on ``resource``, given to it by name or to one of its groups."""
    best = resource.permission_of(principal.name)
    by_group = getattr(resource, "group_permission_of", None)
    if by_group is not None and principal.groups:
        other: Permission | None = by_group(principal.groups)
        if other is not None and (best is None or _RANK[other] > _RANK[best]):
            best = other
    return best


Rule = Callable[[Principal, Any], bool]


def any_role(principal: Principal, resource: Any) -> bool:
    return True


def role_in(*roles: Role) -> Rule:
    def rule(principal: Principal, resource: Any) -> bool:
        return principal.role in roles

    return rule


def owner() -> Rule:
    def rule(principal: Principal, resource: Grantable) -> bool:
        return owns(principal, resource)

    return rule


def owner_or_granted(level: Permission) -> Rule:
    def rule(principal: Principal, resource: Grantable) -> bool:
        if owns(principal, resource):
            return True
        granted = permission_for(principal, resource)
        return granted is not None and _RANK[granted] >= _RANK[level]

    return rule


def publisher(principal: Principal, resource: Any) -> bool:
    """``app.publish``: developers publish apps of nobody's in particular; an app for a group (``owner_group`` of
    the resource) is published by the group's members only, developers, or any role where the group holds the
    right to publish (``group_publishes``)."""
    group = getattr(resource, "owner_group", None)
    if group is None:
        return principal.role is Role.DEVELOPER
    return group in principal.groups and (principal.role is Role.DEVELOPER
                                          or bool(getattr(resource, "group_publishes", False)))


def admin_only(principal: Principal, resource: Any) -> bool:
    return False  # admins pass before rules are consulted


RULES: dict[str, Rule] = {
    "app.publish": publisher,  # a group's apps: its members (any role where the group holds the right)
    "app.read": any_role,
    "twin.create": role_in(Role.USER),
    "twin.list": any_role,
    "twin.read": owner_or_granted(Permission.READ),
    "twin.operate": owner_or_granted(Permission.OPERATE),
    "twin.manage": owner(),  # grants, delete
    "stream.append": owner_or_granted(Permission.OPERATE),  # ingest records (HTTP, WebSocket)
    "stream.read": owner_or_granted(Permission.READ),  # history, live events, functions, buffers
    "stream.manage": owner_or_granted(Permission.OPERATE),  # MQTT bindings, retraining buffers
    "identity.list": admin_only,
    "identity.manage": admin_only,  # disable, enable, delete
    "token.create": admin_only,
    "token.read": admin_only,
    "token.revoke": admin_only,
    "token.own": any_role,  # scoped tokens for oneself: create, list, revoke (delegation/scoped_tokens.py)
    "token.keys.rotate": admin_only,
    "group.manage": admin_only,  # create groups, add and remove members (local ones)
    "group.read": any_role,  # one's own groups (all of them for admins)
    "audit.read": admin_only,
    "metrics.read": role_in(Role.PROVIDER),
    "collection.read": any_role,  # gridded collections through EDR
    "workflow.run": role_in(Role.USER, Role.DEVELOPER),  # a twin's workflow also needs twin.operate
    "workflow.cancel": owner(),  # cancel, change, delete a run
    "workflow.process.manage": any_role,  # one's own user-defined processes
    "assimilation.run": role_in(Role.USER, Role.DEVELOPER),  # a twin's cycles also need its twin.operate
    "calibration.run": role_in(Role.USER, Role.DEVELOPER),  # a twin's calibration also needs its twin.operate
    "calibration.decide": owner_or_granted(Permission.OPERATE),  # accept or reject: sets the twin's parameters
    # the data lake: providers run storage; users, developers and providers put data in and read it back
    "lake.endpoint.manage": role_in(Role.PROVIDER),
    "lake.endpoint.read": any_role,
    "lake.read": any_role,  # the lake as a whole; each DID then as its origin says (lake.grants: twin, run, owner)
    "lake.write": role_in(Role.USER, Role.DEVELOPER, Role.PROVIDER),
    "lake.rule.create": role_in(Role.USER, Role.PROVIDER),
    "lake.rule.read": any_role,
    "lake.verify": role_in(Role.PROVIDER),
    "lake.import": role_in(Role.USER, Role.PROVIDER),
    # federated compute: providers run sites; everyone sees them and their own usage; admins set quotas
    "compute.site.manage": role_in(Role.PROVIDER),
    "compute.site.read": any_role,
    "compute.usage.read": any_role,  # one's own usage and quotas
    "compute.usage.read_all": admin_only,  # everyone's
    "compute.quota.manage": admin_only,
    # subscriptions: anyone may subscribe to a twin it may read (twin.read as well); each manages its own
    "subscription.create": any_role,  # subscribe, list one's own
    "subscription.manage": owner(),  # show, delete, test-send one's own subscription
    # the data space: owners offer their data; anyone may consume; admins keep the register of participants;
    # a participant's use of an offer or agreement is judged by its ODRL policy at each phase (dataspace.gates)
    "dataspace.offer.create": role_in(Role.USER, Role.DEVELOPER, Role.PROVIDER),  # offer, list, withdraw, revoke
    "dataspace.consume": role_in(Role.USER, Role.DEVELOPER, Role.PROVIDER),  # catalogs, negotiations, transfers
    "dataspace.participant.manage": admin_only,
    "dataspace.use": lambda principal, gate: bool(gate.permits(principal)),
}


def refusal(principal: Principal, action: str, resource: Any = None) -> str | None:
    """Why ``principal`` may not perform ``action`` (on ``resource``): a scoped token's limits first, then
    the rule; None when it may."""
    rule = RULES[action]  # an unknown action is a bug, not a denial
    limited = scope_refusal(principal, action, resource)
    if limited is not None:
        return limited
    if principal.is_admin or rule(principal, resource):
        return None
    return ""


def allowed(principal: Principal, action: str, resource: Any = None) -> bool:
    return refusal(principal, action, resource) is None


def require(principal: Principal, action: str, resource: Any = None, *, target: str = "") -> None:
    """Raise PermissionDenied unless ``principal`` may perform ``action`` (on ``resource``)."""
    why = refusal(principal, action, resource)
    if why is not None:
        where = f" on {target}" if target else ""
        because = f": {why}" if why else ""
        raise PermissionDenied(f"{principal.name} (role {principal.role.value}) may not {action}{where}{because}")
