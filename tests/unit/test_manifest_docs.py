"""docs/manifest.md is what the manifest's model says: a field added, made required or re-described without
``make docs-manifest`` fails here."""

from __future__ import annotations

from pathlib import Path

from twinengine.catalog.reference import manifest_schema, render

PAGE = Path(__file__).resolve().parents[2] / "docs" / "manifest.md"


def test_the_page_is_written_from_the_manifest_model() -> None:
    assert PAGE.read_text() == render(), "docs/manifest.md is out of date: run `make docs-manifest`"


def test_every_field_of_every_model_has_a_row_saying_whether_it_is_required() -> None:
    page = render()
    schema = manifest_schema()
    for name, model in {"Manifest": schema, **schema["$defs"]}.items():
        if "properties" not in model:  # an enumeration: shown inline as its values
            continue
        assert f"\n## {name}\n" in page, name
        for field in model["properties"]:
            rows = [line for line in page.splitlines() if (line.startswith("| `") and f".{field}` |" in line)
                    or line.startswith(f"| `{field}` |")]
            assert rows, f"{name}.{field} has no row"
    assert "| `authors` | **yes** | list of [Author](#author) (at least 1 item) |" in page
    assert "| `description` | no | string (at most 20000 characters) | `\"\"` |" in page


def test_defaults_examples_and_datum_are_shown() -> None:
    page = render()
    assert "| `state.<name>.datum` | no | string (1 to 64 characters) | none | `\"EGM2008\"` |" in page
    assert "| `streams.<name>.time_field` | no | string (at most 64 characters) | `\"time\"` |" in page
    assert "| `functions.<name>.join.wait` | no | duration | `\"PT10S\"` |" in page
    assert "| `keywords` | no | list of string (at most 32 items) | `[]` |" in page  # a default_factory's value
