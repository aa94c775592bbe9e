"""Groups own lake datasets and apps, and a group is deleted only once what it owns is handed on: a dataset made
for a group (and the files uploaded into it) is read by the group's members and nobody else; a group that holds
the right to publish lets its members publish its apps whatever their role, and nobody outside it publishes
them; deleting a group that owns anything is refused (409, naming them) unless forced, which hands it all to
the admin, and grants to it end with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from helpers import Engine, make_app
from twinengine.auth.principal import SYSTEM
from twinengine.catalog.archive import pack
from twinengine.lake.endpoints import add_endpoint
from twinengine.lake.models import Did
from twinengine.lake.schemas import EndpointCreate
from twinengine.twins.models import Twin

DIDS, UPLOADS = "/api/v1/lake/dids", "/api/v1/lake/uploads"


class World:
    """An engine with a lake endpoint, identities holding tokens, and the admin."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.tokens: dict[str, dict[str, str]] = {"admin": engine.headers(engine.admin_token)}

    def who(self, name: str, role: str = "user") -> dict[str, str]:
        if name not in self.tokens:
            self.tokens[name] = self.engine.headers(self.engine.token(name, role))
        return self.tokens[name]

    def call(self, name: str, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return self.engine.http.request(method, path, headers={**self.tokens[name], **(headers or {})}, **kwargs)

    def group(self, name: str, *members: str, publish: bool = False) -> None:
        made = self.call("admin", "POST", "/api/v1/groups", json={"name": name, "publish": publish})
        assert made.status_code == 201 and made.json()["publish"] is publish, made.text
        for member in members:
            assert self.call("admin", "PUT", f"/api/v1/groups/{name}/members/{member}").status_code == 200

    def publish(self, name: str, folder: Path, group: str | None = None) -> Any:
        return self.call(name, "POST", "/api/v1/apps", content=pack(folder),
                         headers={"Content-Type": "application/gzip"},
                         params={"group": group} if group else None)


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> World:
    with engine.runtime.db.session() as session:
        add_endpoint(session, engine.runtime.lake, principal=SYSTEM,
                     spec=EndpointCreate(name="disk", protocol="file", location=str(tmp_path / "disk")))
    found = World(engine)
    for name, role in (("alice", "user"), ("bob", "user"), ("carol", "user"), ("dev", "developer"),
                       ("devin", "developer")):
        found.who(name, role)
    return found


def _upload(world: World, who: str, did: str, body: bytes, **params: str) -> Any:
    return world.call(who, "POST", UPLOADS, content=body, params={"did": did, "endpoint": "disk", **params})


def test_a_groups_dataset_is_read_by_its_members_only(world: World) -> None:
    world.group("hydro", "alice", "bob")
    made = world.call("alice", "POST", DIDS, json={"did": "hydro:gauges", "type": "dataset", "group": "hydro"})
    assert made.status_code == 201 and made.json()["owner_group"] == "hydro", made.text
    up = _upload(world, "alice", "hydro:gauges/a.csv", b"t,level\n1,2\n", dataset="hydro:gauges")
    assert up.status_code == 201 and up.json()["file"]["owner_group"] == "hydro", up.text  # the dataset's group
    mine = _upload(world, "alice", "alice:own.csv", b"private\n")
    assert mine.status_code == 201 and mine.json()["file"]["owner_group"] is None

    shown = world.call("bob", "GET", f"{DIDS}/hydro:gauges")
    assert shown.status_code == 200 and shown.json()["children"] == ["hydro:gauges/a.csv"], shown.text
    content = world.call("bob", "GET", f"{DIDS}/hydro:gauges/a.csv/content")
    assert content.status_code == 200 and content.content == b"t,level\n1,2\n"
    assert world.call("bob", "GET", f"{DIDS}/alice:own.csv").status_code == 404  # alice's own stays hers
    listed = {d["did"] for d in world.call("bob", "GET", DIDS).json()["items"]}
    assert listed == {"hydro:gauges", "hydro:gauges/a.csv"}

    for path in ("hydro:gauges", "hydro:gauges/a.csv", "hydro:gauges/a.csv/content"):  # carol is not a member
        assert world.call("carol", "GET", f"{DIDS}/{path}").status_code == 404, path
    assert world.call("carol", "GET", DIDS).json()["total"] == 0
    refused = world.call("carol", "POST", DIDS, json={"did": "hydro:mine", "type": "dataset", "group": "hydro"})
    assert refused.status_code == 403 and "not in group hydro" in refused.json()["message"], refused.text
    sneaked = _upload(world, "carol", "hydro:gauges/b.csv", b"x", dataset="hydro:gauges")
    assert sneaked.status_code == 404  # a dataset she may not read is not there for her
    missing = world.call("alice", "POST", DIDS, json={"did": "x:y", "type": "dataset", "group": "nope"})
    assert missing.status_code == 422 and "group" in missing.text

    # a member who did not make it owns it too; leaving the group ends access at once
    assert world.call("bob", "DELETE", f"{DIDS}/hydro:gauges/a.csv").status_code == 204
    assert world.call("admin", "DELETE", "/api/v1/groups/hydro/members/bob").status_code == 204
    assert world.call("bob", "GET", f"{DIDS}/hydro:gauges").status_code == 404
    assert world.call("alice", "GET", f"{DIDS}/hydro:gauges").status_code == 200


def test_a_group_that_publishes_lets_its_members_publish_its_apps_and_nobody_else(world: World,
                                                                                   tmp_path: Path) -> None:
    world.group("pubs", "alice", publish=True)
    world.group("quiet", "bob", "devin")
    v1 = make_app(tmp_path, name="pubs-app", version="1.0.0")
    v2 = make_app(tmp_path, name="pubs-app", version="1.1.0")
    made = world.publish("alice", v1, group="pubs")  # a user, through the group's right
    assert made.status_code == 201 and made.json()["app"]["owner_group"] == "pubs", made.text
    assert world.publish("alice", make_app(tmp_path, name="free-app")).status_code == 403  # not for herself

    outsider = world.publish("dev", v2)  # a developer outside the group: the name is the group's
    assert outsider.status_code == 403 and "belongs to group pubs" in outsider.json()["message"], outsider.text
    claimed = world.publish("dev", v2, group="pubs")
    assert claimed.status_code == 403 and "not in group pubs" in claimed.json()["message"]
    assert world.publish("alice", v2, group="pubs").status_code == 201

    # a group without the right: its users may not publish for it, its developers may
    plain = world.publish("bob", make_app(tmp_path, name="quiet-app"), group="quiet")
    assert plain.status_code == 403 and "may not app.publish" in plain.json()["message"], plain.text
    assert world.publish("devin", make_app(tmp_path, name="quiet-app"), group="quiet").status_code == 201
    given = world.call("admin", "PATCH", "/api/v1/groups/quiet", json={"publish": True})
    assert given.status_code == 200 and given.json()["publish"] is True
    assert world.publish("bob", make_app(tmp_path, name="quiet-app", version="2.0.0"), group="quiet").status_code == 201

    # nobody's app stays nobody's: it cannot be taken into a group
    assert world.publish("dev", make_app(tmp_path, name="free-app")).status_code == 201
    taken = world.publish("alice", make_app(tmp_path, name="free-app", version="2.0.0"), group="pubs")
    assert taken.status_code == 403 and "not a group's app" in taken.json()["message"]


def test_a_group_that_owns_things_is_deleted_only_when_forced_and_hands_them_to_the_admin(
        world: World, tmp_path: Path) -> None:
    world.group("hydro", "alice", "bob", publish=True)
    world.group("empty", "carol")
    assert world.publish("alice", make_app(tmp_path, name="grp-app"), group="hydro").status_code == 201
    twin = world.call("alice", "POST", "/api/v1/twins", json={"app": "grp-app", "name": "hydro-reach",
                                                               "parameters": {"station": "ST-01"}, "group": "hydro"})
    assert twin.status_code == 201, twin.text
    assert world.call("alice", "POST", DIDS, json={"did": "hydro:set", "type": "dataset",
                                                   "group": "hydro"}).status_code == 201
    carol_twin = world.call("carol", "POST", "/api/v1/twins", json={"app": "grp-app", "name": "carol-reach",
                                                                     "parameters": {"station": "ST-01"}})
    assert carol_twin.status_code == 201
    granted = world.call("carol", "PUT", "/api/v1/twins/carol-reach/group-grants/hydro", json={"permission": "read"})
    assert granted.status_code == 200, granted.text
    assert world.call("bob", "GET", "/api/v1/twins/carol-reach").status_code == 200

    assert world.call("alice", "DELETE", "/api/v1/groups/hydro").status_code == 403  # admins only
    refused = world.call("admin", "DELETE", "/api/v1/groups/hydro")
    assert refused.status_code == 409, refused.text
    assert sorted(d["msg"] for d in refused.json()["details"]) == [
        "app grp-app@1.0.0", "dataset hydro:set", "twin hydro-reach"]
    assert world.call("bob", "GET", "/api/v1/twins/hydro-reach").status_code == 200  # nothing changed

    done = world.call("admin", "DELETE", "/api/v1/groups/hydro", params={"force": "true"})
    assert done.status_code == 200, done.text
    assert done.json()["members"] == ["alice", "bob"] and len(done.json()["handed_on"]) == 3
    for who in ("alice", "bob"):  # what the group owned and was granted is gone for them at once
        assert world.call(who, "GET", "/api/v1/twins/hydro-reach").status_code == 403
        assert world.call(who, "GET", f"{DIDS}/hydro:set").status_code == 404
    assert world.call("bob", "GET", "/api/v1/twins/carol-reach").status_code == 403
    assert world.call("carol", "GET", "/api/v1/twins/carol-reach/group-grants").json() == []
    assert world.call("admin", "GET", "/api/v1/groups/hydro").status_code == 404
    shown = world.call("admin", "GET", "/api/v1/twins/hydro-reach").json()
    assert shown["owner"] == "admin" and shown["owner_group"] is None
    with world.engine.runtime.db.session(readonly=True) as session:
        dataset = session.scalar(select(Did).where(Did.scope == "hydro", Did.name == "set"))
        assert dataset is not None and (dataset.created_by, dataset.owner_group) == ("admin", None)
        assert session.scalar(select(Twin.owner).where(Twin.name == "carol-reach")) == "carol"
    app = world.call("admin", "GET", "/api/v1/apps/grp-app/versions/1.0.0").json()
    assert app["owner_group"] is None  # nobody's app now: any developer publishes it
    assert world.publish("dev", make_app(tmp_path, name="grp-app", version="1.1.0")).status_code == 201

    assert world.call("admin", "DELETE", "/api/v1/groups/empty").json() == {
        "name": "empty", "members": ["carol"], "handed_on": []}
    assert world.call("admin", "DELETE", "/api/v1/groups/empty").status_code == 404
