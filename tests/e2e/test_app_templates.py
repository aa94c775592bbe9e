"""The developer's loop: ``twin app new`` from each template, ``twin app test`` without a server, publishing
as generated, broken apps reported with the file:line or field, and development versions published again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import Engine, LiveEngine, need_sandbox
from ml_fixtures import need_torch
from twinengine.appdev.scaffold import DEFAULT_TEMPLATE, TEMPLATES
from twinengine.cli.main import app as cli_app
from twinengine.errors import AppVersionConflict, ValidationFailed

pytestmark = pytest.mark.every_store  # the store itself, its concurrency, or engines in several processes: both stores


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


@pytest.mark.slow
def test_a_first_app_needs_no_template_and_passes_app_test_as_written(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A newcomer's first two commands, in a folder of their own: ``twin app new first-app``, then
    ``twin app test`` inside it. The default template shows a stream, checks, a function, a model and a
    workflow, and every item passes (training too, where the ml extra is installed)."""
    need_sandbox()
    monkeypatch.chdir(tmp_path)
    written = twin("app", "new", "first-app")
    assert f"({DEFAULT_TEMPLATE})" in written and (tmp_path / "first-app" / "twinapp.yaml").is_file()
    monkeypatch.chdir(tmp_path / "first-app")
    found = items(twin("--json", "app", "test"))
    assert all(i["ok"] for i in found.values()), found
    ran = {name for name, i in found.items() if not i["skipped"]}
    assert {"manifest", "tests", "publish", "twin", "samples", "function observe", "workflow forecast"} <= ran
    manifest = (tmp_path / "first-app" / "twinapp.yaml").read_text()
    assert "quality:" in manifest and "models:" in manifest and "functions:" in manifest


def test_new_lists_every_template_in_its_help() -> None:
    shown = twin("app", "new", "--help")
    assert all(name in shown for name in TEMPLATES) and f"{DEFAULT_TEMPLATE} (default)" in shown


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


def test_validate_imports_the_app_and_names_an_entrypoint_the_engine_cannot_call(tmp_path: Path) -> None:
    """A typo in a function's entrypoint, a function on arrival that takes one argument and a model builder
    that needs one are each named by their manifest path; nothing was found by the static checks alone."""
    need_sandbox()
    folder = generate(tmp_path, "hybrid-forecast", "reach")
    manifest = folder / "twinapp.yaml"
    manifest.write_text(manifest.read_text().replace("reach.functions:observe", "reach.functions:injest"))
    assert json.loads(twin("--json", "app", "validate", "--no-import", str(folder)))["valid"]  # statically fine
    found = json.loads(twin("--json", "app", "validate", str(folder), expect=1))
    assert found["problems"] == [{"loc": "functions.observe.entrypoint",
                                  "msg": "module 'reach.functions' has no attribute 'injest' (it defines "
                                         "observe)"}]
    shown = twin("app", "validate", str(folder), expect=1)
    assert "functions.observe.entrypoint: module 'reach.functions' has no attribute 'injest'" in shown
    manifest.write_text(manifest.read_text().replace("reach.functions:injest", "reach.functions:observe"))
    functions, model = folder / "reach" / "functions.py", folder / "reach" / "model.py"
    functions.write_text(functions.read_text().replace("def observe(ctx: FunctionContext, records: "
                                                       "list[dict[str, Any]]) -> None:",
                                                       "def observe(ctx: FunctionContext) -> None:\n    records = []"))
    source = model.read_text()
    builder = next(line for line in source.splitlines() if line.startswith("def correction("))
    model.write_text(source.replace(builder, builder.replace("correction()", "correction(size)")))
    problems = {p["loc"]: p["msg"] for p in json.loads(twin("--json", "app", "validate", str(folder),
                                                            expect=1))["problems"]}
    assert set(problems) == {"functions.observe.entrypoint", "models.correction.entrypoint"}, problems
    assert "cannot be called as fn(ctx, records)" in problems["functions.observe.entrypoint"]
    assert "cannot be called as fn()" in problems["models.correction.entrypoint"]


@pytest.mark.parametrize("backend", ["sqlite"])  # the catalogue's check runs before anything is stored
def test_publish_and_app_test_refuse_a_mistyped_entrypoint(tmp_path: Path, engine: Engine) -> None:
    need_sandbox()
    folder = generate(tmp_path, "stream-classifier", "vib")
    manifest = folder / "twinapp.yaml"
    manifest.write_text(manifest.read_text().replace("vib.functions:classify", "vib.functions:clasify"))
    with pytest.raises(ValidationFailed) as refused:
        engine.as_role("ada", "developer").publish_app(folder)
    assert [(p.loc, p.msg) for p in refused.value.problems] == [
        ("functions.classify.entrypoint", "module 'vib.functions' has no attribute 'clasify'; did you mean "
                                          "'classify'?")]
    found = items(twin("--json", "app", "test", str(folder), "--no-tests", expect=1))
    assert not found["publish"]["ok"] and found["publish"]["where"] == "functions.classify.entrypoint"
    assert "has no attribute 'clasify'" in str(found["publish"]["error"])


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


def test_publishing_a_changed_dev_version_says_it_was_replaced(live: LiveEngine, tmp_path: Path) -> None:
    """The CLI says what the engine did: a -dev version published again with other files is replaced, and the
    new checksum is shown (not "already published with identical content")."""
    need_sandbox()
    with live.client() as admin:
        dev = admin.create_token("ada", "developer").token
    folder = generate(tmp_path, "stream-classifier", "vib")
    first = live.twin_json("app", "publish", str(folder), token=dev)
    assert first["created"]
    classify = folder / "vib" / "classify.py"
    classify.write_text(classify.read_text() + "\n# tuned\n")
    again = live.twin_json("app", "publish", str(folder), token=dev)
    assert again["replaced"] and again["app"]["archive_sha256"] != first["app"]["archive_sha256"]
    classify.write_text(classify.read_text() + "# tuned again\n")
    shown = live.twin("app", "publish", str(folder), token=dev)
    with live.client(dev) as client:
        sha = client.get_app_version("vib", "0.1.0-dev").archive_sha256
    assert "replaced the development version" in shown and sha in shown and "identical" not in shown
    assert "already published with identical content" in live.twin("app", "publish", str(folder), token=dev)
