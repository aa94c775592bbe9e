"""Reading the twin's state in a function (``twinengine.app``): ``ctx.reported``/``ctx.desired`` and the typed
``ctx.state``; a property the app does not declare is an error, never a silent ``None``; a batch's earlier
updates are seen by its later calls; and ``FunctionContext.for_tests`` gives an app's unit tests a context from
its manifest."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpers import make_app
from twinengine.app import FunctionContext, Properties, PropertyValue, TwinState, UnknownProperty

T0 = datetime(2026, 3, 1, tzinfo=UTC)
DECLARED = frozenset({"level", "alert_threshold", "head"})


def _engine_state() -> TwinState:
    value = PropertyValue(value=1.2, unit="m", timestamp=T0, revision=4)
    return TwinState(twin_id="t", revision=4, at=None, reported={"level": value, "head[ow3]": value},
                     desired={"alert_threshold": value.model_copy(update={"value": 1.8})}, delta={})


def test_values_are_read_by_name_and_an_undeclared_one_raises() -> None:
    ctx = FunctionContext(twin_id="t", twin_name="t", function="f", parameters={}, read_state=_engine_state,
                          properties=DECLARED)
    assert ctx.reported("level") == 1.2 and ctx.desired("alert_threshold") == 1.8
    assert ctx.desired("level") is None and ctx.desired("level", 0.5) == 0.5  # declared, never desired
    assert ctx.state.keyed("head") == {"ow3": ctx.state.reported["head[ow3]"]}
    assert isinstance(ctx.state.reported, Properties) and ctx.state.revision == 4
    for read in (lambda: ctx.reported("levle"), lambda: ctx.state.reported.get("levle"),
                 lambda: ctx.state.desired["levle"], lambda: "levle" in ctx.state.reported,
                 lambda: ctx.reported("heads[ow3]")):
        with pytest.raises(UnknownProperty, match="is not a state property of this app"):
            read()
    with pytest.raises(KeyError) as caught:
        ctx.state.reported["alert_threshold"]  # declared, not reported: a plain KeyError
    assert not isinstance(caught.value, UnknownProperty)
    again = pickle.loads(pickle.dumps(UnknownProperty("x", ["a", "b"])))
    assert str(again) == "'x' is not a state property of this app (its manifest declares: a, b)"


def test_a_batch_sees_its_own_earlier_updates_and_a_bare_context_an_empty_state() -> None:
    ctx = FunctionContext(twin_id="t", twin_name="t", function="f", parameters={}, read_state=_engine_state,
                          properties=DECLARED)
    ctx.update_state(timestamp=T0, level=2.5)
    assert ctx.reported("level") == 2.5 and isinstance(ctx.state.reported, Properties)
    with pytest.raises(UnknownProperty):
        ctx.state.reported.get("nope")  # the overlay keeps the check
    bare = FunctionContext(twin_id="t", twin_name="t", function="f", parameters={})
    assert bare.state.reported == {} and bare.reported("anything") is None  # no manifest known: no check
    bare.update_state(anything=1)
    assert bare.reported("anything") == 1


def test_a_test_context_comes_from_the_manifest(tmp_path: Path) -> None:
    folder = make_app(tmp_path, manifest={"state": {"level": {"type": "number", "unit": "m"},
                                                    "head": {"type": "number", "key": "well"}}})
    (folder / "tests").mkdir()
    ctx = FunctionContext.for_tests(folder / "tests" / "test_x.py", function="f", parameters={"station": "A1"},
                                    reported={"level": 1.5, "head[ow1]": 3.0})
    assert ctx.parameters == {"area_km2": 10, "station": "A1"}  # the schema's defaults, then the given ones
    assert ctx.reported("level") == 1.5 and ctx.state.reported["level"].unit == "m"
    assert ctx.state.keyed("head")["ow1"].value == 3.0
    with pytest.raises(UnknownProperty):
        ctx.reported("levle")
    with pytest.raises(UnknownProperty):
        ctx.update_state(levle=1.0)  # in tests, writes are checked too
    ctx.update_state(level=2.0)
    assert ctx.updates[0].values == {"level": 2.0}
    with pytest.raises(UnknownProperty):
        FunctionContext.for_tests(folder, desired={"alert": 1})
    with pytest.raises(FileNotFoundError, match=r"twinapp\.yaml"):
        FunctionContext.for_tests(tmp_path)
