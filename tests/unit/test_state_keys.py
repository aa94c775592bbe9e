"""Keyed state paths: ``head[ow3]`` resolves to the declared ``head`` and its key; bad keys, keys on unkeyed
properties and keyed properties without a key are refused with a reason; staleness is judged per key; the
CLI's PROPERTY=VALUE keeps a dotted key whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from twinengine.catalog.manifest import Manifest
from twinengine.catalog.state_keys import KeyProblem, base_of, resolve, split
from twinengine.cli._common import parse_assignments
from twinengine.twins.schemas import PropertyValue, TwinState
from twinengine.twins.state_quality import with_staleness

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MANIFEST = Manifest.model_validate({
    "manifest_version": 1, "name": "field", "version": "1.0.0", "title": "Field", "description": "A field.",
    "domain": "testing", "authors": [{"name": "Tester"}], "license": "MIT",
    "state": {"head": {"type": "number", "unit": "m", "key": "well"}, "level": {"type": "number"}}})


def test_paths_split_into_name_and_key() -> None:
    assert split("head[ow3]") == ("head", "ow3") and split("level") == ("level", None)
    assert split("head[a[b]]") == ("head", "a[b]")  # a bracket inside a key: the key is refused below
    assert split("head]x[") == ("head]x[", None)
    assert base_of("head[ow.3]") == "head" and base_of("level") == "level"


def test_resolve_accepts_declared_paths_only() -> None:
    assert resolve(MANIFEST, "head[ow3]")[1:] == (MANIFEST.state["head"], "ow3")
    assert resolve(MANIFEST, "head[S-1.2:a_b]")[2] == "S-1.2:a_b"
    assert resolve(MANIFEST, "head", every_key=True)[2] is None
    for path, says in {"head": "keyed by well", "level[x]": "has no key", "nope[x]": "not a state property",
                       "head[]": "1 to 58", "head[" + "x" * 59 + "]": "1 to 58", "head[-x]": "begins with",
                       "head[o w]": "letters, digits", "head[a/b]": "letters, digits",
                       "head[a[b]]": "letters, digits", "head]x[": "not a state property"}.items():
        with pytest.raises(KeyProblem, match=says):
            resolve(MANIFEST, path)
    assert resolve(MANIFEST, "head[" + "x" * 58 + "]")[2] == "x" * 58  # the stored name fills the column


def test_staleness_and_keyed_views_are_per_key() -> None:
    old = PropertyValue(value=1.0, unit="m", timestamp=T0, revision=1)
    fresh = PropertyValue(value=2.0, unit="m", timestamp=T0 + timedelta(hours=3), revision=2)
    marked, stale = with_staleness({"head[ow1]": old, "head[ow2]": fresh, "level": old},
                                   {"head": timedelta(hours=1)}, T0 + timedelta(hours=3, minutes=30))
    assert stale == ["head[ow1]"] and marked["head[ow2]"].stale is False and marked["level"].stale is None
    state = TwinState(twin_id="tw-1", revision=2, at=None, reported=marked, desired={}, delta={})
    assert list(state.keyed("head")) == ["ow1", "ow2"] and state.keyed("level") == {}


def test_assignments_keep_a_dotted_key_whole() -> None:
    assert parse_assignments(["head[ow.3]=12.1", "rating.a=18"], option="X") == {
        "head[ow.3]": 12.1, "rating": {"a": 18}}
    assert parse_assignments(["head[ow.3].std=0.3"], option="X") == {"head[ow.3]": {"std": 0.3}}
