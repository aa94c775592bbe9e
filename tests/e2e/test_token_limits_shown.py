"""What a token may do is visible: ``/api/v1/me`` and ``twin whoami`` show a scoped token's scopes and twins,
and an admin's ``twin token list`` shows every token's scopes."""

from __future__ import annotations

from pathlib import Path

from helpers import LiveEngine, make_app


def test_whoami_and_token_list_show_a_tokens_limits(live: LiveEngine, tmp_path: Path) -> None:
    live.client().publish_app(make_app(tmp_path, name="limits-app"))
    kim = live.twin("token", "create", "--name", "limits-kim", "--role", "user").strip().splitlines()[-1]
    live.twin("create", "limits-app", "--name", "limits-reach", "-p", "station=ST-01", token=kim)
    scoped = live.twin("token", "create", "--scope", "twins:read", "--scope", "streams:read", "--twin",
                       "limits-reach", "--expires", "7d", token=kim).strip().splitlines()[-1]

    me = live.twin_json("whoami", token=scoped)
    assert (me["identity"], me["token_scopes"], me["token_twins"]) == (
        "limits-kim", ["streams:read", "twins:read"], ["limits-reach"])
    whole = live.twin_json("whoami", token=kim)
    assert whole["token_scopes"] is None and whole["token_twins"] is None
    shown = live.twin("whoami", token=scoped)
    assert "streams:read, twins:read" in shown and "limits-reach" in shown
    assert "all of the role" in live.twin("whoami", token=kim)

    listed = live.twin_json("token", "list", "--identity", "limits-kim")
    row = next(t for t in listed if t["scopes"] is not None)
    assert (row["scopes"], row["twins"]) == (["streams:read", "twins:read"], ["limits-reach"])
    assert any(t["scopes"] is None for t in listed)
    table = live.twin("token", "list", "--identity", "limits-kim")
    assert "twins:read" in table and "all of the role" in table
