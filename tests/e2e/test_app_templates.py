"""The developer's loop: ``twin app new`` from each template, ``twin app test`` without a server, publishing
as generated, broken apps reported with the file:line or field, and development versions published again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import Engine, need_sandbox
from ml_fixtures import need_torch
from twinengine.app.scaffold import TEMPLATES
from twinengine.cli.main import app as cli_app
from twinengine.errors import AppVersionConflict


def twin(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(cli_app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})
    assert result.exit_code == expect, f"exit {result.exit_code}: {result.output}"
    return result.output


def generate(tmp_path: Path, template: str, name: str | None = None) -> Path:
    folder = tmp_path / template
    twin("app", "new", name or f"my-{template}", "--template", template, "--dir", str(folder))
    return folder


def items(output: str) -> dict[str, dict[str, object]]:
    return {i["item"]: i for i in json.loads(output)["items"]}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])  # the local engine is SQLite; publishing on both stores is below
@pytest.mark.parametrize("template", list(TEMPLATES))
def test_each_template_passes_app_test_and_publishes_as_generated(template: str, tmp_path: Path,
                                                                  engine: Engine) -> None:
    need_sandbox()
    folder = generate(tmp_path, template)
    assert (folder / "README.md").is_file() and (folder / "tests").is_dir() and (folder / "data").is_dir()
    train = template == "generative-sampler"  # its sampling workflow needs a trained champion
    if train:
        need_torch()
    found = items(twin("--json", "app", "test", str(folder), *([] if train else ["--no-training"])))
    assert all(i["ok"] for i in found.values()), found
    ran = {name for name, i in found.items() if not i["skipped"]}
    assert {"manifest", "tests", "publish", "twin", "samples"} <= ran
    assert any(n.startswith("function ") for n in ran) and any(n.startswith("workflow ") for n in ran)
    if train:
        assert any(n.startswith("training ") for n in ran)
    published = engine.as_role("ada", "developer").publish_app(folder)
    assert published.created and published.app.version == "0.1.0-dev"


def test_new_refuses_bad_names_unknown_templates_and_non_empty_folders(tmp_path: Path) -> None:
    assert "NAME" in twin("app", "new", "My_App", "--template", "stream-classifier", "--dir",
                          str(tmp_path / "a"), expect=1)
    assert "--template" in twin("app", "new", "my-app", "--template", "nope", "--dir", str(tmp_path / "b"), expect=1)
    occupied = tmp_path / "c"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    assert "--dir" in twin("app", "new", "my-app", "--template", "stream-classifier", "--dir", str(occupied),
                           expect=1)
    assert sorted(p.name for p in occupied.iterdir()) == ["keep.txt"]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_wrong_manifest_field_names_the_field(tmp_path: Path) -> None:
    folder = generate(tmp_path, "stream-classifier")
    manifest = folder / "twinapp.yaml"
    text = manifest.read_text()
    manifest.write_text(text.replace("    enum: [quiet, normal, alarm]", "    enums: [quiet, normal, alarm]"))
    found = items(twin("--json", "app", "test", str(folder), expect=1))
    assert not found["manifest"]["ok"]
    assert found["manifest"]["where"] == "state.condition.enums"
    assert "publish" not in found  # nothing runs on a manifest that does not validate


def test_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    folder = generate(tmp_path, "stream-classifier", "vib")
    functions = folder / "vib" / "functions.py"
    lines = functions.read_text().splitlines()
    lines[13] = "    found = features([float(r['amplitude']) for r in records if ]"
    functions.write_text("\n".join(lines) + "\n")
    found = items(twin("--json", "app", "test", str(folder), "--no-tests", expect=1))
    assert found["manifest"]["where"] == "vib/functions.py:14"


@pytest.mark.slow
def test_a_function_that_raises_names_file_and_line(tmp_path: Path) -> None:
    need_sandbox()
    folder = generate(tmp_path, "stream-classifier", "vib")
    functions = folder / "vib" / "functions.py"
    source = functions.read_text()
    assert "    condition = label(" in source
    functions.write_text(source.replace("    condition = label(", "    raise KeyError('no such sensor')\n"
                                                                    "    condition = label(", 1))
    line = functions.read_text().splitlines().index("    raise KeyError('no such sensor')") + 1
    output = twin("--json", "app", "test", str(folder), "--no-tests", expect=1)
    failed = items(output)["function classify"]
    assert not failed["ok"] and "KeyError" in str(failed["error"])
    assert failed["where"] == f"vib/functions.py:{line}"
    assert items(output)["workflow summary"]["ok"]  # the other items still ran


def test_released_versions_stay_immutable_and_dev_versions_are_replaced(engine: Engine, tmp_path: Path) -> None:
    """On both stores: a -dev version takes new files (same row, new archive and manifest, its twins see
    them), a released one answers 409 as before."""
    dev = engine.as_role("ada", "developer")
    folder = generate(tmp_path, "stream-classifier", "vib")
    first = dev.publish_app(folder)
    assert first.created and first.app.version == "0.1.0-dev"
    user = engine.as_role("uma", "user")
    user.create_twin("vib@0.1.0-dev", "press-1", {})

    manifest = folder / "twinapp.yaml"
    manifest.write_text(manifest.read_text().replace("title: Vib", "title: Vibration watch"))
    (folder / "vib" / "classify.py").write_text((folder / "vib" / "classify.py").read_text() + "\n# tuned\n")
    again = dev.publish_app(folder)
    assert not again.created and again.replaced
    assert again.app.archive_sha256 != first.app.archive_sha256 and again.app.title == "Vibration watch"
    assert [v.archive_sha256 for v in dev.get_app("vib").versions] == [again.app.archive_sha256]
    with engine.runtime.db.session(readonly=True) as session:
        from sqlalchemy import func, select

        from twinengine.workflows.models import AppProcess

        assert session.scalar(select(func.count()).select_from(AppProcess)) == 1  # re-indexed, not doubled
    assert user.get_twin("press-1").app_version == "0.1.0-dev"
    assert not dev.publish_app(folder).replaced  # identical files: a no-op

    manifest.write_text(manifest.read_text().replace("version: 0.1.0-dev", "version: 0.1.0"))
    assert dev.publish_app(folder).created
    (folder / "vib" / "classify.py").write_text((folder / "vib" / "classify.py").read_text() + "# again\n")
    with pytest.raises(AppVersionConflict, match="-dev"):
        dev.publish_app(folder)
