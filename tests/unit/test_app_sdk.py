"""``twinengine.app``: one module for app code, light to import, the same objects as the older paths."""

from __future__ import annotations

import subprocess
import sys

import twinengine.app as sdk
from helpers import need_modules
from twinengine.app import FunctionContext, StateUpdate, app_process


def test_the_older_import_paths_name_the_same_objects() -> None:
    from twinengine.streams.functions import FunctionContext as OldContext
    from twinengine.workflows.apps import app_process as old_decorator

    assert OldContext is FunctionContext and old_decorator is app_process


def test_importing_it_loads_no_torch() -> None:
    code = "import sys, twinengine.app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_training_names_load_when_first_asked_for() -> None:
    need_modules("ml", "torch", hint="pip install -e '.[ml]'")
    from twinengine.ml.trainer import TrainingTask

    assert sdk.TrainingTask is TrainingTask and "TrainingTask" in sdk.__all__


def test_a_function_context_collects_effects_as_data() -> None:
    ctx = FunctionContext(twin_id="t", twin_name="reach", function="f", parameters={"a": 1})
    ctx.update_state(level=1.5, message="gauge")
    ctx.emit("alert", level=1.5)
    ctx.start_workflow("forecast", hours=6)
    assert ctx.updates == [StateUpdate(values={"level": 1.5}, timestamp=None, message="gauge")]
    assert ctx.events == [{"kind": "alert", "level": 1.5}]
    assert ctx.workflow_requests == [{"workflow": "forecast", "parameters": {"hours": 6}}]


def test_app_process_describes_the_function() -> None:
    @app_process(summary="Doubles")
    def double(x: float, times: int = 2) -> float:
        return x * times

    spec = double.__openeo_process__  # type: ignore[attr-defined]
    assert spec["id"] == "double" and [p["name"] for p in spec["parameters"]] == ["x", "times"]
    assert spec["parameters"][1]["optional"] is True and spec["returns"]["schema"] == {"type": "number"}
