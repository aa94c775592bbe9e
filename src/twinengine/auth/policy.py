"""Authorization in one place: a table from action name to a predicate over principal and resource.

Services call ``require(principal, "twin.operate", twin)`` at their entry points; daemons act as
``SYSTEM`` and pass. Admins pass everything. Swap ``RULES`` to change policy for a deployment.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from twinengine.auth.principal import Principal, Role
from twinengine.errors import PermissionDenied

__all__ = ["RULES", "Grantable", "Permission", "allowed", "require"]


class Permission(StrEnum):
    """What an owner may grant on a twin; ``operate`` includes ``read``."""

    READ = "read"
    OPERATE = "operate"


_RANK = {Permission.READ: 1, Permission.OPERATE: 2}


class Grantable(Protocol):
    """A resource with an owner who can grant others access (a twin)."""

    owner: str

    def permission_of(self, identity: str) -> Permission | None: ...


Rule = Callable[[Principal, Any], bool]


def any_role(principal: Principal, resource: Any) -> bool:
    return True


def role_in(*roles: Role) -> Rule:
    def rule(principal: Principal, resource: Any) -> bool:
        return principal.role in roles

    return rule


def owner() -> Rule:
    def rule(principal: Principal, resource: Grantable) -> bool:
        return resource.owner == principal.name

    return rule


def owner_or_granted(level: Permission) -> Rule:
    def rule(principal: Principal, resource: Grantable) -> bool:
        if resource.owner == principal.name:
            return True
        granted = resource.permission_of(principal.name)
        return granted is not None and _RANK[granted] >= _RANK[level]

    return rule


def admin_only(principal: Principal, resource: Any) -> bool:
    return False  # admins pass before rules are consulted


RULES: dict[str, Rule] = {
    "app.publish": role_in(Role.DEVELOPER),
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
    "audit.read": admin_only,
    "metrics.read": role_in(Role.PROVIDER),
    "collection.read": any_role,  # gridded collections through EDR
    "workflow.run": role_in(Role.USER, Role.DEVELOPER),  # a twin's workflow also needs twin.operate
    "workflow.cancel": owner(),  # cancel, change, delete a run
    "workflow.process.manage": any_role,  # one's own user-defined processes
    # the data lake: providers run storage; users, developers and providers put data in and read it back
    "lake.endpoint.manage": role_in(Role.PROVIDER),
    "lake.endpoint.read": any_role,
    "lake.read": any_role,  # the lake as a whole; each DID then as its origin says (lake.grants: twin, run, owner)
    "lake.write": role_in(Role.USER, Role.DEVELOPER, Role.PROVIDER),
    "lake.rule.create": role_in(Role.USER, Role.PROVIDER),
    "lake.rule.read": any_role,
    "lake.verify": role_in(Role.PROVIDER),
    "lake.import": role_in(Role.USER, Role.PROVIDER),
}


def allowed(principal: Principal, action: str, resource: Any = None) -> bool:
    rule = RULES[action]  # an unknown action is a bug, not a denial
    return principal.is_admin or rule(principal, resource)


def require(principal: Principal, action: str, resource: Any = None, *, target: str = "") -> None:
    """Raise PermissionDenied unless ``principal`` may perform ``action`` (on ``resource``)."""
    if not allowed(principal, action, resource):
        where = f" on {target}" if target else ""
        raise PermissionDenied(f"{principal.name} (role {principal.role.value}) may not {action}{where}")
