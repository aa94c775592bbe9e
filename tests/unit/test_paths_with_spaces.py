"""Commands the engine prints for a person to paste keep a folder with a space in it as one argument (a data
dir under "My Documents" or a clone in "twin engine")."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twinengine.bootstrap import announce_admin_token
from twinengine.cli.main import app as cli_app


def test_the_first_starts_hint_keeps_a_data_dir_with_a_space_as_one_argument(
        capsys: pytest.CaptureFixture[str]) -> None:
    announce_admin_token("tok", Path("/tmp/twin engine/data"))
    command = next(line for line in capsys.readouterr().err.splitlines() if "twin token create" in line)
    words = shlex.split(command.split("`")[1])
    assert words[words.index("--data-dir") + 1] == "/tmp/twin engine/data"


def test_twin_app_new_names_the_next_command_with_a_folder_with_a_space_as_one_argument(tmp_path: Path) -> None:
    folder = tmp_path / "my apps" / "first-app"
    made = CliRunner().invoke(cli_app, ["app", "new", "first-app", "--dir", str(folder)], env={"COLUMNS": "400"},
                              catch_exceptions=False)
    assert made.exit_code == 0, made.output
    words = shlex.split(made.output.split("next: ")[1])
    assert words[:3] == ["twin", "app", "test"] and words[3] == str(folder)
    assert (folder / "twinapp.yaml").is_file()
