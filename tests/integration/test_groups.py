"""Groups: memberships by source, group-owned twins, grants to groups, access that follows membership."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from helpers import Engine, make_app
from twinengine.auth.groups import groups_of, set_memberships, with_groups
from twinengine.auth.models import Identity
from twinengine.auth.policy import allowed
from twinengine.auth.principal import Principal, Role
from twinengine.errors import InvalidInput
from twinengine.twins import service as twins_service
from twinengine.twins.models import Twin


def _identities(engine: Engine, *names: str) -> None:
    with engine.runtime.db.session() as session:
        for name in names:
            if session.get(Identity, name) is None:
                session.add(Identity(name=name, created_by="test"))


def test_set_memberships_replaces_only_its_own_source(engine: Engine) -> None:
    _identities(engine, "alice", "bob")
    with engine.runtime.db.session() as session:
        set_memberships(session, identity="alice", groups=["hydro", "vo.example.org:members"], source="local")
        set_memberships(session, identity="alice", groups=["hydro", "climate"], source="provider:egi")
        set_memberships(session, identity="bob", groups=["climate"], source="provider:egi")
    with engine.runtime.db.session() as session:
        assert groups_of(session, "alice") == {"hydro", "vo.example.org:members", "climate"}
        # the provider no longer asserts hydro and climate: the local hydro stays, climate goes
        set_memberships(session, identity="alice", groups=[], source="provider:egi")
    with engine.runtime.db.session() as session:
        assert groups_of(session, "alice") == {"hydro", "vo.example.org:members"}
        assert groups_of(session, "bob") == {"climate"}
        assert groups_of(session, "nobody") == frozenset()


@pytest.mark.parametrize(("group", "source"), [("Has Space", "local"), ("ok", "somewhere"), ("", "local"),
                                               ("x" * 65, "local")])
def test_set_memberships_refuses_bad_names_and_sources(engine: Engine, group: str, source: str) -> None:
    _identities(engine, "alice")
    with engine.runtime.db.session() as session, pytest.raises(InvalidInput):
        set_memberships(session, identity="alice", groups=[group], source=source)


class Actor:
    """One identity calling the in-process engine with its own token."""

    def __init__(self, engine: Engine, name: str, role: str = "user") -> None:
        self.engine, self.name = engine, name
        self.auth = engine.headers(engine.token(name, role))

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self.engine.http.request(method, path, json=body, headers=self.auth)


def _twin(actor: Actor, name: str, group: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"app": "grp-app", "name": name, "parameters": {"station": "ST-01"}}
    if group is not None:
        body["group"] = group
    made = actor.call("POST", "/api/v1/twins", body)
    assert made.status_code == 201, made.text
    return dict(made.json())


def _write(actor: Actor, twin: str) -> int:
    return int(actor.call("PATCH", f"/api/v1/twins/{twin}/state", {"reported": {"level": {"value": 1.0}}})
               .status_code)


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> dict[str, Actor]:
    engine.as_role("dev", "developer").publish_app(make_app(tmp_path, name="grp-app"))
    actors = {n: Actor(engine, n) for n in ("alice", "bob", "carol", "dave")}
    actors["admin"] = Actor.__new__(Actor)
    actors["admin"].engine, actors["admin"].name = engine, "admin"
    actors["admin"].auth = engine.headers(engine.admin_token)
    made = actors["admin"].call("POST", "/api/v1/groups", {"name": "hydro", "description": "river people"})
    assert made.status_code == 201, made.text
    for who in ("alice", "bob"):
        added = actors["admin"].call("PUT", f"/api/v1/groups/hydro/members/{who}")
        assert added.status_code == 200, added.text
    return actors


def test_a_group_owned_twin_follows_membership_at_once(world: dict[str, Actor]) -> None:
    alice, bob, carol, admin = world["alice"], world["bob"], world["carol"], world["admin"]
    twin = _twin(alice, "hydro-reach", group="hydro")
    assert twin["owner_group"] == "hydro" and twin["owner"] == "alice" and twin["access"] == "owner"
    assert bob.call("GET", "/api/v1/twins/hydro-reach").json()["access"] == "owner"
    assert _write(bob, "hydro-reach") == 200
    assert [t["name"] for t in bob.call("GET", "/api/v1/twins").json()["items"]] == ["hydro-reach"]
    refused = carol.call("GET", "/api/v1/twins/hydro-reach")
    assert refused.status_code == 403 and "twin.read" in refused.json()["message"]
    assert carol.call("GET", "/api/v1/twins").json()["total"] == 0
    # bob leaves the group: his very next request is refused, listing included
    assert admin.call("DELETE", "/api/v1/groups/hydro/members/bob").status_code == 204
    assert bob.call("GET", "/api/v1/twins/hydro-reach").status_code == 403
    assert _write(bob, "hydro-reach") == 403
    assert bob.call("GET", "/api/v1/twins").json()["total"] == 0
    # and the creator too holds the twin only through the group
    assert admin.call("DELETE", "/api/v1/groups/hydro/members/alice").status_code == 204
    assert alice.call("GET", "/api/v1/twins/hydro-reach").status_code == 403
    assert admin.call("PUT", "/api/v1/groups/hydro/members/carol").status_code == 200
    assert carol.call("DELETE", "/api/v1/twins/hydro-reach").status_code == 204


def test_a_twin_is_made_only_for_a_group_one_is_in(world: dict[str, Actor]) -> None:
    refused = world["carol"].call("POST", "/api/v1/twins", {"app": "grp-app", "name": "not-mine",
                                                            "parameters": {"station": "ST-01"}, "group": "hydro"})
    assert refused.status_code == 403 and "not in group hydro" in refused.json()["message"]
    missing = world["alice"].call("POST", "/api/v1/twins", {"app": "grp-app", "name": "nowhere",
                                                            "parameters": {"station": "ST-01"}, "group": "nope"})
    assert missing.status_code == 422 and "group" in missing.text
    bad = world["alice"].call("POST", "/api/v1/twins", {"app": "grp-app", "name": "bad",
                                                        "parameters": {"station": "ST-01"}, "group": "Not A Group"})
    assert bad.status_code == 422 and "group" in bad.text


def test_a_grant_to_a_group_reaches_its_members_only_while_members(world: dict[str, Actor]) -> None:
    alice, bob, carol, dave, admin = (world[n] for n in ("alice", "bob", "carol", "dave", "admin"))
    _twin(carol, "carol-reach")
    assert admin.call("POST", "/api/v1/groups", {"name": "readers"}).status_code == 201
    assert admin.call("PUT", "/api/v1/groups/readers/members/dave").status_code == 200
    granted = carol.call("PUT", "/api/v1/twins/carol-reach/group-grants/readers", {"permission": "read"})
    assert granted.status_code == 200, granted.text
    assert carol.call("PUT", "/api/v1/twins/carol-reach/group-grants/hydro",
                      {"permission": "operate"}).status_code == 200
    assert dave.call("GET", "/api/v1/twins/carol-reach").json()["access"] == "read"
    assert _write(dave, "carol-reach") == 403
    assert _write(bob, "carol-reach") == 200 and _write(alice, "carol-reach") == 200
    assert dave.call("GET", "/api/v1/twins/carol-reach/state").status_code == 200  # the fast read path too
    assert [g["group"] for g in carol.call("GET", "/api/v1/twins/carol-reach/group-grants").json()] == \
        ["hydro", "readers"]
    assert dave.call("PUT", "/api/v1/twins/carol-reach/group-grants/readers",
                     {"permission": "operate"}).status_code == 403  # a member may not widen the grant
    assert admin.call("DELETE", "/api/v1/groups/readers/members/dave").status_code == 204
    assert dave.call("GET", "/api/v1/twins/carol-reach/state").status_code == 403
    assert carol.call("DELETE", "/api/v1/twins/carol-reach/group-grants/hydro").status_code == 204
    assert _write(bob, "carol-reach") == 403


def test_a_group_named_like_an_identity_is_not_that_identity(engine: Engine, world: dict[str, Actor]) -> None:
    alice, bob, admin = world["alice"], world["bob"], world["admin"]
    taken = admin.call("POST", "/api/v1/groups", {"name": "bob"})
    assert taken.status_code == 409 and "identity" in taken.json()["message"]
    # a provider may assert any group name: alice is put in a group called "bob" at sign-in
    with engine.runtime.db.session() as session:
        set_memberships(session, identity="alice", groups=["bob"], source="provider:egi")
    engine.runtime.verdicts.forget()
    _twin(alice, "bobs-group-twin", group="bob")
    assert bob.call("GET", "/api/v1/twins/bobs-group-twin").status_code == 403  # the identity bob owns nothing
    _twin(bob, "bob-own")
    assert alice.call("GET", "/api/v1/twins/bob-own").status_code == 403  # and the group bob is not bob


def test_groups_are_listed_to_members_and_managed_by_admins(world: dict[str, Actor]) -> None:
    alice, carol, admin = world["alice"], world["carol"], world["admin"]
    assert [g["name"] for g in alice.call("GET", "/api/v1/groups").json()] == ["hydro"]
    assert carol.call("GET", "/api/v1/groups").json() == []
    shown = alice.call("GET", "/api/v1/groups/hydro").json()
    assert shown["members"] == 2 and {m["identity"] for m in shown["memberships"]} == {"alice", "bob"}
    assert carol.call("GET", "/api/v1/groups/hydro").status_code == 404
    assert alice.call("POST", "/api/v1/groups", {"name": "mine"}).status_code == 403
    assert alice.call("PUT", "/api/v1/groups/hydro/members/carol").status_code == 403
    assert admin.call("PUT", "/api/v1/groups/hydro/members/nobody").status_code == 404
    assert admin.call("DELETE", "/api/v1/groups/hydro/members/carol").status_code == 404
    assert admin.call("POST", "/api/v1/groups", {"name": "Bad Name"}).status_code == 422


def test_the_listing_filter_agrees_with_the_rule(engine: Engine, world: dict[str, Actor]) -> None:
    """Twin by twin, the SQL condition of listings and ``twin.read`` give the same answer."""
    alice, carol, admin = world["alice"], world["carol"], world["admin"]
    _twin(alice, "a-own")
    _twin(alice, "a-group", group="hydro")
    _twin(carol, "c-own")
    _twin(carol, "c-shared")
    assert admin.call("POST", "/api/v1/groups", {"name": "readers"}).status_code == 201
    assert admin.call("PUT", "/api/v1/groups/readers/members/dave").status_code == 200
    assert carol.call("PUT", "/api/v1/twins/c-shared/group-grants/readers", {"permission": "read"}).status_code == 200
    assert carol.call("PUT", "/api/v1/twins/c-own/grants/bob", {"permission": "read"}).status_code == 200
    with engine.runtime.db.session(readonly=True) as session:
        twins = list(session.scalars(select(Twin)))
        for name in ("alice", "bob", "carol", "dave"):
            who = with_groups(session, Principal(name=name, role=Role.USER))
            listed, _ = twins_service.list_twins(session, principal=who, limit=500)
            assert {t.name for t in listed} == {t.name for t in twins if allowed(who, "twin.read", t)}, name
