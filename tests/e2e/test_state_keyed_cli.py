"""Keyed state through the ``twin`` CLI: a well's head written as ``head[ow3]=12.1`` (its uncertainty and unit
options name the key too), a keyed property shown as a table of its keys, one key's history, and a bad key
as a message naming it, never a traceback."""

from __future__ import annotations

from helpers import REPO, LiveEngine

WELL_FIELD = REPO / "examples" / "apps" / "well-field"


def test_keys_are_written_shown_and_refused_by_name(live: LiveEngine) -> None:
    with live.client() as admin:
        dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
    live.twin("app", "publish", str(WELL_FIELD), token=dev)
    live.twin("create", "well-field@0.1.0", "--name", "field", "--param", "field=WF-01", token=user)
    live.twin("state", "report", "field", "head[ow3]=12.1", "head[ow.4]=1150", "--unit", "head[ow.4]=cm",
              "--at", "2026-03-01T06:00:00Z", token=user)
    live.twin("state", "report", "field", "head[ow3]=12.4", "--at", "2026-03-01T07:00:00Z", token=user)

    shown = live.twin("state", "show", "field", "--property", "head", token=user)
    assert "(2 keys)" in shown and "well" in shown and "ow.4" in shown and "11.5" in shown and "12.4" in shown
    whole = live.twin_json("state", "show", "field", "--property", "head", "--revision", "1", token=user)
    assert {k: v["value"] for k, v in whole["keys"].items()} == {"ow.4": 11.5, "ow3": 12.1}
    one = live.twin_json("state", "show", "field", "-p", "head[ow3]", "--at", "2026-03-01T06:30:00Z", token=user)
    assert one["value"]["value"] == 12.1 and one["key"] == "well"
    history = live.twin_json("state", "history", "field", "head[ow3]", token=user)
    assert [v["value"] for v in history["items"]] == [12.1, 12.4]
    assert "head[ow3]" in live.twin("state", "show", "field", token=user)

    refused = live.twin("state", "report", "field", "head[ow/3]=1", token=user, expect=1)
    assert "reported.head[ow/3]" in refused and "letters, digits" in refused and "Traceback" not in refused
    refused = live.twin("state", "report", "field", "head=1", token=user, expect=1)
    assert "keyed by well" in refused
