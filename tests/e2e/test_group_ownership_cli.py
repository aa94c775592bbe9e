"""``twin group update --publish``, ``twin app publish --group``, ``twin lake dataset add --group``, ``twin lake
upload --group`` and ``twin group delete [--force]`` against a live engine."""

from __future__ import annotations

from pathlib import Path

from helpers import LiveEngine, make_app


def _token(live: LiveEngine, name: str, role: str = "user") -> str:
    return live.twin("token", "create", "--name", name, "--role", role).strip().splitlines()[-1]


def test_a_group_owns_apps_and_datasets_and_is_deleted_from_the_cli(live: LiveEngine, tmp_path: Path) -> None:
    olga, pete, quin = (_token(live, n) for n in ("cli-olga", "cli-pete", "cli-quin"))
    live.twin("lake", "endpoint", "add", "cli-disk", "--protocol", "file", "--location", str(tmp_path / "disk"))
    live.twin("group", "create", "cli-crew")
    live.twin("group", "add", "cli-crew", "cli-olga", "cli-pete")
    app = make_app(tmp_path, name="cli-crew-app")
    assert "may not app.publish" in live.twin("app", "publish", str(app), "--group", "cli-crew", token=olga, expect=1)
    assert "publishes its apps" in live.twin("group", "update", "cli-crew", "--publish")
    published = live.twin_json("app", "publish", str(app), "--group", "cli-crew", token=olga)
    assert published["app"]["owner_group"] == "cli-crew"

    made = live.twin_json("lake", "dataset", "add", "crew:levels", "--group", "cli-crew", token=olga)
    assert made["owner_group"] == "cli-crew"
    data = tmp_path / "levels.csv"
    data.write_text("t,level\n1,2\n")
    up = live.twin_json("lake", "upload", str(data), "crew:levels/a.csv", "-e", "cli-disk", "--dataset",
                        "crew:levels", token=olga)
    assert up["file"]["owner_group"] == "cli-crew"
    assert live.twin_json("lake", "show", "crew:levels", token=pete)["children"] == ["crew:levels/a.csv"]
    assert "no file, dataset or container" in live.twin("lake", "show", "crew:levels", token=quin, expect=1)

    refused = live.twin("group", "delete", "cli-crew", expect=1)
    assert "owns 3 thing(s)" in refused and "app cli-crew-app@1.0.0" in refused, refused
    done = live.twin("group", "delete", "cli-crew", "--force")
    assert "deleted group cli-crew (2 members)" in done and "dataset crew:levels" in done, done
    assert "no file, dataset or container" in live.twin("lake", "show", "crew:levels", token=pete, expect=1)
    assert [g["name"] for g in live.twin_json("group", "list")] == []
