"""Fleets over HTTP: tags and locations, filters (app, tag, parameter, state, bbox), keyset pages with a
next link, and aggregates (grouped, quantiles, as of a past time), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from helpers import RIVER_REACH, Engine
from twinengine.client import Client
from twinengine.errors import InvalidInput, PermissionDenied, ValidationFailed

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SQUARE = {"type": "Polygon", "coordinates": [[[10, 40], [11, 40], [11, 41], [10, 41], [10, 40]]]}
# An L along two sides of the box (10..12, 50..52): its bbox covers the box's inner corner, the shape does not.
ELL = {"type": "Polygon", "coordinates": [[[10, 50], [12, 50], [12, 52], [11.9, 52], [11.9, 50.1], [10, 50.1],
                                           [10, 50]]]}


def point(x: float, y: float) -> dict[str, object]:
    return {"type": "Point", "coordinates": [x, y]}


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    for i in range(1, 7):
        client.create_twin("river-reach@0.1.0", f"reach-{i:02d}", {"station": f"RR-{i:02d}",
                                                                   "area_km2": 100 if i % 2 else 200},
                           tags=["alpine"] if i <= 3 else ["lowland", "dam"], location=point(7 + i, 46))
        client.report(f"reach-{i:02d}", timestamp=T0, level=float(i))
        client.desire(f"reach-{i:02d}", alert_threshold=3.5)
        client.report(f"reach-{i:02d}", timestamp=T0 + timedelta(hours=1), level=float(i) + 10)
    return client


def names(page: object) -> list[str]:
    return [t.name for t in page.items]  # type: ignore[attr-defined]


def test_tags_and_location_are_set_at_create_and_by_patch(engine: Engine, uma: Client) -> None:
    twin = uma.get_twin("reach-01")
    assert twin.tags == ["alpine"] and twin.location == {"type": "Point", "coordinates": [8.0, 46.0]}
    updated = uma.update_twin("reach-01", tags=["b", "a", "a"], location=SQUARE)
    assert updated.tags == ["a", "b"] and updated.location is not None and updated.location["type"] == "Polygon"
    assert names(uma.list_fleet(tags=["a"])) == ["reach-01"]
    assert uma.update_twin("reach-01", location="clear").location is None
    assert uma.get_twin("reach-01").tags == ["a", "b"]  # what PATCH did not name stays
    with pytest.raises(ValidationFailed) as caught:
        uma.update_twin("reach-01", location={"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1],
                                                                                   [0, 0]]]})
    assert caught.value.problems[0].loc == "location.coordinates"
    with pytest.raises(ValidationFailed) as caught:
        uma.update_twin("reach-01", location={"type": "LineString", "coordinates": [[0, 0], [1, 1]]})
    assert caught.value.problems[0].loc == "location.type"
    with pytest.raises(ValidationFailed):
        uma.update_twin("reach-01", tags=["Not A Tag"])
    engine.as_role("eve", "user")
    uma.grant("reach-02", "eve", "operate")
    with pytest.raises(PermissionDenied):  # operate is not enough to edit the twin
        engine.as_role("eve", "user").update_twin("reach-02", tags=["mine"])


def test_filters_combine_and_read_state_heads(uma: Client) -> None:
    assert names(uma.list_fleet(tags=["lowland"])) == ["reach-04", "reach-05", "reach-06"]
    assert names(uma.list_fleet(tags=["lowland"], state=["level>14.5"])) == ["reach-05", "reach-06"]
    assert names(uma.list_fleet(state=["level<=12", "level>=12"])) == ["reach-02"]
    assert names(uma.list_fleet(parameters=["area_km2=200"])) == ["reach-02", "reach-04", "reach-06"]
    assert names(uma.list_fleet(parameters=["station=RR-03"])) == ["reach-03"]
    assert names(uma.list_fleet(parameters=["station='RR-03'"], app="river-reach@0.1.0")) == ["reach-03"]
    assert names(uma.list_fleet(state=["desired.alert_threshold=3.5"], limit=2)) == ["reach-01", "reach-02"]
    uma.desire("reach-06", alert_threshold=20.0)
    above = uma.list_fleet(state=["level>@desired.alert_threshold"])  # a twin's value against its own threshold
    assert names(above) == ["reach-01", "reach-02", "reach-03", "reach-04", "reach-05"]
    assert names(uma.list_fleet(state=["level>@rain"])) == []  # no rain reported: nothing to compare with
    assert names(uma.list_fleet(app="other-app")) == []


def test_bbox_prefilters_on_the_index_then_tests_the_shape(uma: Client) -> None:
    assert names(uma.list_fleet(bbox=(8.5, 45, 10.5, 47))) == ["reach-02", "reach-03"]
    uma.update_twin("reach-01", location=ELL)
    uma.update_twin("reach-02", location=SQUARE)
    # the box (11, 51)..(11.5, 51.5) lies inside the L's bbox but outside its shape
    assert names(uma.list_fleet(bbox=(11, 51, 11.5, 51.5))) == []
    assert names(uma.list_fleet(bbox=(11.95, 51, 13, 51.5))) == ["reach-01"]
    assert names(uma.list_fleet(bbox=(10.5, 40.5, 10.6, 40.6))) == ["reach-02"]
    box = uma.fleet_aggregate("level", bbox=(9, 40, 12, 52))  # the L, the square, the points of reach-03..05
    assert box.groups[0].count == 5
    assert uma.fleet_aggregate("level", bbox=(11.95, 51, 13, 51.5)).groups[0].count == 1
    assert uma.fleet_aggregate("level", bbox=(11, 51, 11.5, 51.5)).groups == []


def test_keyset_pages_follow_the_next_link_and_stay_stable(engine: Engine, uma: Client) -> None:
    first = uma.list_fleet(limit=4)
    assert names(first) == ["reach-01", "reach-02", "reach-03", "reach-04"] and first.next and first.cursor
    uma.create_twin("river-reach@0.1.0", "reach-00", {"station": "RR-00"})  # sorts before the cursor
    headers = engine.headers(engine.token("uma", "user"))
    follow = engine.http.get(first.next.replace("http://testserver", ""), headers=headers)
    assert follow.status_code == 200
    assert [t["name"] for t in follow.json()["items"]] == ["reach-05", "reach-06"] and follow.json()["next"] is None
    assert [t.name for t in uma.iter_fleet(limit=2)] == ["reach-00", *(f"reach-{i:02d}" for i in range(1, 7))]
    r = engine.http.get("/api/v1/fleet/twins", params={"cursor": "%%%"}, headers=headers)
    assert r.status_code == 400 and r.json()["details"][0]["loc"] == "cursor"


def test_bad_filters_are_400_naming_the_parameter(engine: Engine, uma: Client) -> None:
    headers = engine.headers(engine.token("uma", "user"))
    for params, loc in [({"state": "level>>2"}, "state"), ({"state": "level>"}, "state"),
                        ({"state": "level>x y"}, "state"), ({"state": "alert>true"}, "state"),
                        ({"parameter": "area_km2>@station"}, "parameter"), ({"bbox": "1,2,3"}, "bbox"),
                        ({"bbox": "3,0,1,1"}, "bbox"), ({"bbox": "nan,45,9,46"}, "bbox"),
                        ({"bbox": "-inf,45,9,46"}, "bbox"), ({"tag": "Big Tag"}, "tag"),
                        ({"state": "raw.level=1"}, "state"), ({"app": "Bad App"}, "app")]:
        r = engine.http.get("/api/v1/fleet/twins", params=params, headers=headers)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["details"][0]["loc"] == loc
    r = engine.http.get("/api/v1/fleet/aggregate", params={"property": "level", "by": "colour"}, headers=headers)
    assert r.status_code == 400 and r.json()["details"][0]["loc"] == "by"
    r = engine.http.get("/api/v1/fleet/aggregate", params={"property": "level", "quantile": "2"}, headers=headers)
    assert r.status_code == 400 and r.json()["details"][0]["loc"] == "quantile"
    with pytest.raises(InvalidInput):
        uma.list_fleet(state=["level=="])


@pytest.mark.every_store  # reaches code only PostgreSQL runs
def test_aggregates_group_and_travel_in_time(uma: Client) -> None:
    whole = uma.fleet_aggregate("level", quantiles=[0.5, 0.9])
    (group,) = whole.groups
    assert group.key is None and group.count == 6
    assert group.mean == pytest.approx(13.5) and group.min == 11 and group.max == 16
    assert group.quantiles["0.5"] == pytest.approx(13.5) and group.quantiles["0.9"] == pytest.approx(15.5)
    by_tag = {g.key: (g.count, g.mean) for g in uma.fleet_aggregate("level", by="tag").groups}
    assert by_tag == {"alpine": (3, pytest.approx(12.0)), "dam": (3, pytest.approx(15.0)),
                      "lowland": (3, pytest.approx(15.0))}
    by_area = {g.key: g.count for g in uma.fleet_aggregate("level", by="parameter:area_km2").groups}
    assert set(by_area.values()) == {3} and len(by_area) == 2
    (by_app,) = uma.fleet_aggregate("level", by="app", quantiles=[0.5]).groups
    assert by_app.key == "river-reach@0.1.0" and by_app.quantiles["0.5"] == pytest.approx(13.5)
    past = uma.fleet_aggregate("level", at=T0 + timedelta(minutes=30), quantiles=[0.5], tags=["alpine"])
    assert past.groups[0].count == 3 and past.groups[0].mean == pytest.approx(2.0)
    assert past.groups[0].quantiles["0.5"] == pytest.approx(2.0)
    assert uma.fleet_aggregate("level", at=T0 - timedelta(days=1)).groups == []
    assert uma.fleet_aggregate("alert_threshold", kind="desired").groups[0].mean == pytest.approx(3.5)
    assert uma.fleet_aggregate("level", state=["level>14"]).groups[0].count == 2
    lowland = {g.key: g.count for g in uma.fleet_aggregate("level", by="tag", tags=["lowland"]).groups}
    assert lowland == {"dam": 3, "lowland": 3}


def test_others_see_only_what_they_own_or_were_granted(engine: Engine, uma: Client) -> None:
    eve = engine.as_role("eve", "user")
    assert names(eve.list_fleet()) == [] and eve.fleet_aggregate("level").groups == []
    uma.grant("reach-03", "eve", "read")
    assert names(eve.list_fleet()) == ["reach-03"]
    assert eve.fleet_aggregate("level").groups[0].count == 1


def test_stale_lists_the_twins_whose_property_outlived_its_gap_check(engine: Engine, uma: Client) -> None:
    # river-reach's level allows a silence of 15 min + 5 min; the fixture's levels are from March
    assert names(uma.list_fleet(stale=["level"])) == [f"reach-{i:02d}" for i in range(1, 7)]
    now = datetime.now(UTC)
    uma.report("reach-03", timestamp=now - timedelta(minutes=5), level=3.0)
    uma.report("reach-04", timestamp=now + timedelta(hours=1), level=4.0)  # timestamped ahead: never stale
    uma.report("reach-05", timestamp=now - timedelta(minutes=21), level=5.0)
    assert names(uma.list_fleet(stale=["level"])) == ["reach-01", "reach-02", "reach-05", "reach-06"]
    uma.create_twin("river-reach@0.1.0", "reach-07", {"station": "RR-07"})  # no level yet: nothing to judge
    assert names(uma.list_fleet(stale=["level"], tags=["lowland"])) == ["reach-05", "reach-06"]
    assert names(uma.list_fleet(stale=["level"], app="river-reach@0.1.0", limit=1)) == ["reach-01"]
    # what a state read of the twin says agrees with the filter
    assert uma.get_state("reach-05").stale == ["level"] and not uma.get_state("reach-03").stale
    headers = engine.headers(engine.token("uma", "user"))
    for value, says in [("rain", "gap check"), ("not a name", "not a state property")]:
        r = engine.http.get("/api/v1/fleet/twins", params={"stale": value}, headers=headers)
        assert r.status_code == 400 and r.json()["details"][0]["loc"] == "stale" and says in r.text, r.text
    r = engine.http.get("/api/v1/fleet/twins", params={"stale": "level", "app": "other-app"}, headers=headers)
    assert r.status_code == 400 and r.json()["details"][0]["loc"] == "stale"


@pytest.mark.every_store  # reaches code only PostgreSQL runs
def test_an_aggregate_leaves_postgresql_jit_as_it_found_it(engine: Engine, uma: Client, backend: str) -> None:
    """The aggregate turns PostgreSQL's JIT off for its statement; in a read-only unit of work (autocommit,
    where ``SET LOCAL`` does nothing) it sets it for the connection and must reset it before the connection
    goes back to the pool."""
    if backend == "sqlite":
        pytest.skip("PostgreSQL only: SQLite has no JIT setting")
    from sqlalchemy import text

    from twinengine.auth.principal import SYSTEM
    from twinengine.twins import fleet

    db = engine.runtime.db
    with db.session(readonly=True) as session:  # one connection, in autocommit
        before = session.execute(text("SHOW jit")).scalar()
        (group,) = fleet.aggregate(session, principal=SYSTEM, filt=fleet.FleetFilter(), prop="level")
        assert group.count == 6
        assert session.execute(text("SHOW jit")).scalar() == before
    with db.session() as session:  # a transaction: off until it ends
        (group,) = fleet.aggregate(session, principal=SYSTEM, filt=fleet.FleetFilter(), prop="level")
        assert group.count == 6
        assert session.execute(text("SHOW jit")).scalar() == "off"
