"""The local twin's parameters (``data/parameters.json``) that ``twin app run`` and ``twin app test`` create it
with: every example app ships parameters its schema accepts, and a missing or unfit file is named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import REPO
from twinengine.appdev.local import PARAMETERS, twin_parameters
from twinengine.catalog.manifest import Manifest
from twinengine.catalog.validate import check_app_dir
from twinengine.cli.main import app as cli_app
from twinengine.errors import ValidationFailed

EXAMPLES = sorted(p for p in (REPO / "examples" / "apps").iterdir() if (p / "twinapp.yaml").is_file())


def _manifest(folder: Path) -> Manifest:
    manifest, problems = check_app_dir(folder)
    assert manifest is not None and not problems, problems
    return manifest


def _without_parameters(tmp_path: Path, example: str = "river-reach") -> Path:
    folder = tmp_path / example
    shutil.copytree(REPO / "examples" / "apps" / example, folder)
    (folder / PARAMETERS).unlink()
    return folder


@pytest.mark.parametrize("folder", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_app_runs_with_the_parameters_it_ships(folder: Path) -> None:
    twin_parameters(folder, _manifest(folder))


def test_a_missing_parameters_file_is_named_with_what_to_put_in_it(tmp_path: Path) -> None:
    folder = _without_parameters(tmp_path)
    with pytest.raises(ValidationFailed) as raised:
        twin_parameters(folder, _manifest(folder))
    assert [p.loc for p in raised.value.problems] == [PARAMETERS]
    assert "data/parameters.json is missing" in raised.value.message
    assert "add data/parameters.json" in str(raised.value.problems[0])
    assert '{"station": "..."}' in str(raised.value.problems[0])
    assert "parameters.station" in str(raised.value.problems[0])  # and the schema's own words


def test_unfit_parameters_are_located_in_the_file(tmp_path: Path) -> None:
    folder = _without_parameters(tmp_path)
    (folder / PARAMETERS).write_text(json.dumps({"station": "lower case"}), encoding="utf-8")
    with pytest.raises(ValidationFailed) as raised:
        twin_parameters(folder, _manifest(folder))
    assert [p.loc for p in raised.value.problems] == [PARAMETERS]
    assert raised.value.message.startswith("data/parameters.json: parameters.station: ")
    (folder / PARAMETERS).write_text("[1, 2", encoding="utf-8")
    with pytest.raises(ValidationFailed, match=r"data/parameters\.json: not JSON text"):
        twin_parameters(folder, _manifest(folder))


def test_twin_app_run_names_the_missing_file_before_starting_an_engine(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from twinengine.appdev.local import LocalEngine

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a local engine was started")

    monkeypatch.setattr(LocalEngine, "__enter__", refuse)
    result = CliRunner().invoke(cli_app, ["app", "run", str(_without_parameters(tmp_path)), "--port", "0"])
    assert result.exit_code == 1, result.output
    assert "ValidationFailed" in result.output and "add data/parameters.json" in result.output
    assert "Traceback" not in result.output
