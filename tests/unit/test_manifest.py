"""The twinapp.yaml manifest: the reference app is valid, and every problem is reported with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import RIVER_REACH, laughs, make_app
from twinengine.catalog.manifest import Manifest
from twinengine.catalog.validate import check_app_dir, load_manifest


def locs(problems: list) -> list[str]:
    return [p.loc for p in problems]


def test_reference_app_is_valid() -> None:
    manifest, problems = check_app_dir(RIVER_REACH)
    assert problems == []
    assert manifest is not None and manifest.ref == "river-reach@0.1.0"
    assert manifest.state["discharge"].unit == "m3 s-1"
    assert manifest.streams["gauges"].fields["level"].unit == "m"


def test_every_problem_is_reported_with_its_path(tmp_path: Path) -> None:
    folder = make_app(tmp_path, manifest={
        "version": "1.0",
        "streams": {"gauges": {"fields": {"time": {"type": "timestamp"},
                                          "level": {"type": "float", "unit": "metres-ish"}}}},
        "state": {"flag": {"type": "boolean", "unit": "m"}},
        "colour": "blue",
    })
    manifest, problems = check_app_dir(folder)
    assert manifest is None
    found = locs(problems)
    assert "version" in found
    assert "streams.gauges.fields.level.unit" in found
    assert "state.flag" in found
    assert "colour" in found
    unit_msg = next(p.msg for p in problems if p.loc == "streams.gauges.fields.level.unit")
    assert "metres-ish" in unit_msg


def test_cross_references_and_files_are_checked(tmp_path: Path) -> None:
    folder = make_app(tmp_path, manifest={
        "workflows": {"forecast": {"process_graph": "workflows/forecast.json"},
                      "broken": {"process_graph": "workflows/broken.json"},
                      "escape": {"process_graph": "../outside.json"}},
        "triggers": [{"name": "hourly", "kind": "cron", "workflow": "nowcast", "schedule": "0 * * * *"}],
        "models": {"corrector": {"entrypoint": "test_app.model:build"},
                   "elsewhere": {"entrypoint": "numpy:array"}},
    }, files={"workflows/broken.json": '{"a": {"no_process_id": 1}}', "test_app/bad.py": "def f(:\n"})
    manifest, problems = check_app_dir(folder)
    assert manifest is not None  # the manifest itself parses; the folder is what is wrong
    found = {p.loc: p.msg for p in problems}
    assert "not declared" in found["triggers[0].workflow"]
    assert "not found" in found["workflows.forecast.process_graph"]
    assert "process graph" in found["workflows.broken.process_graph"]
    assert "leaves the app folder" in found["workflows.escape.process_graph"]
    assert "not found" in found["models.corrector.entrypoint"]
    assert "not inside the app package" in found["models.elsewhere.entrypoint"]
    assert found["test_app/bad.py"].startswith("line 1")


def test_extra_keys_of_later_sections_are_kept(tmp_path: Path) -> None:
    folder = make_app(tmp_path, manifest={
        "workflows": {"forecast": {"process_graph": "pg.json", "timeout_s": 60}},
        "outputs": {"forecast": {"kind": "dataset", "collection": "forecasts"}},
    }, files={"pg.json": '{"process_graph": {"n1": {"process_id": "add", "arguments": {"x": 1, "y": 2}, '
                         '"result": true}}}'})
    manifest, problems = check_app_dir(folder)
    assert problems == []
    assert manifest is not None
    dumped = manifest.model_dump(mode="json")
    assert dumped["workflows"]["forecast"]["timeout_s"] == 60
    assert dumped["outputs"]["forecast"]["collection"] == "forecasts"


def test_missing_package_and_yaml_errors(tmp_path: Path) -> None:
    folder = make_app(tmp_path, manifest={"package": "nowhere"})
    _, problems = check_app_dir(folder)
    assert locs(problems) == ["package"]
    _, problems = load_manifest("name: x\n  bad: [indent\n")
    assert problems[0].loc == "twinapp.yaml" and "line" in problems[0].msg
    _, problems = load_manifest("- just\n- a list\n")
    assert "mapping" in problems[0].msg


@pytest.mark.parametrize(("schema", "expected"), [
    ({"type": "object", "properties": {"x": {"type": "nonsense"}}}, "not a valid JSON Schema"),
    ({"type": "array"}, "must describe an object"),
])
def test_parameters_must_be_an_object_json_schema(tmp_path: Path, schema: dict, expected: str) -> None:
    _, problems = check_app_dir(make_app(tmp_path, manifest={"parameters": schema}))
    assert [p.loc for p in problems] == ["parameters"]
    assert expected in problems[0].msg


def test_stream_time_field_must_be_a_timestamp(tmp_path: Path) -> None:
    _, problems = check_app_dir(make_app(tmp_path, manifest={
        "streams": {"s": {"time_field": "t", "fields": {"t": {"type": "float"}}}}}))
    assert problems[0].loc == "streams.s" and "timestamp" in problems[0].msg


def test_published_json_schema_describes_the_manifest() -> None:
    schema = Manifest.model_json_schema()
    assert {"name", "version", "parameters", "streams", "state", "models", "workflows", "triggers",
            "outputs"} <= set(schema["properties"])
    assert set(schema["required"]) >= {"name", "version", "title", "domain", "authors", "license"}


@pytest.mark.parametrize("depth", [7, 9])
def test_aliases_that_expand_are_refused_with_their_line(tmp_path: Path, depth: int) -> None:
    folder = make_app(tmp_path)
    manifest = folder / "twinapp.yaml"
    manifest.write_text(manifest.read_text() + laughs(depth))
    assert len(laughs(depth)) < 600
    parsed, problems = check_app_dir(folder)
    assert parsed is None and len(problems) == 1
    assert problems[0].loc == "twinapp.yaml" and "max_manifest_bytes" in problems[0].msg
    first_bomb_line = manifest.read_text().splitlines().index("outputs:") + 1
    line = int(problems[0].msg.split("line ", 1)[1].split(",", 1)[0])
    assert first_bomb_line < line <= first_bomb_line + 3 + depth  # the alias that crossed the limit


def test_a_few_aliases_are_fine_and_the_size_limit_is_a_setting(tmp_path: Path) -> None:
    folder = make_app(tmp_path)
    manifest = folder / "twinapp.yaml"
    manifest.write_text(manifest.read_text() + laughs(2))
    parsed, problems = check_app_dir(folder)
    assert problems == [] and parsed is not None
    assert parsed.outputs["bomb"].model_dump()["lb"] == [["lol"] * 9] * 9
    _, problems = check_app_dir(folder, max_manifest_bytes=200)
    assert "at most 200" in problems[0].msg  # the text itself is larger
    limit = len(manifest.read_text()) + 700  # room for the aliases, not for what the model adds
    _, problems = check_app_dir(folder, max_manifest_bytes=limit)
    assert f"once parsed; a manifest may have at most {limit}" in problems[0].msg
    manifest.write_text(manifest.read_text() + "    lc: [*b, *b, *b]\n")
    _, problems = check_app_dir(folder, max_manifest_bytes=limit)
    assert "alias *b" in problems[0].msg and "line" in problems[0].msg


def test_recursive_aliases_are_refused(tmp_path: Path) -> None:
    _, problems = load_manifest("name: x\noutputs:\n  o: &o {kind: dataset, again: [*o]}\n")
    assert problems[0].loc == "twinapp.yaml" and "line 3" in problems[0].msg
