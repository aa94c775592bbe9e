"""A twin's event-sourced state over HTTP: validated writes, revisions, time travel, history, diff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from helpers import RIVER_REACH, Engine
from twinengine.client import Client
from twinengine.errors import RevisionNotFound, ValidationFailed
from twinengine.twins.schemas import PropertyWrite

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    return client


def test_each_write_is_one_revision_with_reported_and_desired(uma: Client) -> None:
    first = uma.write_state("reach", reported={"level": 1.0, "rain": 0.5}, desired={"alert_threshold": 2.0},
                            message="first")
    assert first.revision == 1 and first.author == "uma" and first.message == "first"
    assert {(c.kind.value, c.property) for c in first.changes} == {("reported", "level"), ("reported", "rain"),
                                                                   ("desired", "alert_threshold")}
    uma.report("reach", level=2.5)
    state = uma.get_state("reach")
    assert state.revision == 2
    assert state.reported["level"].value == 2.5 and state.reported["level"].revision == 2
    assert state.reported["rain"].value == 0.5 and state.reported["rain"].unit == "mm/h"
    assert state.desired["alert_threshold"].value == 2.0
    assert state.delta == {"alert_threshold": 2.0}


def test_writes_are_validated_against_the_app_and_refused_whole(uma: Client) -> None:
    with pytest.raises(ValidationFailed) as caught:
        uma.write_state("reach", reported={"level": "high", "rain": -1, "colour": "blue", "alert": 1},
                        desired={"alert_threshold": PropertyWrite(value=2, unit="kg")})
    assert {p.loc for p in caught.value.problems} == {
        "reported.level.value", "reported.rain.value", "reported.colour", "reported.alert.value",
        "desired.alert_threshold.unit"}
    assert uma.get_twin("reach").head_revision == 0  # nothing of the batch was written
    with pytest.raises(ValidationFailed, match="nothing to write"):
        uma.write_state("reach")


def test_a_desired_only_property_is_never_reported(uma: Client) -> None:
    """river-reach's alert threshold is a setting users give: a reported write of it is refused, naming it."""
    with pytest.raises(ValidationFailed) as caught:
        uma.write_state("reach", reported={"level": 1.0, "alert_threshold": 2.0})
    assert [p.loc for p in caught.value.problems] == ["reported.alert_threshold"]
    assert "desired state only" in caught.value.problems[0].msg
    assert uma.get_twin("reach").head_revision == 0
    uma.write_state("reach", desired={"alert_threshold": 2.0})
    assert uma.get_state("reach").desired["alert_threshold"].value == 2.0


def test_units_are_converted_on_write(uma: Client) -> None:
    uma.write_state("reach", reported={"level": PropertyWrite(value=180, unit="cm"),
                                       "discharge": PropertyWrite(value=36_000, unit="m3/h")})
    state = uma.get_state("reach")
    assert state.reported["level"].value == pytest.approx(1.8) and state.reported["level"].unit == "m"
    assert state.reported["discharge"].value == pytest.approx(10.0)


def test_malformed_bodies_are_4xx(engine: Engine, uma: Client) -> None:
    headers = {**engine.headers(engine.token("uma", "user")), "Content-Type": "application/json"}
    r = engine.http.patch("/api/v1/twins/reach/state", content=b'{"reported": {"level": ', headers=headers)
    assert r.status_code == 400 and r.json()["code"] == "InvalidInput"
    r = engine.http.patch("/api/v1/twins/reach/state", json={"reported": {"level": 1.0}}, headers=headers)
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == "reported.level"
    r = engine.http.patch("/api/v1/twins/reach/state", json={"reported": {"level": {"value": 1, "when": "now"}}},
                          headers=headers)
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == "reported.level.when"
    r = engine.http.patch("/api/v1/twins/reach/state",
                          json={"reported": {"level": {"value": 1, "timestamp": "yesterday"}}}, headers=headers)
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == "reported.level.timestamp"


def test_time_travel_by_revision_and_by_time(uma: Client) -> None:
    for hour, level in enumerate([1.0, 1.5, 2.2, 1.9]):
        uma.report("reach", timestamp=T0 + timedelta(hours=hour), level=level)
    assert uma.get_state("reach", revision=2).reported["level"].value == 1.5
    assert uma.get_state("reach", revision=0).reported == {}
    at = uma.get_state("reach", at=T0 + timedelta(hours=2, minutes=30))
    assert at.revision is None and at.at is not None
    assert at.reported["level"].value == 2.2 and at.reported["level"].revision == 3
    assert uma.get_state("reach", at=T0 - timedelta(hours=1)).reported == {}
    with pytest.raises(RevisionNotFound):
        uma.get_state("reach", revision=5)


