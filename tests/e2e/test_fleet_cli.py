"""The fleet commands of the ``twin`` CLI against a live engine: filtered lists, updates, aggregates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers import RIVER_REACH, LiveEngine


def test_list_filters_update_and_aggregate(live: LiveEngine, tmp_path: Path) -> None:
    dev = live.twin_json("token", "create", "--name", "ada", "--role", "developer")["token"]
    user = live.twin_json("token", "create", "--name", "uma", "--role", "user")["token"]
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    for i, level in enumerate((1.0, 2.0, 3.0), start=1):
        live.twin("create", "river-reach@0.1.0", "--name", f"reach-{i}", "--param", f"station=RR-0{i}",
                  "--tag", "alpine" if i < 3 else "lowland", "--point", f"{7 + i},46", token=user)
        live.twin("state", "report", "reach-" + str(i), f"level={level}", token=user)
    page = live.twin_json("list", "--tag", "alpine", "--state", "level>1.5", token=user)
    assert [t["name"] for t in page["items"]] == ["reach-2"] and page["next"] is None
    assert [t["name"] for t in live.twin_json("list", "--bbox", "8.5,45,11,47", token=user)["items"]] == [
        "reach-2", "reach-3"]
    first = live.twin_json("list", "--state", "level>0", "--limit", "2", token=user)
    rest = live.twin_json("list", "--state", "level>0", "--cursor", first["cursor"], token=user)
    assert [t["name"] for t in first["items"] + rest["items"]] == ["reach-1", "reach-2", "reach-3"]
    assert "reach-2" in live.twin("list", "--tag", "alpine", token=user)

    square = tmp_path / "square.geojson"
    square.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": {
        "type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}}))
    updated = live.twin_json("update", "reach-1", "--tag", "dam", "--location", str(square), token=user)
    assert updated["tags"] == ["dam"] and updated["location"]["type"] == "Polygon"

    result = live.twin_json("fleet", "aggregate", "level", "--by", "tag", "--stat", "mean", "--stat", "p50",
                            token=user)
    assert {g["key"]: g["mean"] for g in result["groups"]} == {"alpine": 2.0, "dam": 1.0, "lowland": 3.0}
    out = live.twin("fleet", "aggregate", "level", "--stat", "mean", "--stat", "max", token=user)
    assert "│ all   │ 2    │ 3   │" in out
    bad = live.twin("list", "--state", "level>>1", token=user, expect=1)
    assert "state" in bad and "Traceback" not in bad
    # levels reported now are fresh; one timestamped an hour ago is past river-reach's gap check (20 min)
    assert live.twin_json("list", "--stale", "level", token=user)["items"] == []
    live.twin("state", "report", "reach-2", "level=2.5", "--at",
              (datetime.now(UTC) - timedelta(hours=1)).isoformat(), token=user)
    assert [t["name"] for t in live.twin_json("list", "--stale", "level", token=user)["items"]] == ["reach-2"]
    assert live.twin_json("state", "show", "reach-2", token=user)["stale"] == ["level"]
    bad = live.twin("list", "--stale", "rain", token=user, expect=1)
    assert "stale" in bad and "gap check" in bad and "Traceback" not in bad
