"""``twin group``, ``twin create --group``, ``twin grant --group``, ``twin token create --scope`` and
``twin token rotate-keys`` against a live engine."""

from __future__ import annotations

from pathlib import Path

import jwt

from helpers import LiveEngine, make_app


def _token(live: LiveEngine, name: str, role: str = "user") -> str:
    return live.twin("token", "create", "--name", name, "--role", role).strip().splitlines()[-1]


def test_groups_own_twins_and_receive_grants_from_the_cli(live: LiveEngine, tmp_path: Path) -> None:
    live.client().publish_app(make_app(tmp_path, name="cli-grp-app"))
    gina, hugo, ivan = (_token(live, n) for n in ("cli-gina", "cli-hugo", "cli-ivan"))
    assert "created group cli-team" in live.twin("group", "create", "cli-team", "--description", "a team")
    live.twin("group", "add", "cli-team", "cli-gina", "cli-hugo")
    shown = live.twin_json("group", "show", "cli-team")
    assert {m["identity"] for m in shown["memberships"]} == {"cli-gina", "cli-hugo"}
    assert [g["name"] for g in live.twin_json("group", "list", token=gina)] == ["cli-team"]
    made = live.twin_json("create", "cli-grp-app", "--name", "cli-team-reach", "-p", "station=ST-01",
                          "--group", "cli-team", token=gina)
    assert made["owner_group"] == "cli-team"
    listed = live.twin("list", token=hugo)
    assert "cli-team-reach" in listed and "group:cli-team" in listed
    live.twin("create", "cli-grp-app", "--name", "cli-ivan-reach", "-p", "station=ST-01", token=ivan)
    live.twin("grant", "cli-ivan-reach", "--group", "cli-team", "operate", token=ivan)
    assert "group:cli-team" in live.twin("grants", "cli-ivan-reach", token=ivan)
    assert live.twin_json("show", "cli-ivan-reach", token=hugo)["access"] == "operate"
    live.twin("group", "remove", "cli-team", "cli-hugo")
    assert "may not twin.read" in live.twin("show", "cli-team-reach", token=hugo, expect=1)
    refused = live.twin("show", "cli-ivan-reach", token=hugo, expect=1)
    assert "may not twin.read" in refused
    assert "not in group" in live.twin("create", "cli-grp-app", "--name", "x-reach", "-p", "station=ST-01",
                                       "--group", "cli-team", token=ivan, expect=1)
    assert "neither read nor operate" in live.twin("grant", "cli-ivan-reach", "--group", "cli-team", "--permission",
                                                   "own", token=ivan, expect=1)


def test_scoped_tokens_and_key_rotation_from_the_cli(live: LiveEngine, tmp_path: Path) -> None:
    live.client().publish_app(make_app(tmp_path, name="cli-scope-app"))
    jane = _token(live, "cli-jane")
    live.twin("create", "cli-scope-app", "--name", "cli-demo-reach", "-p", "station=ST-01", token=jane)
    live.twin("create", "cli-scope-app", "--name", "cli-other-reach", "-p", "station=ST-01", token=jane)
    scoped = live.twin("token", "create", "--scope", "twins:read", "--twin", "cli-demo-reach", "--expires", "7d",
                       token=jane).strip().splitlines()[-1]
    assert live.twin_json("show", "cli-demo-reach", token=scoped)["name"] == "cli-demo-reach"
    assert "limited to twins cli-demo-reach" in live.twin("show", "cli-other-reach", token=scoped, expect=1)
    assert "do not allow twin.operate" in live.twin("state", "report", "cli-demo-reach", "level=1",
                                                    token=scoped, expect=1)
    mine = live.twin_json("token", "list", "--mine", token=jane)
    row = next(t for t in mine if t["scopes"] == ["twins:read"])
    assert row["twins"] == ["cli-demo-reach"]
    assert "--scope" in live.twin("token", "create", "--twin", "cli-demo-reach", token=jane, expect=1)
    live.twin("token", "revoke", row["jti"], token=jane)
    assert "revoked" in live.twin("show", "cli-demo-reach", token=scoped, expect=1)
    # rotation (admins): the next key becomes current
    before = live.client().access.jwks()["keys"]
    assert "may not token.keys.rotate" in live.twin("token", "rotate-keys", token=jane, expect=1)
    rotated = live.twin_json("token", "rotate-keys")
    current = next(k["kid"] for k in rotated if k["state"] == "current")
    assert current == before[1]["kid"]
    fresh = _token(live, "cli-kate")
    assert jwt.get_unverified_header(fresh)["kid"] == current
    assert live.twin_json("list", token=jane)["total"] == 2  # jane's token, of the retired key, has an expiry
