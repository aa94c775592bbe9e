"""Every standard process the engine offers answers the openEO processes specification's tests and examples.

Cases come from the specification (2.0.0-rc.2, vendored with its licence in tests/data/openeo-processes) and
from the ``examples`` of the specs ``/processes`` serves; each runs as the one-node graph the official test
suite sends, through the engine's validation and evaluator. Null propagation, booleans, empty arrays, mixed
types, dates, NaN and infinities are all in there. Cases the specification contradicts itself on, and the
labeled-array cases (labeled arrays exist only inside callbacks over cubes; JSON cannot carry them), are
listed below with the reason and skipped with it.
"""

from __future__ import annotations

import math
import warnings

import pytest

from openeo_spec import Case, example_cases, execute, expected, has_unencodable, same, spec_cases
from twinengine.errors import ProcessParameterInvalid
from twinengine.workflows.processes import build_registry
from twinengine.workflows.standard import official_specs

REGISTRY = build_registry()
OFFERED = {e.id for e in REGISTRY.list(include_apps=False)}

# The specification contradicts itself (test data against its own schema or parameter defaults).
ERRATA = {
    "array_append-test0": "expects [1] for appending 0 to an empty array",
    "array_element-test3": "asks for label 'BO2' (letter O) and expects the value of 'B02'",
    "array_find-test6": "expects index 1 for the first element of a labeled array",
    "array_filter-test0": "passes `process`; the spec's parameter is `condition`",
    "array_filter-test1": "passes `process`; the spec's parameter is `condition`",
    "array_filter-test2": "passes `process`; the spec's parameter is `condition`",
    "array_filter-test3": "passes `process`; the spec's parameter is `condition`",
    "array_filter-test4": "passes `process`; the spec's parameter is `condition`",
    "array_filter-test5": "passes `process`; the spec's parameter is `condition`",
    "array_filter-test6": "passes `process`; the spec's parameter is `condition`",
    "array_apply-test8": "calls the process `mulitply` (typo)",
    "array_modify-test3": "expects a removal with the default length, which the spec sets to 0 (test2 expects 0)",
    "array_modify-example3": "expects a removal with the default length, which the spec sets to 0",
    "count-test4": "a condition without `process_graph` reading the undeclared parameter `element`",
    "count-test5": "a condition without `process_graph` reading the undeclared parameter `element`",
    "count-example4": "a condition without `process_graph` reading the undeclared parameter `element`",
    "count-example5": "a condition without `process_graph` reading the undeclared parameter `element`",
    "all-example8": "the example answers null where the test (all-test8) answers true for the same arguments",
    "any-example8": "the example answers null where the test (any-test8) answers false for the same arguments",
    "lte-test15": "expects Infinity <= Infinity to be false; IEEE 754 (which the spec cites) says true",
    "product-test10": "expects NaN for -Infinity * Infinity; IEEE 754 gives -Infinity",
    "create_data_cube-test0": "an empty cube: the engine's has no dimension and one (NaN) value, not zero values",
    "normalized_difference-test3": "passes null where the schema allows only numbers (rejected upfront, 400)",
}
# Out of the schema's minimum/maximum, where the process's description says the answer is NaN (arccos,
# arcsin, ln, log): accepted and answered NaN, as the spec's tests expect (they run as every other case).
OUT_OF_RANGE = {"arccos-test5", "arccos-test6", "arccos-test8", "arccos-test9", "arcsin-test5", "arcsin-test6",
                "arcsin-test8", "arcsin-test9", "ln-test5", "ln-test7", "log-test0", "log-test14"}
LABELED = "labeled arrays (only inside callbacks over cubes): "
LIBRARY = {
    "array_apply-test5": LABELED + "the library passes no label to the callback",
    "array_apply-test6": LABELED + "the library passes no index to the callback",
    "array_apply-test7": LABELED + "the library answers a plain array",
    "array_append-test9": LABELED + "the library answers a plain array",
    "array_element-test10": LABELED + "the library fails on a missing label with return_nodata",
    "array_find_label-test4": LABELED + "the library answers 999999 for a missing label",
    "array_interpolate_linear-test5": LABELED + "the library fails on labeled input",
    "array_interpolate_linear-test6": LABELED + "the library fails on labeled input",
    "array_create_labeled-test3": LABELED + "labels become one coordinate type (1 becomes '1')",
    **{f"aggregate_temporal_period-test{i}": "the library labels periods by their first timestamp, not with the "
       "spec's period names ('2020-06-01-00', '2022-49')" for i in range(14)},
}


def _cases() -> list[pytest.param]:
    params = []
    for case in spec_cases() + example_cases(REGISTRY):
        if case.process_id not in OFFERED or any(r not in OFFERED for r in case.required):
            continue
        if has_unencodable(case.arguments) or not (case.has_returns or case.throws):
            continue  # datacube files the specification's tests refer to are not in its repository
        reason = ERRATA.get(case.id) or LIBRARY.get(case.id)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


CASES = _cases()


