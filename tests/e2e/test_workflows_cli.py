"""``twin run`` through the CLI against a live engine, and a run killed with its engine: after the restart it
ends as ``error`` with the reason instead of staying ``running``."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from test_serve import serve

from helpers import RIVER_REACH, LiveEngine, admin_token, free_port, make_app
from twinengine.client import Client
from twinengine.config import Settings
from workflow_data import rain_cube, write_collection


def test_twin_run_wait_shows_progress_and_the_result(live: LiveEngine) -> None:
    with live.client() as admin:
        dev = admin.create_token("ada", "developer").token
        uma = admin.create_token("uma", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    ds = rain_cube(days=1)
    ds["rain"].values[:] = 4.0
    write_collection(live.settings.data_dir / "collections", "rain-forecast", ds)  # before the twin: no arrival
    live.twin("create", "river-reach@0.1.0", "--name", "reach", "--param", "station=RR-01", token=uma)
    out = live.twin("run", "reach", "forecast", "--param", "alert_level=0.3", "--wait", token=uma)
    assert "forecast: finished" in out and "100%" in out and "forecast_level" in out
    run = live.twin_json("run", "reach", "forecast", "--param", "alert_level=0.3", "--wait", token=uma)
    assert run["status"] == "finished" and {n["node_id"]: n["status"] for n in run["nodes"]}["save"] == "cached"
    listed = live.twin_json("runs", "list", "--twin", "reach", token=uma)
    assert listed["total"] == 2
    prov = json.loads(live.twin("runs", "provenance", run["id"], token=uma))
    assert any(k.startswith("twin:process/river-reach/forecast_level") for k in prov["entity"])
    bad = live.twin("run", "reach", "forecast", "--param", "bbox=3", token=uma, expect=1)
    assert "ProcessParameterInvalid" in bad and "parameters.bbox" in bad
    added = live.twin("triggers", "add", "reach", "nightly", "--kind", "cron", "--workflow", "forecast",
                      "--schedule", "0 2 * * *", "--param", "alert_level=0.3", token=uma)
    assert "added cron trigger nightly" in added
    listed_triggers = live.twin_json("triggers", "list", "reach", token=uma)
    assert {t["name"] for t in listed_triggers} == {"nightly", "on_new_forecast"}
    live.twin("triggers", "remove", "reach", "nightly", token=uma)
    windows = live.twin("triggers", "add", "reach", "daily", "--kind", "stream_window", "--workflow", "forecast",
                        "--stream", "gauges", "--count", "96", token=uma)
    assert "added stream_window trigger daily" in windows
    bad_stream = live.twin("triggers", "add", "reach", "oops", "--kind", "stream_window", "--workflow",
                           "forecast", "--stream", "nope", "--count", "96", token=uma, expect=1)
    assert "stream" in bad_stream and "nope" in bad_stream


SLOW = '''
import time
from twinengine.workflows.apps import app_process


@app_process(summary="Sleeps", cacheable=False)
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
'''


@pytest.mark.sandbox
@pytest.mark.slow
@pytest.mark.ci_only  # a real twin serve killed -9 with a run in progress
def test_a_run_killed_with_its_engine_ends_as_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env_stale = {"TWIN_WORKFLOW_STALE_AFTER": "PT3S"}
    import os

    os.environ.update(env_stale)
    try:
        with serve(settings, port) as process:
            token = admin_token(settings)
            with Client(url, token) as admin:
                admin.publish_app(make_app(tmp_path, name="slow-app", files={"slow_app/procs.py": SLOW}))
                graph = {"process_graph": {"n": {"process_id": "nap", "namespace": "slow-app",
                                                 "arguments": {"seconds": 60}, "result": True}}}
                run = admin.workflows.submit(graph)
                deadline = time.monotonic() + 30
                while admin.workflows.get(run.id).status != "running" and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert admin.workflows.get(run.id).status == "running"
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=20)
        time.sleep(3.5)  # longer than the heartbeat limit
        with serve(settings, port), Client(url, token) as admin:
            final = admin.workflows.wait(run.id, timeout=30)
            assert final.status == "error" and final.error is not None
            assert final.error["code"] == "EngineRestarted" and "stopped without finishing" in final.error["message"]
    finally:
        for key in env_stale:
            os.environ.pop(key, None)


def test_a_run_is_shown_logged_downloaded_and_cancelled_through_the_cli(live: LiveEngine, tmp_path: Path) -> None:
    """``twin runs show | logs | download | cancel``; a cancel stops app code in the middle of its node (the
    worker running it is killed), where it used to wait for the node to end and the run then finished."""
    with live.client() as admin:
        dev = admin.create_token("ada", "developer").token
        uma = admin.create_token("uma", "user").token
    live.twin("app", "publish", str(make_app(tmp_path, name="nap-app", files={"nap_app/procs.py": SLOW})),
              token=dev)

    def nap(seconds: float) -> dict[str, object]:
        return {"process_graph": {"n": {"process_id": "nap", "namespace": "nap-app",
                                        "arguments": {"seconds": seconds}, "result": True}}}

    with live.client(uma) as client:
        quick = client.workflows.wait(client.workflows.submit(nap(0.0)).id, timeout=60)
        slow = client.workflows.submit(nap(600.0))
    assert quick.status == "finished", quick
    shown = live.twin("runs", "show", quick.id, token=uma)
    assert quick.id in shown and "finished" in shown and "result.json" in shown
    assert live.twin_json("runs", "show", quick.id, token=uma)["status"] == "finished"
    logged = live.twin_json("runs", "logs", quick.id, token=uma)
    assert logged and "started on" in logged[0]["message"]
    wrote = live.twin_json("runs", "download", quick.id, "result.json", "--to", str(tmp_path / "out"), token=uma)
    assert json.loads(Path(wrote["path"]).read_text()) == 0
    missing = live.twin("runs", "download", quick.id, "nothing-such", "--to", str(tmp_path / "out"), token=uma,
                        expect=1)
    assert "NotFound" in missing and "nothing-such" in missing
    stranger = live.twin("runs", "show", quick.id, token=dev, expect=1)  # another user's run: not even seen
    assert "RunNotFound" in stranger and quick.id in stranger

    with live.client(uma) as client:
        deadline = time.monotonic() + 60
        while client.workflows.get(slow.id).status != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        started = time.monotonic()
        live.twin("runs", "cancel", slow.id, token=uma)
        ended = client.workflows.wait(slow.id, timeout=60)
        took = time.monotonic() - started
    assert ended.status == "canceled", ended
    assert took < 30, f"the cancel took {took:.1f} s: the app code was not stopped"
    assert any("cancel" in line["message"] for line in live.twin_json("runs", "logs", slow.id, token=uma))
    assert "finished" in live.twin("runs", "cancel", quick.id, token=uma)  # nothing to cancel: it stays as it is


def test_twin_run_what_if_runs_on_a_named_fork_and_leaves_the_official_state(live: LiveEngine) -> None:
    with live.client() as admin:
        dev = admin.create_token("ada", "developer").token
        uma = admin.create_token("uma", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    ds = rain_cube(days=1)
    ds["rain"].values[:] = 4.0
    write_collection(live.settings.data_dir / "collections", "rain-forecast", ds)
    live.twin("create", "river-reach@0.1.0", "--name", "reach", "--param", "station=RR-01", token=uma)
    live.twin("run", "reach", "forecast", "--param", "alert_level=0.01", "--wait", token=uma)
    with live.client(uma) as client:
        before = client.get_state("reach").model_dump(mode="json", exclude={"stale_as_of"})
        revisions = client._request("GET", "/api/v1/twins/reach/revisions").content
    assert before["reported"]["forecast_alert"]["value"] is True

    out = live.twin("run", "reach", "forecast", "--param", "alert_level=5", "--what-if", "--name", "reach-dry",
                    "--wait", token=uma)
    assert "what-if of reach" in out and "reach-dry" in out and "forecast: finished" in out, out
    run = live.twin_json("run", "reach", "forecast", "--param", "alert_level=5", "--what-if", "--wait", token=uma)
    assert run["what_if_of"] == "reach" and run["twin_name"] == "reach-what-if" and run["status"] == "finished"
    with live.client(uma) as client:
        assert client.get_state("reach").model_dump(mode="json", exclude={"stale_as_of"}) == before
        assert client._request("GET", "/api/v1/twins/reach/revisions").content == revisions
        assert client.get_state("reach-dry").reported["forecast_alert"].value is False  # the fork's own outcome
    alone = live.twin("run", "reach", "forecast", "--name", "reach-dry", token=uma, expect=2)
    assert "--what-if" in alone
