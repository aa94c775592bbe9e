"""``twin quality`` against a live engine: the table of flag shares and failed checks, the windows of one
stream, the JSON for machines, the PNG plot; ``twin stream read --quality`` filters; a bad window is a
message naming the option's field, never a traceback. The quality reports of a run and a model version, and
stream records that carry their uncertainty, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import RIVER_REACH, LiveEngine, make_app
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


LOAD_AND_WRITE = {"process_graph": {
    "load": {"process_id": "load_stream", "arguments": {"stream": "gauges"}},
    "state": {"process_id": "update_twin_state", "arguments": {"reported": {"forecast_peak_level": 1.4}}},
    "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "state"}, "format": "JSON"},
             "result": True}}}


def test_twin_quality_reports_what_a_run_and_a_model_version_used(live: LiveEngine, tmp_path: Path) -> None:
    from twinengine.ml.models import TrainingRun
    from twinengine.store.engine import Database

    with live.client() as admin:
        dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    live.twin("create", "river-reach@0.1.0", "--name", "reach", "--param", "station=RR-01", token=user)
    records = [gauge(i) for i in range(8)]
    records[5]["level"] = 20.0  # out of the declared range: bad
    with live.client(user) as uma:
        uma.streams.append("reach", "gauges", records)
        run = uma.workflows.submit(LOAD_AND_WRITE, twin="reach", sync=True)
        twin_id = uma.get_twin("reach").id
    assert run.status == "finished", run.error

    plot = tmp_path / "inputs.png"
    shown = live.twin("quality", "--run", run.id, "--plot", str(plot), token=user)
    assert f"input quality of run:{run.id}: bad" in shown and f"stream:{twin_id}/gauges" in shown
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = live.twin_json("quality", "--run", run.id, token=user)
    (stream,) = data["inputs"]
    assert data["flag"] == "bad" and stream["records"] == {"good": 7, "suspect": 0, "bad": 1}
    # the value the run wrote says so in the state tables (a column shown only when a value has it)
    assert f"bad ({run.id})" in live.twin("state", "show", "reach", token=user)
    assert "quality" in live.twin("state", "history", "reach", "forecast_peak_level", token=user)
    assert "quality" not in live.twin("state", "history", "reach", "rain", token=user)

    database = Database(live.settings.db_url)
    try:
        with database.session() as session:  # what a training run records of its inputs (ml/engine.py)
            session.add(TrainingRun(id="tr-cli", twin_id=twin_id, model="runoff_correction", status="finished",
                                    created_by="uma", model_version="3", inputs={
                                        "kind": "stream", "stream": "gauges", "start": 0, "end": 8, "records": 8,
                                        "quality": {"good": 6, "suspect": 2, "bad": 0}}))
    finally:
        database.dispose()
    data = live.twin_json("quality", "reach", "--model", "runoff_correction", "--version", "3", token=user)
    assert data["subject"] == "model:reach/runoff_correction/3" and data["flag"] == "suspect"
    assert "suspect" in live.twin("quality", "reach", "--model", "runoff_correction", "--version", "3", token=user)

    for args, named in ((["--run", run.id, "--model", "runoff_correction"], "--run"),
                        (["reach", "--model", "runoff_correction"], "--version"), ([], "TWIN")):
        refused = live.twin("quality", *args, token=user, expect=1)
        assert named in refused and "Traceback" not in refused
    missing = live.twin("quality", "reach", "--model", "runoff_correction", "--version", "9", token=user, expect=1)
    assert "Traceback" not in missing


def test_twin_stream_sends_and_shows_values_with_their_uncertainty(live: LiveEngine, tmp_path: Path) -> None:
    app = make_app(tmp_path, name="gauge-app", manifest={"streams": {"gauges": {"fields": {
        "time": {"type": "timestamp"}, "level": {"type": "float", "unit": "m", "uncertainty": ["std", "members"]}}}}})
    with live.client() as admin:
        dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
    live.twin("app", "publish", str(app), token=dev)
    live.twin("create", "gauge-app@1.0.0", "--name", "g", "--param", "station=G1", token=user)
    source = tmp_path / "gauges.jsonl"
    source.write_text(json.dumps({"time": "2026-03-01T00:00:00Z", "level": {"value": 2.1, "uncertainty": {
        "std": 0.3, "members": [1.8, 2.1, 2.4]}}}) + "\n" + json.dumps({"time": "2026-03-01T00:15:00Z",
                                                                         "level": 2.2}) + "\n")
    live.twin("stream", "send", "g", "gauges", str(source), token=user)
    shown = live.twin("stream", "read", "g", "gauges", token=user)
    assert "2.1 ±0.3, 3 members" in shown and "2.2" in shown
    data = live.twin_json("stream", "read", "g", "gauges", token=user)
    assert [r["_uncertainty"] for r in data["items"]] == [{"level": {"std": 0.3, "members": [1.8, 2.1, 2.4]}}, None]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"time": "2026-03-01T00:30:00Z", "level": {"value": 2.0, "uncertainty": {
        "quantiles": {"0.5": 2.0}}}}) + "\n")
    refused = live.twin("stream", "send", "g", "gauges", str(bad), token=user, expect=1)
    assert "line 1, field level.uncertainty.quantiles" in refused and "Traceback" not in refused
    assert live.twin_json("stream", "read", "g", "gauges", token=user)["count"] == 2  # nothing written


def test_twin_state_marks_stale_properties_and_filters_by_flag(live: LiveEngine, tmp_path: Path) -> None:
    app = make_app(tmp_path, name="stale-app", manifest={"state": {
        "level": {"type": "number", "unit": "m", "quality": [{"check": "range", "min": 0, "max": 10},
                                                            {"check": "gap", "every": "15min"}]},
        "count": {"type": "integer"}}})
    with live.client() as admin:
        dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
    live.twin("app", "publish", str(app), token=dev)
    live.twin("create", "stale-app@1.0.0", "--name", "s", "--param", "station=S1", token=user)
    live.twin("state", "report", "s", "level=1.5", "count=1", "--at", "2026-03-01T00:00:00Z", token=user)
    live.twin("state", "report", "s", "level=40", "--at", "2026-03-01T01:00:00Z", token=user)  # bad, after a gap

    shown = live.twin("state", "show", "s", token=user)
    assert "bad (range:level, gap:level)" in shown and "yes, since 2026-03-01 01:15:00" in shown
    assert "(no report within the declared gap): level" in shown
    good = live.twin_json("state", "show", "s", "--quality", "good", token=user)
    assert good["reported"]["level"]["value"] == 1.5 and good["quality"] == ["good"]
    assert good["stale"] == ["level"] and good["reported"]["level"]["stale_since"].startswith("2026-03-01T00:15")
    assert "only good values" in live.twin("state", "show", "s", "--quality", "good", token=user)
    travelled = live.twin_json("state", "show", "s", "--at", "2026-03-01T00:10:00Z", token=user)
    assert travelled["stale"] == [] and travelled["reported"]["level"]["stale"] is False
    bad = live.twin_json("state", "history", "s", "level", "--quality", "bad", "--quality", "suspect", token=user)
    assert [v["value"] for v in bad["items"]] == [40.0] and bad["quality"] == ["suspect", "bad"]
    assert "stale" not in live.twin("state", "show", "s", "--at", "2026-02-01T00:00:00Z", token=user)

    for command in (["state", "show", "s"], ["state", "history", "s", "level"]):
        refused = live.twin(*command, "--quality", "great", token=user, expect=1)
        assert "--quality" in refused and "'great' is not a flag" in refused and "Traceback" not in refused
