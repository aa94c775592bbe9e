"""``twin state import FILE.jsonl`` against a live engine: batches, a summary, and errors naming the line."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import RIVER_REACH, LiveEngine


def _lines(path: Path, items: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items) + "\n")
    return path


def test_import_writes_every_line_in_batches_and_names_a_bad_line(live: LiveEngine, tmp_path: Path) -> None:
    dev = live.twin_json("token", "create", "--name", "ada", "--role", "developer")["token"]
    user = live.twin_json("token", "create", "--name", "uma", "--role", "user")["token"]
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    for name in ("reach-a", "reach-b"):
        live.twin("create", "river-reach@0.1.0", "--name", name, "--param", "station=RR-01", token=user)
    items: list[dict[str, object]] = [
        {"twin": "reach-a" if i % 2 else "reach-b",
         "reported": {"level": {"value": 100 + i, "unit": "cm", "timestamp": f"2026-03-01T{i:02d}:00:00Z"}}}
        for i in range(7)]
    summary = live.twin_json("state", "import", str(_lines(tmp_path / "ok.jsonl", items)), "--batch", "3",
                             token=user)
    assert summary["revisions"] == 7 and summary["values"] == 7
    a = live.twin_json("state", "show", "reach-a", token=user)
    assert a["revision"] == 3 and a["reported"]["level"]["value"] == 1.05 and a["reported"]["level"]["unit"] == "m"
    assert "imported 7 revisions" in live.twin("state", "import", str(tmp_path / "ok.jsonl"), token=user)

    bad = [*items[:3], {"twin": "reach-a", "reported": {"level": {"value": "high"}}}]
    out = live.twin("state", "import", str(_lines(tmp_path / "bad.jsonl", bad)), token=user, expect=1)
    assert "line 4.reported.level.value" in out
    assert live.twin_json("state", "show", "reach-a", token=user)["revision"] == 6  # that batch: nothing
    (tmp_path / "broken.jsonl").write_text(json.dumps(items[0]) + "\n{\"twin\": \n")
    out = live.twin("state", "import", str(tmp_path / "broken.jsonl"), token=user, expect=1)
    assert "line 2" in out
