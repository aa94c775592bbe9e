"""docs/configuration.md is what the settings object says: a setting added, renamed or re-described without
``make docs-config`` fails here."""

from __future__ import annotations

from pathlib import Path

from twinengine.config import Settings
from twinengine.settings_reference import render

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_page_is_written_from_the_settings() -> None:
    assert PAGE.read_text() == render(), "docs/configuration.md is out of date: run `make docs-config`"


def test_every_setting_has_a_row_with_its_variable_and_meaning() -> None:
    page = render()
    for name, field in Settings.model_fields.items():
        assert f"| `{name}` | `TWIN_" in page
        assert field.description, f"the setting {name} has no description for docs/configuration.md"
