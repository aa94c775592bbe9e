"""The manifest's ``relationships`` section: types of links an app's twins may have, checked with their path."""

from __future__ import annotations

from pathlib import Path

from helpers import RIVER_REACH, make_app
from twinengine.catalog.manifest import Cardinality, Manifest
from twinengine.catalog.validate import check_app_dir


def test_the_reference_app_declares_flows_into() -> None:
    manifest, problems = check_app_dir(RIVER_REACH)
    assert problems == [] and manifest is not None
    spec = manifest.relationships["flows_into"]
    assert spec.targets == ["river-reach"] and spec.acyclic and spec.cardinality is Cardinality.MANY_TO_ONE


def test_defaults_and_an_app_without_relationships(tmp_path: Path) -> None:
    manifest, problems = check_app_dir(make_app(tmp_path, manifest={"relationships": {
        "has_channel": {"targets": ["channel"]}}}))
    assert problems == [] and manifest is not None
    spec = manifest.relationships["has_channel"]
    assert spec.cardinality is Cardinality.MANY_TO_MANY and not spec.acyclic
    bare, _ = check_app_dir(make_app(tmp_path, name="bare"))
    assert bare is not None and bare.relationships == {}


def test_every_problem_is_named_by_its_path(tmp_path: Path) -> None:
    _, problems = check_app_dir(make_app(tmp_path, manifest={"relationships": {
        "flows into": {"targets": ["river-reach"]},
        "feeds": {"targets": ["River Reach"], "cardinality": "some", "acyclic": "maybe", "colour": "blue"},
        "empty": {"targets": []},
        "missing": {}}}))
    locs = {p.loc for p in problems}
    assert {"relationships.flows into.[key]", "relationships.feeds.targets[0]", "relationships.feeds.cardinality",
            "relationships.feeds.acyclic", "relationships.feeds.colour", "relationships.empty.targets",
            "relationships.missing.targets"} <= locs


def test_the_published_schema_describes_the_section() -> None:
    schema = Manifest.model_json_schema()
    assert "relationships" in schema["properties"]
    spec = schema["$defs"]["RelationshipSpec"]
    assert spec["required"] == ["targets"] and spec["additionalProperties"] is False
    assert set(schema["$defs"]["Cardinality"]["enum"]) == {"one_to_one", "one_to_many", "many_to_one",
                                                           "many_to_many"}