@pytest.mark.parametrize("case", CASES)
def test_specification_case(case: Case) -> None:
    from openeo_spec import encode

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns on NaN arithmetic the cases ask for
        try:
            got = execute(REGISTRY, case.process_id, encode(case.arguments))
        except Exception as exc:
            if case.throws:
                return
            pytest.fail(f"{case.process_id}{case.arguments}: {type(exc).__name__}: {exc}")
        assert case.has_returns, f"{case.process_id}{case.arguments} should fail, answered {got!r}"
        problem = same(expected(case.returns), got, case.delta)
        assert problem is None, f"{case.process_id}{case.arguments}: {problem}"


def test_every_offered_standard_process_is_covered() -> None:
    """Each standard process offered has specification cases here or a test against xarray elsewhere."""
    here = {p.values[0].process_id for p in CASES if not p.marks}
    elsewhere = {  # tests/unit/test_workflows_cube_processes.py, the e2e and integration tests
        "add_dimension", "aggregate_spatial", "aggregate_temporal", "anomaly", "apply", "apply_dimension",
        "apply_kernel", "apply_neighborhood", "climatological_normal", "dimension_labels", "drop_dimension",
        "filter_bands", "filter_bbox", "filter_labels", "filter_spatial", "filter_temporal", "inspect",
        "load_collection", "load_stac", "mask", "mask_polygon", "merge_cubes", "ndvi", "reduce_dimension",
        "reduce_spatial", "rename_dimension", "rename_labels", "resample_cube_spatial", "resample_cube_temporal",
        "resample_spatial", "run_udf", "save_result", "trim_cube", "aggregate_temporal_period",
        "array_filter", "create_data_cube",  # test_cases_the_specification_gets_wrong below
        "apply_polygon",  # tests/unit/test_workflows_apply_polygon.py
    }
    standard = OFFERED & set(official_specs())
    assert standard - here - elsewhere == set()


@pytest.mark.parametrize("process_id", ["add", "eq", "sum", "array_find", "quantiles", "text_concat", "mod"])
def test_defect_classes(process_id: str) -> None:
    """One check per class of defect the official suite found: booleans, null, empty arrays, mixed types,
    quantiles on plain arrays, array_find without a match, min/max on nothing, the default separator,
    mod by infinity."""
    checks = {
        "add": [({"x": None, "y": 1}, None)],
        "eq": [({"x": 1, "y": 1}, True), ({"x": 1, "y": "1"}, False),
               ({"x": "2018-01-01T00:00:00Z", "y": "2018-01-01T00:00:00+00:00"}, False)],
        "sum": [({"data": []}, None), ({"data": [1, None, 2]}, 3)],
        "array_find": [({"data": [1, 2], "value": 3}, None)],
        "quantiles": [({"data": [2, 4, 4, 4, 5, 5, 7, 9], "probabilities": [0.5]}, [4.5])],
        "text_concat": [({"data": [1, None, True]}, "1nulltrue")],
        "mod": [({"x": 2, "y": float("inf")}, 2), ({"x": 27, "y": -5}, -3)],
    }
    for arguments, want in checks[process_id]:
        got = execute(REGISTRY, process_id, arguments)
        assert got == want and type(got) is type(want), (process_id, arguments, got)
    for reducer in ("min", "max"):
        assert execute(REGISTRY, reducer, {"data": []}) is None
    assert execute(REGISTRY, "gt", {"x": 2, "y": 1}) is True


def test_cases_the_specification_gets_wrong() -> None:
    """What the spec's descriptions ask for where its test data contradicts them (see ERRATA)."""
    condition = {"process_graph": {"gt": {"process_id": "gt", "arguments": {"x": {"from_parameter": "x"}, "y": 2},
                                          "result": True}}}
    assert execute(REGISTRY, "array_filter", {"data": [1, 5, None, 3], "condition": condition}) == [5, 3]
    indexed = {"process_graph": {"lte": {"process_id": "lte", "arguments": {"x": {"from_parameter": "index"},
                                                                           "y": 1}, "result": True}}}
    assert execute(REGISTRY, "array_filter", {"data": [7, 8, 9], "condition": indexed}) == [7, 8]
    assert execute(REGISTRY, "array_append", {"data": [], "value": 0}) == [0]
    assert execute(REGISTRY, "array_modify", {"data": ["a", "c"], "values": ["b"], "index": 1}) == ["a", "b", "c"]
    assert execute(REGISTRY, "lte", {"x": float("inf"), "y": float("inf")}) is True
    cube = execute(REGISTRY, "create_data_cube", {})
    assert cube["type"] == "datacube" and cube["order"] == [] and cube["dimensions"] == {}
    with pytest.raises(ProcessParameterInvalid, match="'x' of 'normalized_difference'"):
        execute(REGISTRY, "normalized_difference", {"x": None, "y": 1})


def test_out_of_range_values_answer_nan_only_where_the_description_says_so() -> None:
    """arccos, arcsin, ln and log describe NaN for values outside their schema's range: every such case of the
    specification runs as a case above; elsewhere a range is still a refusal naming the argument."""
    ran = {p.values[0].id for p in CASES if not p.marks}
    assert ran >= OUT_OF_RANGE, OUT_OF_RANGE - ran
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert math.isnan(execute(REGISTRY, "arccos", {"x": 2}))
        assert math.isnan(execute(REGISTRY, "log", {"x": -1, "base": 10}))
    with pytest.raises(ProcessParameterInvalid, match="'index' of 'array_element'"):
        execute(REGISTRY, "array_element", {"data": [1, 2], "index": -1})
