"""The policy table's group and scope cases: a group-owned resource belongs to the group's members, a grant to a
group reaches its members, group and identity names never stand for each other, and a scoped token is refused
what its scopes or twins leave out, admins' included, with the reason in the refusal."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from twinengine.auth.policy import Permission, allowed, require
from twinengine.auth.principal import Principal, Role
from twinengine.errors import PermissionDenied


@dataclass
class Thing:
    name: str
    owner: str
    owner_group: str | None = None
    grants: dict[str, Permission] = field(default_factory=dict)
    group_grants: dict[str, Permission] = field(default_factory=dict)
    id: str = "tw-000000000000"

    def permission_of(self, identity: str) -> Permission | None:
        return self.grants.get(identity)

    def group_permission_of(self, groups: frozenset[str]) -> Permission | None:
        found = {p for g, p in self.group_grants.items() if g in groups}
        return Permission.OPERATE if Permission.OPERATE in found else next(iter(found), None)


def who(name: str, role: Role = Role.USER, *, groups: tuple[str, ...] = (), scopes: tuple[str, ...] | None = None,
        twins: tuple[str, ...] | None = None) -> Principal:
    return Principal(name=name, role=role, groups=frozenset(groups),
                     scopes=None if scopes is None else frozenset(scopes),
                     twins=None if twins is None else frozenset(twins))


GROUP_TWIN = Thing(name="g", owner="alice", owner_group="hydro", group_grants={"readers": Permission.READ})
SHARED = Thing(name="s", owner="carol", group_grants={"readers": Permission.READ, "ops": Permission.OPERATE})


@pytest.mark.parametrize(("principal", "resource", "expected"), [
    # (who, on what) -> the actions allowed among read, operate, manage
    (who("bob", groups=("hydro",)), GROUP_TWIN, {"twin.read", "twin.operate", "twin.manage"}),
    (who("alice"), GROUP_TWIN, set()),  # the creator holds a group's twin only through the group
    (who("alice", groups=("hydro",)), GROUP_TWIN, {"twin.read", "twin.operate", "twin.manage"}),
    (who("dave", groups=("readers",)), GROUP_TWIN, {"twin.read"}),
    (who("hydro"), GROUP_TWIN, set()),  # an identity named like the group is not the group
    (who("eve", groups=("alice",)), Thing(name="a", owner="alice"), set()),  # nor a group named like an identity
    (who("dave", groups=("readers", "ops")), SHARED, {"twin.read", "twin.operate"}),
    (who("dave", groups=("ops",)), SHARED, {"twin.read", "twin.operate"}),
    (who("dave"), SHARED, set()),
    (who("carol"), SHARED, {"twin.read", "twin.operate", "twin.manage"}),
    (who("root", Role.ADMIN), SHARED, {"twin.read", "twin.operate", "twin.manage"}),
    # scoped tokens: the scope's actions, on its twins, and never more than the creator
    (who("carol", scopes=("twins:read",)), SHARED, {"twin.read"}),
    (who("carol", scopes=("twins:operate",), twins=("s",)), SHARED, {"twin.read", "twin.operate"}),
    (who("carol", scopes=("twins:operate",), twins=("other",)), SHARED, set()),
    (who("carol", scopes=("twins:operate",), twins=("tw-000000000000",)), SHARED, {"twin.read", "twin.operate"}),
    (who("dave", groups=("readers",), scopes=("twins:operate",)), SHARED, {"twin.read"}),
    (who("carol", scopes=("lake:read",)), SHARED, set()),
    (who("root", Role.ADMIN, scopes=("twins:read",)), SHARED, {"twin.read"}),
])
def test_group_and_scope_matrix(principal: Principal, resource: Thing, expected: set[str]) -> None:
    actions = ("twin.read", "twin.operate", "twin.manage")
    assert {a for a in actions if allowed(principal, a, resource)} == expected


@pytest.mark.parametrize(("principal", "action", "allowed_"), [
    (who("u", scopes=("twins:read",)), "twin.create", False),
    (who("u", scopes=("twins:manage",)), "twin.create", True),
    (who("u", scopes=("lake:read",)), "lake.write", False),
    (who("u", scopes=("lake:write",)), "lake.write", True),
    (who("u", Role.DEVELOPER, scopes=("apps:read",)), "app.publish", False),
    (who("u", Role.USER, scopes=("apps:publish",)), "app.publish", False),  # the role decides too
    (who("u", scopes=("twins:read",)), "token.own", False),
    (who("root", Role.ADMIN, scopes=("lake:write",)), "token.create", False),
    (who("root", Role.ADMIN, scopes=("lake:write",)), "group.manage", False),
    (who("u"), "token.own", True),
    (who("u"), "group.manage", False),
    (who("u"), "group.read", True),
])
def test_scopes_on_actions_without_a_resource(principal: Principal, action: str, allowed_: bool) -> None:
    assert allowed(principal, action) is allowed_


def test_refusals_say_why() -> None:
    with pytest.raises(PermissionDenied, match=r"scopes \(twins:read\) do not allow twin\.operate"):
        require(who("carol", scopes=("twins:read",)), "twin.operate", SHARED, target="twin s")
    with pytest.raises(PermissionDenied, match="limited to twins other, not s"):
        require(who("carol", scopes=("twins:read",), twins=("other",)), "twin.read", SHARED, target="twin s")
    with pytest.raises(PermissionDenied, match=r"^dave \(role user\) may not twin\.operate on twin s$"):
        require(who("dave", groups=("readers",)), "twin.operate", SHARED, target="twin s")
