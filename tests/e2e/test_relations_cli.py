"""``twin link``, ``unlink``, ``links`` and ``related`` against a live engine: tables, JSON and clean errors."""

from __future__ import annotations

import itertools

from helpers import RIVER_REACH, LiveEngine


def test_link_walk_downstream_and_unlink(live: LiveEngine) -> None:
    dev = live.twin_json("token", "create", "--name", "ada", "--role", "developer")["token"]
    user = live.twin_json("token", "create", "--name", "uma", "--role", "user")["token"]
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    reaches = [f"reach-{i:02d}" for i in range(1, 5)]
    for i, name in enumerate(reaches):
        live.twin("create", "river-reach@0.1.0", "--name", name, "--param", "station=RR-01", token=user)
        live.twin("state", "report", name, f"level={1 + i / 10}", token=user)
    for upstream, downstream in itertools.pairwise(reaches):
        out = live.twin("link", upstream, "flows_into", downstream, "--at", "2026-03-01T00:00:00Z", token=user)
        assert f"{upstream} flows_into {downstream} since 2026-03-01 00:00:00" in out

    table = live.twin("related", "reach-01", "--type", "flows_into", "--depth", "3", "--state", token=user)
    assert "reach-02 flows_into reach-03" in table and "level=1.2 m" in table and "within 3 hops" in table
    page = live.twin_json("related", "reach-01", "--type", "flows_into", "--depth", "2", token=user)
    assert [(t["name"], t["depth"]) for t in page["items"]] == [("reach-02", 1), ("reach-03", 2)]
    upstream = live.twin_json("related", "reach-04", "--direction", "in", "--depth", "9", token=user)
    assert [t["name"] for t in upstream["items"]] == ["reach-03", "reach-02", "reach-01"]

    assert "closed" in live.twin("unlink", "reach-02", "flows_into", "reach-03", token=user)
    assert [t["name"] for t in live.twin_json("related", "reach-01", "--depth", "3", token=user)["items"]] == [
        "reach-02"]
    past = live.twin_json("related", "reach-01", "--depth", "3", "--at", "2026-03-02T00:00:00Z", token=user)
    assert [t["name"] for t in past["items"]] == ["reach-02", "reach-03", "reach-04"]
    assert len(live.twin_json("links", "reach-02", "--history", token=user)["items"]) == 1
    assert live.twin_json("links", "reach-02", token=user)["items"] == []

    err = live.twin("link", "reach-03", "flows_into", "reach-03", token=user, expect=1)
    assert "target: a twin cannot be linked to itself" in err
    err = live.twin("link", "reach-04", "flows_into", "reach-03", token=user, expect=1)
    assert "cycle" in err and "Traceback" not in err
    err = live.twin("related", "reach-01", "--at", "soon", token=user, expect=1)
    assert "--at" in err
    assert "--depth" in live.twin("related", "--help")