def test_times_in_query_parameters_are_iso_8601_never_bare_numbers(engine: Engine, uma: Client) -> None:
    uma.report("reach", timestamp=T0, level=1.0)
    headers = engine.headers(engine.token("uma", "user"))
    for path, name in [("/api/v1/twins/reach/state", "at"), ("/api/v1/twins/reach/properties/level/history", "since"),
                       ("/api/v1/twins/reach/properties/level/history", "until")]:
        for bare in ("0.5", "0", "1772344800"):
            r = engine.http.get(path, params={name: bare}, headers=headers)
            assert r.status_code == 422, (name, bare, r.text)
            assert r.json()["details"][0]["loc"] == f"query.{name}"
            assert "not an RFC 3339 / ISO 8601 time" in r.json()["details"][0]["msg"]
    r = engine.http.get("/api/v1/twins/reach/state", params={"at": "2026-03-01T00:00:00"}, headers=headers)
    assert r.status_code == 200 and r.json()["at"].startswith("2026-03-01T00:00:00")  # no zone: UTC
    for bare in (0.5, 1772344800):  # nor in a written value's timestamp
        r = engine.http.patch("/api/v1/twins/reach/state", headers=headers,
                              json={"reported": {"level": {"value": 2.0, "timestamp": bare}}})
        assert r.status_code == 422, r.text
        assert r.json()["details"][0]["loc"] == "reported.level.timestamp"
        assert "is a number, not an RFC 3339" in r.json()["details"][0]["msg"]
    assert uma.get_state("reach").reported["level"].value == 1.0  # nothing was written


def test_late_data_lands_at_its_own_time(uma: Client) -> None:
    uma.report("reach", timestamp=T0 + timedelta(hours=2), level=2.0)
    uma.report("reach", timestamp=T0 + timedelta(hours=1), level=1.0, message="late reading")
    assert uma.get_state("reach").reported["level"].value == 1.0  # the latest write is the current state
    assert uma.get_state("reach", at=T0 + timedelta(hours=3)).reported["level"].value == 2.0
    assert uma.get_state("reach", at=T0 + timedelta(hours=1, minutes=5)).reported["level"].value == 1.0
    history = uma.history("reach", "level")
    assert [v.value for v in history.items] == [1.0, 2.0]  # ordered by when the values were true


def test_history_by_time_range_and_limit(uma: Client) -> None:
    for hour in range(10):
        uma.report("reach", timestamp=T0 + timedelta(hours=hour), level=float(hour), rain=0.0)
    window = uma.history("reach", "level", since=T0 + timedelta(hours=3), until=T0 + timedelta(hours=7))
    assert [v.value for v in window.items] == [3.0, 4.0, 5.0, 6.0]
    assert window.unit == "m" and window.property == "level"
    assert [v.value for v in uma.history("reach", "level", limit=2, order="desc").items] == [9.0, 8.0]
    assert uma.history("reach", "alert_threshold", kind="desired").items == []
    with pytest.raises(ValidationFailed, match="not a state property"):
        uma.history("reach", "colour")


def test_revisions_and_diff(uma: Client) -> None:
    uma.write_state("reach", reported={"level": 1.0, "rain": 2.0})
    uma.write_state("reach", reported={"level": 1.1}, desired={"alert_threshold": 2.0})
    uma.write_state("reach", reported={"rain": 2.0})
    page = uma.revisions("reach")
    assert [r.revision for r in page.items] == [3, 2, 1] and page.total == 3
    assert [r.revision for r in uma.revisions("reach", order="asc", limit=2, offset=1).items] == [2, 3]
    assert [c.property for c in uma.get_revision("reach", 2).changes] == ["level", "alert_threshold"]
    diff = uma.diff("reach", 1, 3)
    changes = {(c.kind.value, c.property): c.change for c in diff.changes}
    assert changes == {("reported", "level"): "changed", ("desired", "alert_threshold"): "added",
                       ("reported", "rain"): "changed"}  # same value, new timestamp
    assert {(c.property, c.change) for c in uma.diff("reach", 0).changes} == {
        ("level", "added"), ("rain", "added"), ("alert_threshold", "added")}
    assert uma.diff("reach", 2, 2).changes == []
    with pytest.raises(RevisionNotFound):
        uma.get_revision("reach", 4)
    with pytest.raises(RevisionNotFound):
        uma.diff("reach", 0, 4)
