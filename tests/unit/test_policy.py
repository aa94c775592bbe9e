"""The policy table: roles, ownership and grants decide; admins pass everything."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from twinengine.auth.policy import RULES, Permission, allowed, require
from twinengine.auth.principal import Principal, Role
from twinengine.errors import PermissionDenied


@dataclass
class Thing:
    owner: str
    grants: dict[str, Permission] = field(default_factory=dict)

    def permission_of(self, identity: str) -> Permission | None:
        return self.grants.get(identity)


def who(name: str, role: Role) -> Principal:
    return Principal(name=name, role=role)


@pytest.mark.parametrize(("action", "roles"), [
    ("app.publish", {Role.DEVELOPER, Role.ADMIN}),
    ("twin.create", {Role.USER, Role.ADMIN}),
    ("audit.read", {Role.ADMIN}),
    ("token.create", {Role.ADMIN}),
    ("metrics.read", {Role.PROVIDER, Role.ADMIN}),
    ("app.read", set(Role)),
])
def test_role_rules(action: str, roles: set[Role]) -> None:
    assert {r for r in Role if allowed(who("x", r), action)} == roles


def test_twin_access_follows_owner_and_grants() -> None:
    twin = Thing(owner="uma", grants={"rita": Permission.READ, "otto": Permission.OPERATE})
    uma, rita, otto, eve = (who(n, Role.USER) for n in ("uma", "rita", "otto", "eve"))
    assert allowed(uma, "twin.manage", twin) and allowed(uma, "twin.operate", twin)
    assert allowed(rita, "twin.read", twin) and not allowed(rita, "twin.operate", twin)
    assert allowed(otto, "twin.operate", twin) and not allowed(otto, "twin.manage", twin)
    assert not allowed(eve, "twin.read", twin)
    assert allowed(who("root", Role.ADMIN), "twin.manage", twin)
    with pytest.raises(PermissionDenied, match=r"eve \(role user\) may not twin\.read on twin t"):
        require(eve, "twin.read", twin, target="twin t")


def test_unknown_actions_are_bugs_not_denials() -> None:
    with pytest.raises(KeyError):
        allowed(who("x", Role.ADMIN), "twin.teleport")
    assert all(callable(rule) for rule in RULES.values())


def _documented_rules() -> dict[str, str]:
    """Action → "who" of the policy table in docs/access.md."""
    text = (Path(__file__).parents[2] / "docs" / "access.md").read_text()
    section = text.split("## Roles and the policy table", 1)[1].split("\n## ", 1)[0]
    found: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not line.startswith("| `"):
            continue
        for action in re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", cells[0]):
            assert action not in found, f"{action} is listed twice"
            found[action] = cells[1]
    return found


def test_the_documented_policy_table_is_the_code() -> None:
    documented = _documented_rules()
    assert set(documented) == set(RULES), "docs/access.md lists other actions than auth.policy.RULES"
    others = (Role.DEVELOPER, Role.USER, Role.PROVIDER)
    for action, rule in RULES.items():
        text = documented[action].split("(", 1)[0]
        try:
            roles = {r for r in others if rule(who("x", r), None)}
        except AttributeError:  # decided by the resource (its owner, grants)
            assert "owner" in text, action
            continue
        listed = {"every role": set(others), "admin only": set()}.get(text.strip())
        if listed is None:
            listed = {Role(word) for word in re.findall(r"[a-z]+", text)}
        assert listed == roles, f"{action}: the docs say {documented[action]!r}"


@dataclass
class TwinOf:
    """Something of a twin, as runs, subscriptions and deliveries are: its owner's, naming its twin by id."""

    owner: str
    twin_id: str | None
    twin_name: str | None = None

    def permission_of(self, identity: str) -> Permission | None:
        return None


@dataclass
class ATwin(Thing):
    id: str = "tw-a"
    name: str = "sa"

    @property
    def twin_id(self) -> str:
        return self.id


@pytest.mark.parametrize("action", ["subscription.manage", "workflow.cancel", "calibration.decide"])
def test_a_token_limited_to_some_twins_reaches_nothing_of_another_twin(action: str) -> None:
    """The limit holds for everything that names a twin, whatever the action, not only for a twin's own routes."""
    limited = Principal(name="uma", role=Role.USER, scopes=frozenset({"subscriptions:manage", "workflows:run",
                                                                     "twins:operate"}),
                        twins=frozenset({"sa"}), twin_ids=frozenset({"tw-a"}))
    theirs = TwinOf(owner="uma", twin_id="tw-b", twin_name="sb")
    assert not allowed(limited, action, theirs)
    assert allowed(limited, action, TwinOf(owner="uma", twin_id="tw-a", twin_name="sa"))
    assert allowed(limited, action, TwinOf(owner="uma", twin_id=None))  # of no twin: a run without one
    # by id where the token recorded them: a twin made later under the name it lists is another twin
    assert not allowed(limited, action, TwinOf(owner="uma", twin_id="tw-new", twin_name="sa"))
    with pytest.raises(PermissionDenied, match="limited to twins sa, not sb"):
        require(limited, action, theirs)
    assert allowed(Principal(name="uma", role=Role.USER), action, theirs)  # an unlimited token: the rule decides


def test_a_twin_is_judged_by_the_id_its_token_recorded() -> None:
    limited = Principal(name="uma", role=Role.USER, twins=frozenset({"sa"}), twin_ids=frozenset({"tw-a"}))
    assert allowed(limited, "twin.read", ATwin(owner="uma"))
    assert not allowed(limited, "twin.read", ATwin(owner="uma", id="tw-later"))  # "sa" again, made since
    assert not allowed(limited, "calibration.run", ATwin(owner="uma", id="tw-b", name="sb"))
    by_name = Principal(name="uma", role=Role.USER, twins=frozenset({"sa"}))  # a token that recorded names only
    assert allowed(by_name, "subscription.manage", TwinOf(owner="uma", twin_id="tw-a", twin_name="sa"))
    assert not allowed(by_name, "subscription.manage", TwinOf(owner="uma", twin_id="tw-b", twin_name="sb"))
