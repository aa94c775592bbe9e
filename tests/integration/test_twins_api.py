"""Twins over HTTP: creation against the app's schema, visibility, grants, forks, deletion."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import RIVER_REACH, Engine, make_app
from twinengine.client import Client
from twinengine.errors import (
    AppNotFound,
    NotFound,
    PermissionDenied,
    RevisionNotFound,
    TwinNameTaken,
    TwinNotFound,
    ValidationFailed,
)


@pytest.fixture
def published(engine: Engine) -> str:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    return "river-reach@0.1.0"


def test_create_fills_defaults_and_names_bad_parameters(engine: Engine, published: str) -> None:
    uma = engine.as_role("uma", "user")
    twin = uma.create_twin(published, "reach-a", {"station": "RR-01", "area_km2": 80})
    assert twin.id.startswith("tw-") and twin.owner == "uma" and twin.access.value == "owner"
    assert twin.parameters["area_km2"] == 80 and twin.parameters["runoff_coefficient"] == 0.45
    assert twin.head_revision == 0
    with pytest.raises(ValidationFailed) as caught:
        uma.create_twin(published, "reach-b", {"station": "lower case", "area_km2": -3, "colour": "red"})
    locs = {p.loc for p in caught.value.problems}
    assert {"parameters.station", "parameters.area_km2"} <= locs
    assert any("colour" in p.msg for p in caught.value.problems)
    with pytest.raises(ValidationFailed) as caught:
        uma.create_twin(published, "reach-c", {})
    assert [p.loc for p in caught.value.problems] == ["parameters.station"]
    assert uma.list_twins().total == 1  # nothing half-written


def test_create_errors(engine: Engine, published: str) -> None:
    uma = engine.as_role("uma", "user")
    uma.create_twin("river-reach", "reach-a", {"station": "RR-01"})  # latest version
    with pytest.raises(TwinNameTaken):
        uma.create_twin(published, "reach-a", {"station": "RR-01"})
    with pytest.raises(AppNotFound):
        uma.create_twin("river-reach@9.9.9", "reach-z", {"station": "RR-01"})
    with pytest.raises(ValidationFailed, match="reserved"):
        uma.create_twin(published, "tw-0123456789ab", {"station": "RR-01"})
    with pytest.raises(PermissionDenied):
        engine.as_role("ada", "developer").create_twin(published, "reach-d", {"station": "RR-01"})
    r = engine.http.post("/api/v1/twins", json={"app": "River Reach", "name": "Bad_Name", "parameters": []},
                         headers=engine.headers(engine.token("uma", "user")))
    assert r.status_code == 422
    assert {d["loc"] for d in r.json()["details"]} == {"app", "name", "parameters"}


def test_users_see_only_their_own_or_granted_twins(engine: Engine, published: str) -> None:
    uma, rita, otto = (engine.as_role(n, "user") for n in ("uma", "rita", "otto"))
    uma.create_twin(published, "uma-reach", {"station": "RR-01"})
    rita.create_twin(published, "rita-reach", {"station": "RR-02"})
    assert [t.name for t in uma.list_twins().items] == ["uma-reach"]
    assert otto.list_twins().total == 0
    with pytest.raises(PermissionDenied):
        otto.get_twin("uma-reach")
    with pytest.raises(PermissionDenied):
        otto.get_state("uma-reach")
    uma.grant("uma-reach", "otto", "read")
    assert [(t.name, t.access.value) for t in otto.list_twins().items] == [("uma-reach", "read")]
    assert otto.get_state("uma-reach").revision == 0
    with pytest.raises(PermissionDenied):  # otto's grant is otto's: the state read checks the caller's own
        rita.get_state("uma-reach")
    with pytest.raises(PermissionDenied):
        otto.report("uma-reach", level=1.0)
    uma.grant("uma-reach", "otto", "operate")
    assert otto.report("uma-reach", level=1.0).revision == 1
    with pytest.raises(PermissionDenied):
        otto.grant("uma-reach", "rita", "read")  # operate is not manage
    with pytest.raises(PermissionDenied):
        otto.delete_twin("uma-reach")
    uma.revoke_grant("uma-reach", "otto")
    assert otto.list_twins().total == 0
    with pytest.raises(PermissionDenied):
        otto.get_state("uma-reach")
    with pytest.raises(NotFound):
        uma.revoke_grant("uma-reach", "otto")
    admin = engine.sdk(engine.admin_token)
    assert {t.name for t in admin.list_twins().items} == {"uma-reach", "rita-reach"}
    assert admin.list_twins(app="river-reach@0.1.0").total == 2
    assert admin.list_twins(app="other-app").total == 0


def test_grants_need_an_existing_identity(engine: Engine, published: str) -> None:
    uma = engine.as_role("uma", "user")
    uma.create_twin(published, "reach", {"station": "RR-01"})
    with pytest.raises(NotFound, match="nobody"):
        uma.grant("reach", "nobody", "read")
    with pytest.raises(ValidationFailed):
        uma.grant("reach", "uma", "read")
    engine.token("rita", "user")
    uma.grant("reach", "rita", "read")
    assert [(g.identity, g.permission.value, g.granted_by) for g in uma.grants("reach")] == [("rita", "read", "uma")]


def test_twins_are_found_by_id_or_name(engine: Engine, published: str) -> None:
    uma = engine.as_role("uma", "user")
    twin = uma.create_twin(published, "reach", {"station": "RR-01"})
    assert uma.get_twin(twin.id).name == "reach"
    assert uma.get_twin("reach").id == twin.id
    with pytest.raises(TwinNotFound):
        uma.get_twin("tw-000000000000")


def write_levels(client: Client, twin: str, levels: list[float]) -> None:
    for level in levels:
        client.report(twin, level=level)


def test_fork_copies_state_at_a_revision_and_never_touches_the_origin(engine: Engine, published: str) -> None:
    uma = engine.as_role("uma", "user")
    uma.create_twin(published, "reach", {"station": "RR-01"})
    uma.desire("reach", alert_threshold=1.5)
    write_levels(uma, "reach", [1.0, 1.2, 1.4])  # revisions 2, 3, 4
    fork = uma.fork_twin("reach", "reach-what-if", at_revision=3, parameters={"runoff_coefficient": 0.8})
    assert fork.origin is not None and (fork.origin.twin_name, fork.origin.revision) == ("reach", 3)
    assert fork.parameters["runoff_coefficient"] == 0.8 and fork.parameters["station"] == "RR-01"
    assert fork.head_revision == 1
    state = uma.get_state("reach-what-if")
    assert state.reported["level"].value == 1.2 and state.desired["alert_threshold"].value == 1.5
    uma.report("reach-what-if", level=3.3)
    assert uma.get_twin("reach").head_revision == 4
    assert uma.get_state("reach").reported["level"].value == 1.4
    with pytest.raises(RevisionNotFound):
        uma.fork_twin("reach", "too-far", at_revision=99)
    with pytest.raises(ValidationFailed):
        uma.fork_twin("reach", "bad-params", parameters={"runoff_coefficient": 2})
    rita = engine.as_role("rita", "user")
    with pytest.raises(PermissionDenied):
        rita.fork_twin("reach", "rita-fork")  # forking needs read on the origin
    uma.grant("reach", "rita", "read")
    assert rita.fork_twin("reach", "rita-fork").owner == "rita"


def test_delete_removes_the_log_and_keeps_forks(engine: Engine, published: str) -> None:
    uma = engine.as_role("uma", "user")
    uma.create_twin(published, "reach", {"station": "RR-01"})
    write_levels(uma, "reach", [1.0, 2.0])
    uma.fork_twin("reach", "reach-fork")
    uma.delete_twin("reach")
    with pytest.raises(TwinNotFound):
        uma.get_twin("reach")
    fork = uma.get_twin("reach-fork")
    assert fork.origin is not None and fork.origin.twin_id is None and fork.origin.twin_name == "reach"
    assert uma.get_state("reach-fork").reported["level"].value == 2.0
    uma.create_twin(published, "reach", {"station": "RR-01"})  # the name is free again
    assert uma.get_twin("reach").head_revision == 0


def test_twin_of_a_minimal_app_and_unknown_twin_paths(engine: Engine, tmp_path: Path) -> None:
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path))
    uma = engine.as_role("uma", "user")
    assert uma.create_twin("test-app@1.0.0", "t1", {"station": "S1"}).parameters == {"station": "S1",
                                                                                        "area_km2": 10}
    r = engine.http.get("/api/v1/twins/does-not-exist/state", headers=engine.headers(engine.admin_token))
    assert r.status_code == 404 and r.json()["code"] == "TwinNotFound"
    r = engine.http.get("/api/v1/nowhere", headers=engine.headers(engine.admin_token))
    assert r.status_code == 404 and r.json()["code"] == "NotFound"
