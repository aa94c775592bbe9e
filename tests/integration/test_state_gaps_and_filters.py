"""Gap checks on state and quality filters on state reads, on both stores: a value reported after a longer
silence than its property allows is flagged ``gap:<property>``; reads say which properties are stale at the
read's time (now, ``at``, or when the revision was recorded); ``quality=`` reads (current, time travel,
history) show each property's newest value with a kept flag; bad declarations and bad query values are
refused naming the field or the query parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from helpers import MINIMAL_STATE, Engine, make_app
from twinengine.client import Client
from twinengine.errors import ValidationFailed
from twinengine.twins.schemas import PropertyWrite

T0 = datetime(2026, 3, 1, tzinfo=UTC)
STATE = {
    **MINIMAL_STATE,
    "level": {**MINIMAL_STATE["level"], "quality": [
        {"check": "range", "min": 0, "max": 10},           # bad
        {"check": "spike", "max_change": 0.5}]},           # suspect
    "stage": {"type": "number", "unit": "m", "quality": [{"check": "gap", "every": "15min", "tolerance": "5min"}]},
    "label": {**MINIMAL_STATE["label"], "quality": [{"check": "gap", "every": "PT1H", "name": "label_silent"}]},
    "count": {"type": "integer", "quality": [{"check": "gap", "every": 3600, "max_delay": "1d", "severity": "bad"}]},
}


@pytest.fixture
def uma(engine: Engine, tmp_path: Path) -> Client:
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="gappy-app", manifest={"state": STATE}))
    client = engine.as_role("uma", "user")
    for name in ("reach", "batched", "never-good"):
        client.create_twin("gappy-app@1.0.0", name, {"station": "S1"})
    return client


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _flags(uma: Client, twin: str, prop: str) -> list[tuple[str, list[str]]]:
    items = sorted(uma.history(twin, prop).items, key=lambda v: v.revision)
    return [(v.quality.flag, v.quality.checks or []) if v.quality else ("good", []) for v in items]


# --- gap ---------------------------------------------------------------------------------------------------

def test_a_value_after_a_longer_silence_than_declared_is_flagged_gap(uma: Client) -> None:
    for minutes in (0, 10, 30, 60, 65):  # 20 min allowed (15 + 5): 30 → 60 is a gap
        uma.write_state("reach", reported={"stage": PropertyWrite(value=1.0, timestamp=_at(minutes))})
    uma.write_state("reach", reported={"stage": PropertyWrite(value=1.0, timestamp=_at(20))})  # late, not a gap
    assert _flags(uma, "reach", "stage") == [("good", []), ("good", []), ("good", []),
                                            ("suspect", ["gap:stage"]), ("good", []), ("good", [])]
    for hours in (0, 1, 3):  # a string property takes a gap check too, with its name
        uma.write_state("reach", reported={"label": PropertyWrite(value="low", timestamp=_at(60 * hours))})
    assert _flags(uma, "reach", "label") == [("good", []), ("good", []), ("suspect", ["label_silent"])]


def test_a_batch_is_judged_as_one_series_and_late_values_are_flagged(uma: Client) -> None:
    uma.write_state_batch([{"twin": "batched", "reported": {"stage": PropertyWrite(value=2.0, timestamp=_at(m))}}
                           for m in (0, 15, 40, 41)])
    assert _flags(uma, "batched", "stage") == [("good", []), ("good", []), ("suspect", ["gap:stage"]), ("good", [])]
    now = datetime.now(UTC)
    uma.write_state("batched", reported={"count": PropertyWrite(value=1, timestamp=now - timedelta(days=2))})
    uma.write_state("batched", reported={"count": PropertyWrite(value=2, timestamp=now - timedelta(minutes=1))})
    # two days after its timestamp: late (max_delay 1d); then a silence of two days: a gap; both bad
    assert _flags(uma, "batched", "count") == [("bad", ["late:count"]), ("bad", ["gap:count"])]


def test_reads_say_which_properties_are_stale_at_the_reads_time(engine: Engine, uma: Client) -> None:
    uma.write_state("reach", reported={"stage": PropertyWrite(value=1.0, timestamp=_at(0)),
                                       "level": PropertyWrite(value=1.0, timestamp=_at(0))})
    fresh = uma.get_state("reach", at=_at(20))  # exactly the allowed silence: not yet stale
    assert fresh.stale == [] and fresh.stale_as_of == _at(20) and fresh.reported["stage"].stale is False
    assert fresh.reported["level"].stale is None  # no gap check: nothing said
    late = uma.get_state("reach", at=_at(21))
    assert late.stale == ["stage"] and late.reported["stage"].stale is True
    assert late.reported["stage"].stale_since == _at(20)
    assert uma.get_state("reach").stale == ["stage"]  # now, long after T0
    # as of a revision: when it was recorded (a value timestamped now is fresh then, and stale much later)
    now = datetime.now(UTC)
    written = uma.write_state("reach", reported={"stage": PropertyWrite(value=1.5, timestamp=now)})
    current = uma.get_state("reach")
    assert current.stale == [] and current.reported["stage"].stale is False
    by_revision = uma.get_state("reach", revision=written.revision)
    assert by_revision.stale == [] and by_revision.stale_as_of == written.recorded_at
    assert uma.get_state("reach", revision=1).stale == ["stage"]  # recorded now, timestamped in March
    assert uma.get_state("reach", at=now + timedelta(hours=1)).stale == ["stage"]
    # the JSON: only properties with a gap check carry `stale`; an app without one has no `stale` list
    body = engine.http.get("/api/v1/twins/reach/state", headers=engine.headers(engine.token("uma", "user"))).json()
    assert body["reported"]["stage"]["stale"] is False and "stale" not in body["reported"]["level"]
    assert body["stale"] == [] and "stale_as_of" in body and "quality" not in body


# --- quality filters ---------------------------------------------------------------------------------------

# revision, level, flag: good, good, suspect (a spike), bad (out of range and a spike)
LEVELS = [(1.0, "good"), (1.1, "good"), (1.9, "suspect"), (20.0, "bad")]


def _levels(uma: Client) -> None:
    for minutes, (value, _flag) in enumerate(LEVELS):
        uma.write_state("reach", reported={"level": PropertyWrite(value=value, timestamp=_at(minutes))})


def test_a_quality_filter_shows_each_propertys_newest_value_that_passed(uma: Client) -> None:
    _levels(uma)
    uma.desire("reach", level=2.0)  # desired values are never judged: good
    assert uma.get_state("reach").reported["level"].value == 20.0
    good = uma.get_state("reach", quality=["good"])
    assert good.reported["level"].value == 1.1 and good.reported["level"].revision == 2
    assert good.quality == ["good"] and good.desired["level"].value == 2.0 and good.delta == {"level": 2.0}
    assert uma.get_state("reach", quality=["good", "suspect"]).reported["level"].value == 1.9
    assert uma.get_state("reach", quality=["suspect"]).reported["level"].value == 1.9
    assert uma.get_state("reach", quality=["bad"]).reported["level"].value == 20.0
    everything = uma.get_state("reach", quality=["bad", "good", "suspect"])
    assert everything.quality is None and everything.reported["level"].value == 20.0  # all flags: no filter


def test_a_quality_filter_works_with_time_travel_and_history(uma: Client) -> None:
    _levels(uma)
    assert uma.get_state("reach", at=_at(2.5), quality=["good"]).reported["level"].value == 1.1
    assert uma.get_state("reach", at=_at(0.5), quality=["good"]).reported["level"].value == 1.0
    assert uma.get_state("reach", at=_at(3), quality=["suspect"]).reported["level"].value == 1.9
    assert uma.get_state("reach", at=_at(-1), quality=["good"]).reported == {}
    assert uma.get_state("reach", revision=3, quality=["good"]).reported["level"].value == 1.1
    assert uma.get_state("reach", revision=2, quality=["good"]).reported["level"].revision == 2  # its own head
    assert uma.get_state("reach", revision=1, quality=["bad"]).reported == {}
    assert [v.value for v in uma.history("reach", "level", quality=["good"]).items] == [1.0, 1.1]
    assert [v.value for v in uma.history("reach", "level", quality=["bad", "suspect"]).items] == [1.9, 20.0]
    newest = uma.history("reach", "level", quality=["good"], order="desc", limit=1)
    assert [v.value for v in newest.items] == [1.1] and newest.quality == ["good"]
    assert uma.history("reach", "level").quality is None and len(uma.history("reach", "level").items) == 4


@pytest.mark.every_store  # reaches code only PostgreSQL runs
def test_a_property_without_a_kept_value_is_left_out_and_objects_are_not_mistaken(uma: Client) -> None:
    uma.write_state("never-good", reported={"level": 50.0})  # out of range: its only value is bad
    # object values shaped like the log's envelope (quality/stored.py) are values, not flags
    lookalikes = [{"value": 1, "uncertainty": 2, "quality": {"flag": "bad"}},
                  {"value": 2, "uncertainty": 1, "quality": {"flag": "bad"}, "x": 3}]
    for config in lookalikes:
        uma.write_state("never-good", reported={"config": config})
        state = uma.get_state("never-good", quality=["good"])
        assert "level" not in state.reported and state.reported["config"].value == config
        assert uma.get_state("never-good", quality=["good"], at=datetime.now(UTC)).reported["config"].value == config
        assert uma.get_state("never-good", quality=["bad"]).reported.keys() == {"level"}
    assert [v.value for v in uma.history("never-good", "config", quality=["good"]).items] == lookalikes
    assert uma.get_state("never-good").reported["level"].value == 50.0


# --- hostile input -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("check", "where", "says"), [
    ({"every": 0}, "every", "must be positive"),
    ({"every": "0s"}, "every", "must be positive"),
    ({"every": "-PT5M"}, "every", "must be positive"),
    ({"every": "-5min"}, "every", "not a duration"),
    ({"every": "soon"}, "every", "not a duration"),
    ({"every": "400d"}, "every", "366 days"),
    ({"every": 1e12}, "every", "366 days"),
    ({"every": 1e300}, "every", "longer than any duration"),
    ({"every": "300d", "tolerance": "100d"}, "", "every + tolerance"),
    ({"every": "1h", "tolerance": "-PT1M"}, "tolerance", "cannot be negative"),
    ({"every": "1h", "max_delay": "0s"}, "max_delay", "must be positive"),
    ({}, "every", "required"),
    ({"every": "1h", "field": "level"}, "", "leave out 'field'"),
    ({"every": "1h", "severity": "awful"}, "severity", "suspect"),
])
def test_a_bad_gap_declaration_names_its_field(engine: Engine, tmp_path: Path, check: dict[str, Any], where: str,
                                               says: str) -> None:
    declared = {**MINIMAL_STATE, "level": {**MINIMAL_STATE["level"], "quality": [
        {"check": "range", "min": 0}, {"check": "gap", **check}]}}
    with pytest.raises(ValidationFailed) as refused:
        engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="bad-gap", manifest={"state": declared}))
    loc = "state.level.quality[1]" + (f".{where}" if where else "")
    assert any(p.loc == loc and says in p.msg for p in refused.value.problems), refused.value.problems


def test_one_gap_check_per_property_and_value_checks_stay_numeric(engine: Engine, tmp_path: Path) -> None:
    twice = {**MINIMAL_STATE, "on": {"type": "boolean", "quality": [{"check": "gap", "every": "1h"},
                                                                    {"check": "gap", "every": "2h"}]}}
    with pytest.raises(ValidationFailed, match="at most one gap check"):
        engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="twice", manifest={"state": twice}))
    flat = {**MINIMAL_STATE, "on": {"type": "boolean", "quality": [{"check": "gap", "every": "1h"},
                                                                   {"check": "flatline", "records": 3}]}}
    with pytest.raises(ValidationFailed, match="number and integer properties only"):
        engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="flat", manifest={"state": flat}))


def test_bad_quality_filters_are_refused_naming_the_parameter(engine: Engine, uma: Client) -> None:
    _levels(uma)
    headers = engine.headers(engine.token("uma", "user"))
    for path in ("/api/v1/twins/reach/state", "/api/v1/twins/reach/properties/level/history"):
        for params in ({"quality": "great"}, {"quality": ""}, {"quality": "GOOD"},
                       {"quality": ["good", "bad", "suspect", "good"]}):
            r = engine.http.get(path, params=params, headers=headers)
            assert r.status_code == 422, (path, params, r.text)
            assert r.json()["details"][0]["loc"].startswith("query.quality"), r.text
    r = engine.http.get("/api/v1/twins/reach/state", params={"quality": "good", "at": "2026-03-01T00:02:30Z",
                                                             "revision": 2}, headers=headers)
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == "at"


STORED = [1.5, 0, None, True, "bad", [1, 2], {}, {"quality": {"flag": "bad"}},
          {"value": 1, "uncertainty": None}, {"value": 1, "uncertainty": {"std": 0.1}, "quality": {"flag": "bad"}},
          {"value": 1, "uncertainty": None, "quality": {"flag": "suspect", "checks": ["gap:level"]}},
          {"value": {"value": 1, "uncertainty": 2, "quality": {"flag": "bad"}}, "uncertainty": None},
          {"value": 1, "uncertainty": 2, "quality": {"flag": "bad"}, "x": 3}, {"value": 1, "quality": {"flag": "bad"}}]


def test_the_flag_read_in_sql_follows_the_envelope_rule_of_the_log(engine: Engine) -> None:
    from sqlalchemy import literal, select

    from twinengine.quality.stored import unpack
    from twinengine.store.base import JSONValue
    from twinengine.twins.state_quality import flag_of

    with engine.runtime.db.session() as session:
        dialect = session.get_bind().dialect.name
        for stored in STORED:
            quality = unpack(stored).quality
            expected = quality["flag"] if quality else "good"
            assert session.execute(select(flag_of(literal(stored, JSONValue), dialect))).scalar() == expected, stored
