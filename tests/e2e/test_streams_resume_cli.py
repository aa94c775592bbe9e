"""``twin stream resume`` against a live engine: the functions listing says whether each function runs or is
paused, and resuming one that is not paused, or that does not exist, is an error naming it."""

from __future__ import annotations

from helpers import RIVER_REACH, LiveEngine


def test_functions_show_their_status_and_resume_refuses_what_is_not_paused(live: LiveEngine) -> None:
    with live.client() as admin:
        dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    live.twin("create", "river-reach@0.1.0", "--name", "reach", "--param", "station=RR-01", token=user)
    listed = live.twin_json("stream", "functions", "reach", token=user)
    assert listed and all(f["paused"] is False and f["paused_reason"] is None for f in listed)
    assert "running" in live.twin("stream", "functions", "reach", token=user)
    name = listed[0]["name"]
    refused = live.twin("stream", "resume", "reach", name, token=user, expect=1)
    assert f"function '{name}' of reach is not paused" in refused and "Traceback" not in refused
    missing = live.twin("stream", "resume", "reach", "no_such_function", token=user, expect=1)
    assert "declares no function 'no_such_function'" in missing
