"""``twin quality`` against a live engine: the table of flag shares and failed checks, the windows of one
stream, the JSON for machines, the PNG plot; ``twin stream read --quality`` filters; a bad window is a
message naming the option's field, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import RIVER_REACH, LiveEngine
from streams_fixtures import gauge


@pytest.mark.slow
def test_twin_quality_shows_tables_json_and_a_plot(live: LiveEngine, tmp_path: Path) -> None:
    with live.client() as admin:
        dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    live.twin("create", "river-reach@0.1.0", "--name", "reach", "--param", "station=RR-01", token=user)
    levels = [1.0 + 0.01 * i for i in range(12)]
    levels[5] = 40.0  # out of range, and a spike
    source = tmp_path / "gauges.jsonl"
    source.write_text("".join(json.dumps(gauge(i, level=v)) + "\n" for i, v in enumerate(levels) if i != 9))
    live.twin("stream", "send", "reach", "gauges", str(source), token=user)

    shown = live.twin("quality", "reach", token=user)
    assert "input quality" in shown and "gauges" in shown and "range:level 1" in shown and "gap 1" in shown
    plot = tmp_path / "quality.png"
    windows = live.twin("quality", "reach", "--stream", "gauges", "--window", "1h", "--plot", str(plot), token=user)
    assert "gauges per 3600 s window" in windows and "2026-03-01 01:00" in windows and "75.0% (low)" in windows
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000

    data = live.twin_json("quality", "reach", "--stream", "gauges", "--window", "30min", token=user)
    (report,) = data["streams"]
    assert report["total"]["bad"] == 1 and report["total"]["suspect"] == 1 and report["total"]["records"] == 11
    assert len(report["windows"]) == 6 and report["window_s"] == 1800

    bad = live.twin_json("stream", "read", "reach", "gauges", "--quality", "bad", token=user)
    assert [r["level"] for r in bad["items"]] == [40.0]
    assert "bad (range:level,spike:level)" in live.twin("stream", "read", "reach", "gauges", token=user)

    created = live.twin_json("buffer", "create", "reach", "clean", "--stream", "gauges", "--policy", "external",
                             "--exclude", "bad", token=user)
    assert created["quality"] == {"exclude": ["bad"]}

    refused = live.twin("quality", "reach", "--window", "soon", token=user, expect=1)
    assert "window" in refused and "Traceback" not in refused
