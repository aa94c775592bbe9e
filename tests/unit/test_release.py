"""One version, everywhere a provider looks for it: semantic, in the changelog, in `twin --version`, and in the
wheel's metadata (hatch reads it from the same file)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import semver
from typer.testing import CliRunner

from twinengine._version import __version__
from twinengine.cli.main import app as cli

REPO = Path(__file__).resolve().parents[2]


def test_the_version_is_semantic_and_has_its_changelog_section() -> None:
    assert semver.Version.is_valid(__version__), __version__
    changelog = (REPO / "CHANGELOG.md").read_text()
    sections = re.findall(r"^## \[([^\]]+)\]", changelog, flags=re.MULTILINE)
    assert sections[0] == "Unreleased" and __version__ in sections
    released = [s for s in sections if s != "Unreleased"]
    assert released == sorted(released, key=semver.Version.parse, reverse=True)  # newest first


def test_twin_version_prints_it() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"twinengine {__version__}"


def test_the_wheel_takes_its_version_from_the_same_file() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"]["path"] == "src/twinengine/_version.py"
