"""The fleet filter grammar, tag and location checks, and cursors: no database needed."""

from __future__ import annotations

import pytest

from twinengine.errors import InvalidInput, ValidationFailed
from twinengine.twins import fleet, places
from twinengine.twins.fleet_filters import Condition, parse


@pytest.mark.parametrize(("text", "expected"), [
    ("level>2.5", Condition("reported", "level", ">", 2.5)),
    (" level >= -1e3 ", Condition("reported", "level", ">=", -1000.0)),
    ("desired.alert_threshold<=3", Condition("desired", "alert_threshold", "<=", 3.0)),
    ("alert=true", Condition("reported", "alert", "=", True)),
    ("mode!='auto run'", Condition("reported", "mode", "!=", "auto run")),
    ("mode=auto", Condition("reported", "mode", "=", "auto")),
    ("level>@desired.alert_threshold", Condition("reported", "level", ">", ref=("desired", "alert_threshold"))),
    ("level<@rain", Condition("reported", "level", "<", ref=("reported", "rain"))),
])
def test_state_conditions_parse(text: str, expected: Condition) -> None:
    assert parse(text, "state", state=True) == expected


def test_parameter_conditions_take_bare_words_and_no_references() -> None:
    assert parse("station=RR-01", "parameter", state=False) == Condition("", "station", "=", "RR-01")
    for text in ("station=@other", "reported.station=1"):
        with pytest.raises(InvalidInput) as caught:
            parse(text, "parameter", state=False)
        assert caught.value.details[0]["loc"] == "parameter"


@pytest.mark.parametrize("text", ["level", "level>>2", "level>", "2>level", "level>x y", "alert<true",
                                  "level>nan", "level>inf", "raw.level=1", "level>@", "x" * 300 + "=1"])
def test_bad_conditions_are_400_naming_the_parameter(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(text, "state", state=True)
    assert caught.value.status == 400 and caught.value.details[0]["loc"] == "state"


def test_filters_name_their_parameter() -> None:
    assert fleet.parse_filter(tags=["a"], bbox="0,0,1,1").bbox == (0.0, 0.0, 1.0, 1.0)
    for kwargs, loc in [({"tags": ["Not a tag"]}, "tag"), ({"bbox": "0,0,1"}, "bbox"), ({"bbox": "2,0,1,1"}, "bbox"),
                        ({"app": "Bad App"}, "app"), ({"state": ["level>"]}, "state")]:
        with pytest.raises(InvalidInput) as caught:
            fleet.parse_filter(**kwargs)
        assert caught.value.status == 400 and caught.value.details[0]["loc"] == loc


def test_tags_are_checked_sorted_and_unique() -> None:
    assert places.check_tags(["b", "a", "b"]) == ["a", "b"]
    with pytest.raises(ValidationFailed) as caught:
        places.check_tags(["ok", "NOT OK"])
    assert caught.value.problems[0].loc == "tags[1]"
    with pytest.raises(ValidationFailed):
        places.check_tags([f"t{i}" for i in range(places.MAX_TAGS + 1)])


def test_locations_are_valid_geojson_in_range_with_their_bbox() -> None:
    doc, bbox = places.check_location({"type": "Point", "coordinates": [8.2, 46.1]})
    assert bbox == (8.2, 46.1, 8.2, 46.1) and doc["type"] == "Point"
    square = {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 1], [0, 1], [0, 0]]]}
    assert places.check_location(square)[1] == (0.0, 0.0, 2.0, 1.0)
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    for doc, loc in [({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "location.type"),
                     (bowtie, "location.coordinates"), ({"type": "Point", "coordinates": [200, 0]},
                                                        "location.coordinates"),
                     ({"type": "Point", "coordinates": "here"}, "location.coordinates")]:
        with pytest.raises(ValidationFailed) as caught:
            places.check_location(doc)
        assert caught.value.problems[0].loc == loc


def test_the_exact_test_drops_shapes_that_only_share_the_bbox() -> None:
    ell = {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 2], [1.9, 2], [1.9, 0.1], [0, 0.1], [0, 0]]]}
    assert places.intersecting([ell, None], (0.5, 0.5, 1.5, 1.5)) == [False, False]
    assert places.intersecting([ell], (1.95, 1.0, 3, 1.5)) == [True]


def test_cursors_round_trip_and_refuse_garbage() -> None:
    assert fleet.decode_cursor(fleet.encode_cursor("reach-07")) == "reach-07"
    for bad in ("%%%", "", "@@"):
        with pytest.raises(InvalidInput):
            fleet.decode_cursor(bad)
