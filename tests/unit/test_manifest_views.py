"""The manifest's ``views``: dashboards of panels, every problem located at the panel that has it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from helpers import RIVER_REACH, make_app
from twinengine.catalog.validate import check_app_dir, check_manifest_data
from twinengine.cli.main import app as cli_app


def reach(views: dict[str, Any]) -> dict[str, Any]:
    data = yaml.safe_load((RIVER_REACH / "twinapp.yaml").read_text())
    data["views"] = views
    return data


def test_the_reference_app_declares_a_flood_view() -> None:
    manifest, problems = check_app_dir(RIVER_REACH)
    assert problems == [] and manifest is not None
    flood = manifest.views["flood"]
    assert [p.kind for p in flood.panels.values()] == ["timeseries", "timeseries", "map", "table", "form", "model"]
    level = flood.panels["level"]
    assert level.kind == "timeseries" and level.thresholds[0].property == "alert_threshold"
    assert level.forecast is not None and level.forecast.step.total_seconds() == 3600


def test_references_are_checked_and_named_by_panel() -> None:
    manifest, problems = check_manifest_data(reach({"ops": {"title": "Ops", "panels": {
        "levels": {"kind": "timeseries", "title": "L", "properties": ["level", "alert", "depth"],
                   "thresholds": [{"property": "station_name"}], "band": {"lower": "level", "upper": "nope"},
                   "forecast": {"workflow": "nowcast"}},
        "state": {"kind": "table", "title": "T", "properties": ["alert", "ghost"]},
        "run": {"kind": "form", "title": "F", "workflow": "nowcast"},
        "ml": {"kind": "model", "title": "M", "model": "unknown_model"}}}}))
    assert manifest is not None
    found = {p.loc: p.msg for p in problems}
    assert "a time series plots numbers" in found["views.ops.panels.levels.properties[1]"]
    assert "not declared" in found["views.ops.panels.levels.properties[2]"]
    assert "not declared" in found["views.ops.panels.levels.thresholds[0].property"]
    assert "not declared" in found["views.ops.panels.levels.band.upper"]
    assert "workflow 'nowcast'" in found["views.ops.panels.levels.forecast.workflow"]
    assert "'ghost'" in found["views.ops.panels.state.properties[1]"]
    assert "workflow 'nowcast'" in found["views.ops.panels.run.workflow"]
    assert "'unknown_model'" in found["views.ops.panels.ml.model"]
    assert len(found) == 8  # nothing else is wrong


def test_shapes_are_checked_by_the_model() -> None:
    manifest, problems = check_manifest_data(reach({"ops": {"title": "Ops", "panels": {
        "a": {"kind": "chart", "title": "?"},
        "b": {"kind": "timeseries", "title": "B", "properties": [], "thresholds": [{"value": 1, "property": "level"}]},
        "c": {"kind": "map", "title": "C", "collections": ["ok", "no spaces"], "colour": "red"}}}}))
    assert manifest is None
    where = [p.loc for p in problems]
    assert any(loc.startswith("views.ops.panels.a") for loc in where)
    assert any(loc.startswith("views.ops.panels.b") and "properties" in loc for loc in where)
    assert any("views.ops.panels.b" in p.loc and "either a value or a property" in p.msg for p in problems)
    assert any(loc.startswith("views.ops.panels.c") and "collections" in loc for loc in where)
    assert any(loc.startswith("views.ops.panels.c") and "colour" in loc for loc in where)


def test_form_parameters_must_be_parameters_of_the_workflow(tmp_path: Path) -> None:
    graph = ('{"parameters": [{"name": "alert_level", "schema": {"type": "number"}}], "process_graph": '
             '{"a": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": true}}}')
    folder = make_app(tmp_path, manifest={
        "workflows": {"forecast": {"process_graph": "workflows/forecast.json"}},
        "views": {"what_if": {"title": "What if", "panels": {"form": {
            "kind": "form", "title": "Run", "workflow": "forecast", "parameters": ["alert_level", "storage"]}}}},
    }, files={"workflows/forecast.json": graph})
    _, problems = check_app_dir(folder)
    assert [(p.loc, p.msg) for p in problems] == [
        ("views.what_if.panels.form.parameters[1]", "'storage' is not a parameter of workflow 'forecast'")]
    result = CliRunner().invoke(cli_app, ["app", "validate", str(folder)], env={"COLUMNS": "200"})
    assert result.exit_code == 1 and "views.what_if.panels.form.parameters[1]" in result.output


def test_a_form_is_a_what_if_only_when_it_says_so() -> None:
    manifest, _ = check_app_dir(RIVER_REACH)
    assert manifest is not None
    scenario = manifest.views["flood"].panels["scenario"]
    assert scenario.kind == "form" and scenario.what_if is True  # river-reach's what-if runs on a fork
    plain, problems = check_manifest_data(reach({"ops": {"title": "Ops", "panels": {
        "run": {"kind": "form", "title": "Run", "workflow": "forecast"}}}}))
    assert plain is not None and problems == []
    run = plain.views["ops"].panels["run"]
    assert run.kind == "form" and run.what_if is False
    bad, problems = check_manifest_data(reach({"ops": {"title": "Ops", "panels": {
        "run": {"kind": "form", "title": "Run", "workflow": "forecast", "what_if": "perhaps"}}}}))
    assert bad is None and any(p.loc.startswith("views.ops.panels.run") and p.loc.endswith("what_if") for p in problems)
