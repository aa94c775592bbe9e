"""Relationships over HTTP: links checked against the app's declared types, closed never erased, read as of a
time, and traversals that follow them with each related twin's state."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpers import RIVER_REACH, Engine, make_app
from twinengine.client import Client
from twinengine.errors import Conflict, NotFound, PermissionDenied, TwinEngineError, ValidationFailed

T0 = datetime(2026, 3, 1, tzinfo=UTC)
REACHES = [f"reach-{i:02d}" for i in range(1, 6)]


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    for name in REACHES:
        client.create_twin("river-reach@0.1.0", name, {"station": "RR-01"})
    return client


def chain(uma: Client, names: list[str], *, at: datetime | None = None) -> None:
    for upstream, downstream in itertools.pairwise(names):
        uma.link(upstream, "flows_into", downstream, at=at)


def test_downstream_within_hops_with_current_state(uma: Client) -> None:
    chain(uma, REACHES)
    for i, name in enumerate(REACHES):
        uma.report(name, level=1.0 + i / 10)
    page = uma.related("reach-01", type="flows_into", depth=3, state=True)
    assert [(t.name, t.depth) for t in page.items] == [("reach-02", 1), ("reach-03", 2), ("reach-04", 3)]
    assert [t.state.reported["level"].value for t in page.items if t.state] == [1.1, 1.2, 1.3]
    assert page.items[2].via.source_id == uma.get_twin("reach-03").id and not page.truncated
    upstream = uma.related("reach-05", type="flows_into", direction="in", depth=10)
    assert [t.name for t in upstream.items] == ["reach-04", "reach-03", "reach-02", "reach-01"]
    assert upstream.items[0].state is None  # only when asked for
    both = uma.related("reach-03", direction="both", depth=1)
    assert sorted(t.name for t in both.items) == ["reach-02", "reach-04"]
    cut = uma.related("reach-01", depth=4, limit=2)
    assert [t.name for t in cut.items] == ["reach-02", "reach-03"] and cut.truncated


def test_links_are_checked_against_the_declared_types(uma: Client) -> None:
    def loc_of(call: object) -> str:
        with pytest.raises(ValidationFailed) as caught:
            call()  # type: ignore[operator]
        return caught.value.problems[0].loc

    assert loc_of(lambda: uma.link("reach-01", "drains_to", "reach-02")) == "type"
    assert loc_of(lambda: uma.link("reach-01", "flows_into", "reach-01")) == "target"
    assert loc_of(lambda: uma.link("reach-01", "flows_into", "no-such-reach")) == "target"
    chain(uma, REACHES[:3])
    with pytest.raises(ValidationFailed, match=r"cycle: reach-01 → reach-02 → reach-03 → reach-01") as caught:
        uma.link("reach-03", "flows_into", "reach-01")
    assert caught.value.problems[0].loc == "target"
    with pytest.raises(ValidationFailed, match="many_to_one") as caught:  # reach-01 flows into reach-02 already
        uma.link("reach-01", "flows_into", "reach-04")
    assert caught.value.problems[0].loc == "target"
    uma.link("reach-04", "flows_into", "reach-02")  # many flow into one
    with pytest.raises(Conflict):
        uma.link("reach-04", "flows_into", "reach-02")
    with pytest.raises(NotFound):
        uma.unlink("reach-05", "flows_into", "reach-01")
    assert [t.name for t in uma.related("reach-04", depth=5).items] == ["reach-02", "reach-03"]


def test_target_app_and_cardinality_of_another_app(engine: Engine, uma: Client, tmp_path: Path) -> None:
    ada = engine.as_role("ada", "developer")
    ada.publish_app(make_app(tmp_path, name="channel"))
    ada.publish_app(make_app(tmp_path, name="detector", manifest={"relationships": {
        "has_channel": {"targets": ["channel"], "cardinality": "one_to_many"}}}))
    uma.create_twin("detector@1.0.0", "det-a", {"station": "D1"})
    uma.create_twin("detector@1.0.0", "det-b", {"station": "D2"})
    for n in range(3):
        uma.create_twin("channel@1.0.0", f"ch-{n}", {"station": "C1"})
        uma.link("det-a", "has_channel", f"ch-{n}")
        uma.report(f"ch-{n}", level=float(n))
    with pytest.raises(ValidationFailed, match=r"river-reach; has_channel links detector twins to twins of "
                                               r"channel") as caught:
        uma.link("det-b", "has_channel", "reach-01")
    assert caught.value.problems[0].loc == "target"
    with pytest.raises(ValidationFailed, match="one_to_many"):  # a channel belongs to one detector
        uma.link("det-b", "has_channel", "ch-0")
    with pytest.raises(ValidationFailed, match=r"not a relationship type of channel@1\.0\.0"):
        uma.link("ch-0", "has_channel", "ch-1")
    channels = uma.related("det-a", type="has_channel", state=True)
    assert {t.name: t.state.reported["level"].value for t in channels.items if t.state} == {
        "ch-0": 0.0, "ch-1": 1.0, "ch-2": 2.0}
    assert uma.related("det-a", type="flows_into").items == []


def test_unlinking_closes_the_span_and_the_past_stays_readable(uma: Client) -> None:
    chain(uma, REACHES[:3], at=T0)
    closed = uma.unlink("reach-02", "flows_into", "reach-03", at=T0 + timedelta(hours=2))
    assert closed.valid_to == T0 + timedelta(hours=2) and closed.closed_by == "uma"
    assert closed.closed_revision is not None and closed.closed_revision > closed.opened_revision
    uma.link("reach-02", "flows_into", "reach-05", at=T0 + timedelta(hours=3))
    now = [t.name for t in uma.related("reach-01", depth=3).items]
    assert now == ["reach-02", "reach-05"]
    at = [t.name for t in uma.related("reach-01", depth=3, at=T0 + timedelta(hours=1)).items]
    assert at == ["reach-02", "reach-03"]
    assert uma.related("reach-01", depth=3, at=T0 + timedelta(hours=2, minutes=30)).items[0].name == "reach-02"
    assert uma.related("reach-01", at=T0 - timedelta(seconds=1)).items == []
    history = uma.links("reach-02", history=True)
    assert [(lk.target_id, lk.valid_to is None) for lk in history.items] == [
        (uma.get_twin("reach-03").id, False), (uma.get_twin("reach-05").id, True)]
    assert len(uma.links("reach-02").items) == 1
    assert [lk.source_id for lk in uma.links("reach-03", direction="in", at=T0 + timedelta(hours=1)).items] == [
        uma.get_twin("reach-02").id]


def test_state_as_of_a_time_goes_with_the_graph_as_of_that_time(uma: Client) -> None:
    chain(uma, REACHES[:2], at=T0)
    uma.report("reach-02", level=1.0, timestamp=T0 + timedelta(hours=1))
    uma.report("reach-02", level=2.0, timestamp=T0 + timedelta(hours=3))
    past = uma.related("reach-01", at=T0 + timedelta(hours=2), state=True).items[0]
    assert past.state is not None and past.state.reported["level"].value == 1.0
    now = uma.related("reach-01", state=True).items[0]
    assert now.state is not None and now.state.reported["level"].value == 2.0


def test_changes_of_a_type_go_forward_in_time(uma: Client) -> None:
    uma.link("reach-01", "flows_into", "reach-02", at=T0 + timedelta(hours=5))
    with pytest.raises(ValidationFailed, match="before the latest change") as caught:
        uma.link("reach-03", "flows_into", "reach-04", at=T0)
    assert caught.value.problems[0].loc == "at"
    with pytest.raises(ValidationFailed, match="in the future") as caught:
        uma.unlink("reach-01", "flows_into", "reach-02", at=datetime.now(UTC) + timedelta(days=1))
    assert caught.value.problems[0].loc == "at"
    assert len(uma.links("reach-01").items) == 1  # nothing of a refused change was written


def test_access_operate_to_link_read_to_see(engine: Engine, uma: Client) -> None:
    bob = engine.as_role("bob", "user")
    bob.create_twin("river-reach@0.1.0", "bobs-reach", {"station": "RR-09"})
    with pytest.raises(PermissionDenied):
        bob.link("bobs-reach", "flows_into", "reach-01")  # cannot read reach-01
    with pytest.raises(PermissionDenied):
        bob.link("reach-01", "flows_into", "bobs-reach")  # cannot operate reach-01
    uma.grant("reach-01", "bob", "read")
    bob.link("bobs-reach", "flows_into", "reach-01")
    chain(uma, REACHES[:3])
    seen = bob.related("bobs-reach", depth=3)
    assert [t.name for t in seen.items] == ["reach-01"]  # reach-02 is not bob's to see, nor walked through
    with pytest.raises(PermissionDenied):
        bob.related("reach-02")
    assert [t.name for t in uma.related("reach-01", direction="in").items] == []  # nor uma's to see


def test_deleting_a_twin_takes_its_links(uma: Client) -> None:
    chain(uma, REACHES[:3])
    uma.delete_twin("reach-02")
    assert uma.related("reach-01").items == []
    assert uma.links("reach-03", direction="in", history=True).items == []


def test_hostile_input_is_4xx_naming_the_field(engine: Engine, uma: Client) -> None:
    headers = engine.headers(engine.token("uma", "user"))
    related = "/api/v1/twins/reach-01/related"
    for params, loc in [({"depth": 0}, "query.depth"), ({"depth": 10**6}, "query.depth"),
                        ({"depth": "deep"}, "query.depth"), ({"direction": "sideways"}, "query.direction"),
                        ({"type": "x'; DROP TABLE twin_links; --"}, "query.type"), ({"type": "t" * 65}, "query.type"),
                        ({"at": "1772344800"}, "query.at"), ({"at": "yesterday"}, "query.at"),
                        ({"limit": -1}, "query.limit"), ({"state": "maybe"}, "query.state")]:
        r = engine.http.get(related, params=params, headers=headers)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["details"][0]["loc"] == loc, (params, r.text)
    links = "/api/v1/twins/reach-01/links"
    for body, loc in [({"type": "flows_into"}, "target"), ({"target": "reach-02"}, "type"),
                      ({"type": "flows into", "target": "reach-02"}, "type"),
                      ({"type": "flows_into", "target": "x" * 65}, "target"),
                      ({"type": "flows_into", "target": "reach-02", "colour": "blue"}, "colour"),
                      ({"type": "flows_into", "target": ["reach-02"]}, "target"),
                      ({"type": "flows_into", "target": "reach-02", "at": 0}, "at"),
                      ({"type": "flows_into", "target": "\x00"}, "target")]:
        r = engine.http.post(links, json=body, headers=headers)
        assert r.status_code in (400, 422), (body, r.text)
        assert r.json()["details"][0]["loc"] == loc, (body, r.text)
    r = engine.http.post(links, content=b'{"type": ', headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 400
    r = engine.http.delete("/api/v1/twins/reach-01/links/flows_into/reach-02", params={"at": "soon"},
                           headers=headers)
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == "query.at"
    r = engine.http.get("/api/v1/twins/no-such-twin/related", headers=headers)
    assert r.status_code == 404
    assert uma.links("reach-01", history=True).items == []  # nothing was written


def test_a_workflow_takes_the_related_twins_as_input(uma: Client, tmp_path: Path) -> None:
    chain(uma, REACHES)
    for i, name in enumerate(REACHES):
        uma.report(name, level=1.0 + i)
    graph = {"process_graph": {
        "down": {"process_id": "load_related_twins", "arguments": {"type": "flows_into", "depth": 2,
                                                                   "state": True}},
        "ids": {"process_id": "load_related_twins", "arguments": {"twin": "reach-05", "direction": "in"}},
        "save": {"process_id": "save_result", "arguments": {"data": [{"from_node": "down"}, {"from_node": "ids"}],
                                                            "format": "JSON"}, "result": True}}}
    run = uma.workflows.submit(graph, twin="reach-01", sync=True)
    assert run.status == "finished", run.error
    import json

    down, ids = json.loads(uma.workflows.download(run.id, "result.json", tmp_path / "r.json").read_text())
    assert [(t["name"], t["depth"], t["reported"]["level"]) for t in down] == [("reach-02", 1, 2.0),
                                                                              ("reach-03", 2, 3.0)]
    assert ids == [uma.get_twin("reach-04").id]

    # the crate names what each read returned by its SHA-256; a related twin's value changed since makes the
    # rerun's diff say that input changed
    import hashlib
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(uma.crates.crate(run.id))) as archive:
        graph_ld = json.loads(archive.read("ro-crate-metadata.json"))["@graph"]
    related = {e["name"]: e for e in graph_ld if e.get("additionalType") == "related"}
    read = json.dumps(down, sort_keys=True, separators=(",", ":")).encode()
    first = related[f"{uma.get_twin('reach-01').id}/flows_into"]
    assert (first["sha256"], int(first["contentSize"])) == (hashlib.sha256(read).hexdigest(), len(read))
    assert "reported state" in first["description"]
    uma.report("reach-03", level=7.5)
    diff = uma.crates.wait_diff(uma.crates.rerun(run.id).rerun, timeout=120)
    said = [w for w in diff.why if w.startswith(f"an input changed: related {uma.get_twin('reach-01').id}/flows_into")]
    assert diff.verdict == "different" and said, diff.why
    assert not [w for w in diff.why if "reach-05" in w or uma.get_twin("reach-05").id in w]  # the ids read are the same
    bad = {"process_graph": {"r": {"process_id": "load_related_twins", "arguments": {"type": "nope", "depth": 0},
                                   "result": True}}}
    with pytest.raises(TwinEngineError, match="depth"):
        uma.workflows.submit(bad, twin="reach-01", sync=True)
