"""The ``twin`` CLI against a live engine: the README's tour, JSON output, and clean errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import RIVER_REACH, LiveEngine, make_app
from twinengine.cli.main import app as cli_app
from twinengine.errors import TokenInvalid


def test_the_tour(live: LiveEngine, tmp_path: Path) -> None:
    dev = live.twin_json("token", "create", "--name", "ada", "--role", "developer", "--expires", "1d")["token"]
    user = live.twin_json("token", "create", "--name", "uma", "--role", "user")["token"]

    out = live.twin("app", "publish", str(RIVER_REACH), token=dev)
    assert "published river-reach@0.1.0" in out
    assert "already published with identical content" in live.twin("app", "publish", str(RIVER_REACH), token=dev)
    assert "river-reach" in live.twin("app", "list", token=user)
    assert live.twin_json("app", "search", "flood", token=user)["total"] == 1
    assert "alert_threshold" in live.twin("app", "show", "river-reach@0.1.0", token=user)
    pulled = live.twin_json("app", "pull", "river-reach@0.1.0", "--to", str(tmp_path / "pulled"), token=user)
    assert (tmp_path / "pulled" / "twinapp.yaml").is_file() and len(pulled["sha256"]) == 64

    twin = live.twin_json("create", "river-reach@0.1.0", "--name", "reach", "--param", "station=RR-01",
                          "--param", "area_km2=95.5", token=user)
    assert twin["parameters"]["area_km2"] == 95.5 and twin["parameters"]["station"] == "RR-01"
    live.twin("state", "desire", "reach", "alert_threshold=1.8", "-m", "set alert", token=user)
    live.twin("state", "report", "reach", "level=120", "rain=0.4", "--unit", "level=cm",
              "--at", "2026-03-01T06:00:00Z", token=user)
    live.twin("state", "report", "reach", "level=2.1", "alert=true", "--at", "2026-03-01T07:00:00Z", token=user)
    state = live.twin_json("state", "show", "reach", token=user)
    assert state["revision"] == 3 and state["reported"]["level"]["value"] == 2.1
    assert live.twin_json("state", "show", "reach", "--revision", "2", token=user)["reported"]["level"]["value"] == 1.2
    at = live.twin_json("state", "show", "reach", "--at", "2026-03-01T06:30:00Z", token=user)
    assert at["reported"]["level"]["value"] == 1.2
    history = live.twin_json("state", "history", "reach", "level", token=user)
    assert [v["value"] for v in history["items"]] == [1.2, 2.1]
    assert {c["property"] for c in live.twin_json("state", "diff", "reach", "2", token=user)["changes"]} == {
        "level", "alert"}
    assert "set alert" in live.twin("state", "revisions", "reach", token=user)
    assert "pending" in live.twin("state", "show", "reach", token=user)  # desired 1.8 ≠ no reported threshold
    live.twin("state", "report", "reach", "forecast_peak_level=210", "--unit", "forecast_peak_level=cm",
              "--uncertainty", "forecast_peak_level.std=30",
              "--uncertainty", 'forecast_peak_level.quantiles={"0.05": 170, "0.95": 260}', token=user)
    shown = live.twin("state", "show", "reach", token=user)
    assert "±0.3" in shown and "q0.05=1.7 q0.95=2.6" in shown
    peak = live.twin_json("state", "history", "reach", "forecast_peak_level", token=user)["items"][0]
    assert peak["value"] == 2.1 and peak["uncertainty"]["quantiles"] == {"0.05": 1.7, "0.95": 2.6}
    refused = live.twin("state", "report", "reach", "forecast_peak_level=2", "--uncertainty",
                        "forecast_peak_level.std=-1", token=user, expect=1)
    assert "--uncertainty.forecast_peak_level.std" in refused
    refused = live.twin("state", "report", "reach", "level=2", "--uncertainty", "level.std=0.1", token=user,
                        expect=1)
    assert "reported.level.uncertainty.std" in refused and "declares no uncertainty" in refused

    fork = live.twin_json("fork", "reach", "--name", "reach-what-if", "--at", "2", "--param",
                          "runoff_coefficient=0.7", token=user)
    assert fork["origin"]["revision"] == 2 and fork["parameters"]["runoff_coefficient"] == 0.7
    assert "reach-what-if" in live.twin("list", token=user)
    assert "forked from reach at revision 2" in live.twin("show", "reach-what-if", token=user)

    live.twin("token", "create", "--name", "rita", "--role", "user")
    live.twin("grant", "reach", "rita", "--permission", "read", token=user)
    assert "rita" in live.twin("grants", "reach", token=user)
    live.twin("revoke", "reach", "rita", token=user)
    live.twin("delete", "reach-what-if", "--yes", token=user)

    audit = live.twin_json("audit", "--action", "twins-")
    assert {e["action"] for e in audit["items"]} >= {"twins-create", "twins-state_write", "twins-fork",
                                                      "twins-grants_put", "twins-grants_delete", "twins-delete"}
    assert {e["action"] for e in live.twin_json("audit", "--actor", "admin")["items"]} == {"tokens-create"}
    assert "tokens-create" in live.twin("audit", "--actor", "admin")


def test_errors_are_messages_not_tracebacks(live: LiveEngine, tmp_path: Path) -> None:
    user = live.twin_json("token", "create", "--name", "uma", "--role", "user")["token"]
    out = live.twin("create", "river-reach@0.1.0", "--name", "x", "--param", "station=RR-01", token=user, expect=1)
    assert "AppNotFound" in out and "Traceback" not in out
    out = live.twin("state", "show", "nowhere", token=user, expect=1)
    assert "TwinNotFound" in out
    out = live.twin("app", "publish", str(RIVER_REACH), token=user, expect=1)
    assert "PermissionDenied" in out
    assert "TokenInvalid" in live.twin("list", token="garbage", expect=1)
    out = live.twin("create", "x", "--name", "y", "--param", "novalue", token=user, expect=1)
    assert "--param[0]" in out
    out = CliRunner().invoke(cli_app, ["--url", "http://127.0.0.1:9", "--token", "t", "list"]).output
    assert "EngineUnavailable" in out and "cannot reach the engine" in out


def test_validate_reports_every_problem(live: LiveEngine, tmp_path: Path) -> None:
    bad = make_app(tmp_path, manifest={"version": "x.y", "state": {"v": {"type": "number", "unit": "furlongs-ish"}}})
    out = live.twin("app", "validate", str(bad), expect=1)
    assert "version:" in out and "state.v.unit:" in out
    assert "valid" in live.twin("app", "validate", str(RIVER_REACH))
    report = live.twin_json("app", "validate", str(RIVER_REACH))
    assert report == {"valid": True, "app": "river-reach@0.1.0", "problems": [], "warnings": []}
    out = live.twin("app", "publish", str(bad), expect=1)
    assert "not published" in out


def test_local_token_creation_and_schema(live: LiveEngine) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["--json", "token", "create", "--name", "ops", "--role", "provider",
                                     "--data-dir", str(live.settings.data_dir), "--expires", "never"])
    assert result.exit_code == 0, result.output
    token = __import__("json").loads(result.output)["token"]
    assert live.client(token).me().role.value == "provider"
    result = runner.invoke(cli_app, ["token", "create", "--name", "ops", "--role", "user", "--expires", "soon",
                                     "--data-dir", str(live.settings.data_dir)])
    assert result.exit_code == 1 and "--expires" in result.output
    schema = runner.invoke(cli_app, ["app", "schema"])
    assert schema.exit_code == 0 and '"streams"' in schema.output


@pytest.mark.parametrize("args", [[], ["app"], ["state"], ["token"], ["db"]])
def test_help_everywhere(args: list[str]) -> None:
    result = CliRunner().invoke(cli_app, [*args, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_bad_settings_are_a_clean_error(tmp_path: Path) -> None:
    (tmp_path / "twin.toml").write_text('colour = "red"\nport = "eighty"\n')
    result = CliRunner().invoke(cli_app, ["db", "current", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "settings.port" in result.output and "settings.colour" in result.output
    assert "Traceback" not in result.output


def test_tokens_are_listed_and_revoked_through_the_cli(live: LiveEngine) -> None:
    issued = live.twin_json("token", "create", "--name", "tess", "--role", "user", "--note", "field laptop")
    tess = issued["token"]
    live.twin("app", "list", token=tess)  # the token works
    listed = live.twin_json("token", "list", "--identity", "tess")
    assert [(t["identity"], t["note"], t["revoked_at"]) for t in listed] == [("tess", "field laptop", None)]
    jti = listed[0]["jti"]
    assert jti in live.twin("token", "list")
    refused = live.twin("token", "list", token=tess, expect=1)  # a user may not see the engine's tokens
    assert "PermissionDenied" in refused and "token.read" in refused, refused
    assert f"revoked token {jti} of tess" in live.twin("token", "revoke", jti)
    assert live.twin_json("token", "list", "--identity", "tess")[0]["revoked_at"] is not None
    gone = live.twin("app", "list", token=tess, expect=1)
    assert "revoked" in gone, gone
    unknown = live.twin("token", "revoke", "no-such-token", expect=1)
    assert "NotFound" in unknown and "no-such-token" in unknown, unknown


def test_db_upgrade_migrates_a_new_store_once(tmp_path: Path) -> None:
    def db(*args: str) -> str:
        result = CliRunner().invoke(cli_app, ["db", *args, "--data-dir", str(tmp_path)], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.output

    first = re.fullmatch(r"store at revision (\d{4}) \(a new store\)\n", db("upgrade"))
    assert first is not None
    assert db("upgrade") == f"store at revision {first.group(1)}\n"  # nothing to do the second time
    assert db("current") == f"current {first.group(1)}, head {first.group(1)}\n"


def test_identity_commands_disable_enable_and_delete(live: LiveEngine) -> None:
    user = live.twin_json("token", "create", "--name", "uma", "--role", "user")["token"]
    listed = {row["name"]: row for row in live.twin_json("identity", "list")}
    assert listed["uma"]["disabled"] is False and listed["uma"]["id"]
    assert "uma" in live.twin("identity", "list")
    assert "disabled identity uma" in live.twin("identity", "disable", "uma")
    with pytest.raises(TokenInvalid, match="disabled"):
        live.client(user).me()
    live.twin("identity", "enable", "uma")
    assert live.client(user).me().name == "uma"
    assert "twins" not in live.twin("identity", "delete", "uma", token=user, expect=1)  # admins only
    deleted = live.twin_json("identity", "delete", "uma", "--yes")
    assert deleted["tokens_deleted"] == 1 and deleted["id"] == listed["uma"]["id"]
    with pytest.raises(TokenInvalid):
        live.client(user).me()
    again = live.twin_json("token", "create", "--name", "uma", "--role", "user")["token"]
    assert live.client(again).me().name == "uma"
    with pytest.raises(TokenInvalid, match=r"deleted|not known"):  # the old token stays dead under the name
        live.client(user).me()
