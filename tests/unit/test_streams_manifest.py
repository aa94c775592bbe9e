"""The ``functions`` section of the manifest: trigger parameters per kind and cross-checks with streams."""

from __future__ import annotations

from pathlib import Path

from helpers import RIVER_REACH, make_app
from twinengine.catalog.validate import check_app_dir

STREAMS = {"gauges": {"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"},
                                 "station": {"type": "string"}}}}


def test_reference_app_declares_its_function() -> None:
    manifest, problems = check_app_dir(RIVER_REACH)
    assert problems == [] and manifest is not None
    fn = manifest.functions["gauge_to_state"]
    assert fn.stream == "gauges" and fn.trigger.kind == "record"


def test_trigger_parameters_must_fit_the_kind(tmp_path: Path) -> None:
    folder = make_app(tmp_path, manifest={"streams": STREAMS, "functions": {
        "a": {"entrypoint": "test_app.fns:a", "stream": "gauges", "trigger": {"kind": "count"}},
        "b": {"entrypoint": "test_app.fns:b", "stream": "gauges", "trigger": {"kind": "record", "seconds": 5}},
        "c": {"entrypoint": "test_app.fns:c", "stream": "gauges", "trigger": {"kind": "hourly"}},
        "d": {"entrypoint": "not an entrypoint", "stream": "gauges"},
    }})
    manifest, problems = check_app_dir(folder)
    assert manifest is None
    found = {p.loc: p.msg for p in problems}
    assert "needs 'count'" in found["functions.a.trigger"]
    assert "'seconds' does not apply" in found["functions.b.trigger"]
    assert "functions.c.trigger.kind" in found
    assert "functions.d.entrypoint" in found


def test_functions_are_cross_checked(tmp_path: Path) -> None:
    folder = make_app(tmp_path, manifest={"streams": STREAMS, "functions": {
        "nostream": {"entrypoint": "test_app.fns:a", "stream": "weather"},
        "nomodel": {"entrypoint": "test_app.fns:a", "stream": "gauges", "model": "ghost"},
        "nofield": {"entrypoint": "test_app.fns:a", "stream": "gauges",
                    "trigger": {"kind": "condition", "field": "depth", "op": "gt", "value": 1}},
        "badvalue": {"entrypoint": "test_app.fns:a", "stream": "gauges",
                     "trigger": {"kind": "condition", "field": "level", "op": "gt", "value": "high"}},
        "badop": {"entrypoint": "test_app.fns:a", "stream": "gauges",
                  "trigger": {"kind": "condition", "field": "station", "op": "gt", "value": "RR"}},
        "nomodule": {"entrypoint": "test_app.missing:a", "stream": "gauges"},
        "outside": {"entrypoint": "os:system", "stream": "gauges"},
        "fine": {"entrypoint": "test_app.fns:a", "stream": "gauges",
                 "trigger": {"kind": "condition", "field": "station", "op": "eq", "value": "RR-01"}},
    }}, files={"test_app/fns.py": "def a(ctx, records):\n    pass\n"})
    manifest, problems = check_app_dir(folder)
    assert manifest is not None
    found = {p.loc: p.msg for p in problems}
    assert "not declared under streams" in found["functions.nostream.stream"]
    assert "not declared under models" in found["functions.nomodel.model"]
    assert "not a field" in found["functions.nofield.trigger.field"]
    assert "cannot be compared" in found["functions.badvalue.trigger.value"]
    assert "eq or ne" in found["functions.badop.trigger.op"]
    assert "not found" in found["functions.nomodule.entrypoint"]
    assert "not inside the app package" in found["functions.outside.entrypoint"]
    assert not any(loc.startswith("functions.fine") for loc in found)


def test_a_model_names_a_declared_stream_to_train_on(tmp_path: Path) -> None:
    folder = make_app(tmp_path, manifest={"streams": STREAMS, "models": {
        "good": {"entrypoint": "test_app.fns:a", "stream": "gauges"},
        "ghost": {"entrypoint": "test_app.fns:a", "stream": "weather"}}},
        files={"test_app/fns.py": "def a():\n    pass\n"})
    manifest, problems = check_app_dir(folder)
    assert manifest is not None and manifest.models["good"].stream == "gauges"
    assert [(p.loc, p.msg) for p in problems] == [("models.ghost.stream",
                                                   "stream 'weather' is not declared under streams")]
