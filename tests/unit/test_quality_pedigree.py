"""Pedigree: flag counts of the records an input used, the worst flag of a run's inputs, what a value keeps."""

from __future__ import annotations

import pyarrow as pa
import pytest

from twinengine.quality.pedigree import (
    ValueQuality,
    flag_counts,
    input_quality,
    quality_report,
    records_quality,
    report_from_provenance,
    value_quality,
    worst,
)
from twinengine.quality.stored import pack, unpack


def test_flag_counts_of_a_quality_column() -> None:
    codes = pa.chunked_array([pa.array([0, 1, 2, 2, None], type=pa.int8())])
    assert flag_counts(codes) == {"good": 2, "suspect": 1, "bad": 2}  # null: not judged bad
    names = pa.array(["good", "bad", "bad", None])  # as reads give them
    assert flag_counts(names) == {"good": 2, "suspect": 0, "bad": 2}
    assert flag_counts(None) is None


@pytest.mark.parametrize(("counts", "flag"), [
    (None, "unchecked"), ({"good": 3, "suspect": 0, "bad": 0}, "good"),
    ({"good": 3, "suspect": 1, "bad": 0}, "suspect"), ({"good": 0, "suspect": 1, "bad": 1}, "bad"),
    ({"good": 0, "suspect": 0, "bad": 0}, "good"),
])
def test_worst(counts: dict[str, int] | None, flag: str) -> None:
    assert worst(counts) == flag


def test_a_run_is_as_good_as_its_worst_checked_input() -> None:
    inputs = [{"collection": "rain", "version": "abc"},  # a file collection: no checks
              {"collection": "stream:tw-1/gauges", "version": "40", "quality": {"good": 38, "suspect": 2, "bad": 0}},
              {"collection": "stream:tw-1/gauges", "version": "40", "quality": {"good": 38, "suspect": 2, "bad": 0}}]
    report = input_quality(inputs)
    assert report["flag"] == "suspect"
    assert report["inputs"] == [  # each input once; an input read twice is not counted twice
        {"collection": "rain", "version": "abc", "records": None, "flag": "unchecked"},
        {"collection": "stream:tw-1/gauges", "version": "40", "records": {"good": 38, "suspect": 2, "bad": 0},
         "flag": "suspect"}]
    assert value_quality(report, "run-1") == {"flag": "suspect", "run": "run-1", "inputs": ["stream:tw-1/gauges"]}
    assert input_quality([{"collection": "rain"}])["flag"] == "good"  # nothing checked: nothing to report
    assert value_quality(input_quality([{"collection": "rain"}]), "run-2") is None


def test_the_report_of_a_run_from_its_provenance() -> None:
    document = {"entity": {
        "twin:collection/stream:tw-1/gauges/40": {
            "prov:type": {"$": "twin:Dataset", "type": "prov:QUALIFIED_NAME"}, "twin:collection": "stream:tw-1/gauges",
            "twin:version": "40", "twin:quality": "bad", "twin:goodRecords": 39, "twin:suspectRecords": 0,
            "twin:badRecords": 1},
        "twin:collection/rain/abc": {"prov:type": {"$": "twin:Dataset", "type": "prov:QUALIFIED_NAME"},
                                     "twin:collection": "rain", "twin:version": "abc"},
        "twin:graph/x": {"prov:type": {"$": "twin:ProcessGraph", "type": "prov:QUALIFIED_NAME"}}}}
    report = report_from_provenance("run:r1", document)
    assert report.flag == "bad" and report.subject == "run:r1"
    assert [(i.collection, i.flag, i.records) for i in report.inputs] == [
        ("stream:tw-1/gauges", "bad", {"good": 39, "suspect": 0, "bad": 1}), ("rain", "unchecked", None)]
    assert quality_report("model:x/m/1", []).flag == "good"


def test_a_value_keeps_its_quality_beside_its_uncertainty() -> None:
    quality = {"flag": "bad", "run": "run-1", "inputs": ["stream:tw-1/gauges"]}
    stored = pack(2.0, None, quality)
    assert stored == {"value": 2.0, "uncertainty": None, "quality": quality}
    assert unpack(stored) == (2.0, None, quality)
    both = pack(2.0, {"std": 0.1}, quality)
    assert unpack(both) == (2.0, {"std": 0.1}, quality)
    looks_alike = {"value": 1, "uncertainty": 2, "quality": 3}  # an object value with the same keys
    assert unpack(pack(looks_alike)) == (looks_alike, None, None)
    assert pack(2.0) == 2.0 and unpack(2.0) == (2.0, None, None)


def test_a_functions_call_is_as_good_as_its_worst_record() -> None:
    good = [{"_quality": "good"}, {"_quality": None}]  # a stream without checks reads as good
    assert records_quality(good, function="f", stream="stream:tw-1/g") is None
    found = records_quality([*good, {"_quality": "suspect"}, {"_quality": "bad"}], function="f",
                            stream="stream:tw-1/g")
    assert found == {"flag": "bad", "run": None, "inputs": ["stream:tw-1/g"], "function": "f",
                     "records": {"good": 2, "suspect": 1, "bad": 1}}
    shown = ValueQuality.model_validate(found)  # what reads give back
    assert shown.model_dump() == found
    assert "function" not in ValueQuality(flag="bad", run="run-1").model_dump()  # a run's stays as it was
