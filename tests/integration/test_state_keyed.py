"""Keyed state: a property declared once with a key (``head: {key: well}``) holds a value per key, written and
read as ``head[ow3]``, with history, time travel, checks and staleness per key, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpers import MINIMAL_STATE, REPO, Engine, make_app
from twinengine.client import Client
from twinengine.errors import ValidationFailed
from twinengine.twins.schemas import PropertyWrite

T0 = datetime(2026, 3, 1, tzinfo=UTC)
KEYED = {**MINIMAL_STATE,
         "head": {"type": "number", "unit": "m", "key": "well",
                  "quality": [{"check": "range", "min": 0, "max": 50}]},
         "pumping": {"type": "boolean", "key": "well"}}


@pytest.fixture
def uma(engine: Engine, tmp_path: Path) -> Client:
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="field-app",
                                                            manifest={"state": KEYED}))
    client = engine.as_role("uma", "user")
    client.create_twin("field-app@1.0.0", "field", {"station": "WF"})
    return client


def _at(minutes: int, value: float) -> PropertyWrite:
    return PropertyWrite(value=value, timestamp=T0 + timedelta(minutes=minutes))


def test_each_key_is_written_and_read_on_its_own(uma: Client) -> None:
    first = uma.report("field", **{"head[ow1]": 12.0, "head[ow2]": 11.0, "pumping[ow1]": True})
    assert {c.property for c in first.changes} == {"head[ow1]", "head[ow2]", "pumping[ow1]"}
    uma.write_state("field", reported={"head[ow2]": PropertyWrite(value=1050, unit="cm")})
    state = uma.get_state("field")
    assert {k: v.value for k, v in state.keyed("head").items()} == {"ow1": 12.0, "ow2": pytest.approx(10.5)}
    assert state.keyed("pumping")["ow1"].value is True and state.keyed("level") == {}
    one = uma.get_property("field", "head[ow2]")
    assert one.key == "well" and one.unit == "m" and one.keys is None
    assert one.value is not None and one.value.value == pytest.approx(10.5) and one.value.revision == 2
    whole = uma.get_property("field", "head")
    assert whole.value is None and whole.keys is not None
    assert {k: v.revision for k, v in whole.keys.items()} == {"ow1": 1, "ow2": 2}
    assert uma.get_property("field", "head[ow9]").value is None  # a key never written: no value, no error
    assert uma.get_property("field", "level").value is None and uma.get_property("field", "level").key is None


def test_as_of_a_revision_and_a_time_and_history_per_key(uma: Client) -> None:
    uma.write_state("field", reported={"head[ow1]": _at(0, 12.0), "head[ow2]": _at(0, 11.0)})  # r1
    uma.write_state("field", reported={"head[ow1]": _at(10, 12.5)})                          # r2
    uma.write_state("field", reported={"head[ow2]": _at(20, 10.0)})                          # r3
    uma.write_state("field", reported={"head[ow1]": _at(5, 12.2)})                           # r4: late data
    assert uma.get_property("field", "head[ow1]", revision=1).value.value == 12.0  # type: ignore[union-attr]
    assert uma.get_property("field", "head[ow1]", revision=3).value.value == 12.5  # type: ignore[union-attr]
    assert uma.get_property("field", "head[ow2]", revision=2).value.value == 11.0  # type: ignore[union-attr]
    at7 = uma.get_property("field", "head[ow1]", at=T0 + timedelta(minutes=7)).value
    assert at7 is not None and (at7.value, at7.revision) == (12.2, 4)
    assert uma.get_property("field", "head[ow2]", at=T0 - timedelta(minutes=1)).value is None
    whole = uma.get_property("field", "head", at=T0 + timedelta(minutes=15)).keys
    assert whole is not None and {k: v.value for k, v in whole.items()} == {"ow1": 12.5, "ow2": 11.0}
    past = uma.get_state("field", revision=2)
    assert {k: v.value for k, v in past.keyed("head").items()} == {"ow1": 12.5, "ow2": 11.0}
    assert [v.value for v in uma.history("field", "head[ow1]").items] == [12.0, 12.2, 12.5]
    assert [v.value for v in uma.history("field", "head[ow2]").items] == [11.0, 10.0]


def test_checks_judge_each_key_on_its_own(uma: Client) -> None:
    uma.report("field", **{"head[ow1]": 12.0, "head[ow2]": 60.0, "head[ow3]": 11.0})
    state = uma.get_state("field").keyed("head")
    assert state["ow2"].quality is not None and state["ow2"].quality.flag == "bad"
    assert state["ow2"].quality.checks == ["range:head[ow2]"]
    assert state["ow1"].quality is None and state["ow3"].quality is None
    good = uma.get_state("field", quality=["good"]).keyed("head")
    assert sorted(good) == ["ow1", "ow3"]


def test_a_bad_key_is_refused_naming_the_field(engine: Engine, uma: Client) -> None:
    headers = engine.headers(engine.token("uma", "user"))
    cases = {"head[ow 1]": "letters, digits", "head[]": "1 to", "head[" + "x" * 60 + "]": "1 to 58 characters",
             "head[../x]": "letters, digits", "level[ow1]": "has no key", "head": "keyed by well",
             "heads[ow1]": "not a state property"}
    for path, says in cases.items():
        r = engine.http.patch("/api/v1/twins/field/state", headers=headers,
                              json={"reported": {path: {"value": 1.0}}})
        assert r.status_code == 422, (path, r.text)
        detail = r.json()["details"][0]
        assert detail["loc"] == f"reported.{path}" and says in detail["msg"], (path, detail)
    with pytest.raises(ValidationFailed) as refused:  # all problems of one write together, nothing written
        uma.report("field", **{"head[ow1]": 12.0, "head[o w]": 1.0, "level[x]": 1.0})
    assert {p.loc for p in refused.value.problems} == {"reported.head[o w]", "reported.level[x]"}
    assert uma.get_twin("field").head_revision == 0
    for path in ("head", "head[o w]", "level[ow1]"):  # history names one key
        r = engine.http.get(f"/api/v1/twins/field/properties/{path}/history", headers=headers)
        assert r.status_code == 422 and r.json()["details"][0]["loc"] == "property", (path, r.text)
    r = engine.http.get("/api/v1/twins/field/properties/level[ow1]", headers=headers)
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == "property"


def test_a_batch_and_the_uncertain_free_desired_side_take_keys(uma: Client) -> None:
    result = uma.write_state_batch([{"twin": "field", "reported": {f"head[ow{i}]": 10.0 + i}} for i in range(5)])
    assert result.values == 5
    uma.desire("field", **{"pumping[ow3]": True})
    state = uma.get_state("field")
    assert len(state.keyed("head")) == 5 and state.delta == {"pumping[ow3]": True}
    assert state.keyed("pumping", "desired")["ow3"].value is True


WELL_FIELD = REPO / "examples" / "apps" / "well-field"


def test_the_well_field_app_writes_each_wells_head_from_its_readings(engine: Engine) -> None:
    from streams_fixtures import eventually

    engine.as_role("ada", "developer").publish_app(WELL_FIELD)
    uma = engine.as_role("uma", "user")
    uma.create_twin("well-field@0.1.0", "field-1", {"field": "WF-01"})
    readings = [{"time": (T0 + timedelta(minutes=15 * t)).isoformat().replace("+00:00", "Z"), "well": f"ow{w}",
                 "head": 30.0 - 0.1 * t - w + (600.0 if (w, t) == (4, 1) else 0.0), "pumping": w % 2 == 0}
                for t in range(2) for w in range(1, 11)]
    uma.streams.append("field-1", "readings", readings)
    eventually(lambda: len(h := uma.get_state("field-1").keyed("head")) == 10
                       and all(v.revision for v in h.values()) and uma.get_twin("field-1").head_revision == 20 and h)
    heads = uma.get_state("field-1").keyed("head")
    assert sorted(heads, key=lambda k: int(k[2:])) == [f"ow{w}" for w in range(1, 11)]
    assert heads["ow1"].value == pytest.approx(28.9) and heads["ow1"].quality is None
    bad = heads["ow4"]  # the one implausible reading flags that well only
    assert bad.quality is not None and bad.quality.flag == "bad" and bad.quality.checks == ["range:head[ow4]"]
    assert [k for k, v in heads.items() if v.quality is not None] == ["ow4"]
    assert [round(v.value, 3) for v in uma.history("field-1", "head[ow4]").items] == [26.0, 625.9]
    assert uma.get_property("field-1", "pumping[ow2]").value.value is True  # type: ignore[union-attr]
    assert uma.get_state("field-1").keyed("head")["ow7"].stale is True  # readings of 2026: long silent now


def test_a_workflow_writes_keys_through_update_twin_state(uma: Client) -> None:
    graph = {"process_graph": {"state": {"process_id": "update_twin_state", "arguments": {
        "reported": {"head[ow1]": 14.0, "pumping[ow1]": 1}}, "result": True}}}
    run = uma.workflows.submit(graph, twin="field", sync=True)
    assert run.status == "finished", run.error
    state = uma.get_state("field")
    assert state.keyed("head")["ow1"].value == 14.0 and state.keyed("pumping")["ow1"].value is True
    graph["process_graph"]["state"]["arguments"] = {"reported": {"head": 1.0}}
    refused = uma.workflows.submit(graph, twin="field", sync=True)
    assert refused.status == "error" and "keyed by well" in str(refused.error), refused.error
