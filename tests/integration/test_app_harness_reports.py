"""What ``twin app test`` says of a failure: a version the app's gate rejects fails the training item with the
rule, the value and the threshold; a workflow that ``predict``s with the model says why it has no champion (the
gate, or training skipped); a state write the app's schema refuses names the record and the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import MINIMAL_STATE, make_app, need_modules, need_sandbox
from ml_fixtures import LINE_STREAM, line_samples, ridge_task
from twinengine.appdev.harness import Item, check_app

TASK = ridge_task(max_mae=1e-9)
GRAPH = {"process_graph": {"p": {"process_id": "predict", "arguments": {
    "model": "ridge", "data": {"x": [[1.0, 0.0]]}}, "result": True}}}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    need_sandbox()
    need_modules("ml", "sklearn", "mlflow", hint="pip install -e '.[ml]'")
    app = make_app(tmp_path, name="gated", version="0.1.0", manifest={
        "parameters": {"type": "object", "properties": {}}, "streams": LINE_STREAM,
        "models": {"ridge": {"entrypoint": "gated.model:ridge", "framework": "sklearn"}},
        "workflows": {"forecast": {"process_graph": "forecast.json"}},
    }, files={"gated/model.py": TASK, "forecast.json": json.dumps(GRAPH)})
    (app / "data").mkdir(exist_ok=True)
    (app / "data" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in line_samples(60)))
    return app


def items(found: list[Item]) -> dict[str, Item]:
    return {item.name: item for item in found}


def test_a_rejected_gate_fails_training_with_the_rule_and_the_workflow_says_why(folder: Path) -> None:
    found = items(check_app(folder, run_tests=False, train=True))
    training = found["training ridge"]
    assert not training.ok and training.error is not None
    assert training.error.startswith("the gate rejected version 1: mae "), training.error
    assert "> max 1e-09" in training.error
    gate_line = next(i for i, line in enumerate(TASK.splitlines(), 1) if line.startswith("        gate="))
    assert training.where == f"gated/model.py:{gate_line}"
    workflow = found["workflow forecast"]
    assert not workflow.ok and workflow.error is not None
    assert "has no champion yet: the gate rejected version 1 of ridge (mae " in workflow.error, workflow.error


def test_without_training_a_workflow_that_predicts_says_training_was_skipped(folder: Path) -> None:
    workflow = items(check_app(folder, run_tests=False, train=False))["workflow forecast"]
    assert not workflow.ok and workflow.error is not None
    assert workflow.error.endswith("has no champion yet: training was skipped (--no-training)"), workflow.error


FUNCTIONS = """
def observe(ctx, records):
    (r,) = records
    ctx.update_state(level=str(r["level"]))
"""


def test_a_refused_state_write_names_the_record_and_the_line(tmp_path: Path) -> None:
    need_sandbox()
    streams = {"gauges": {"key": "station", "fields": {"time": {"type": "timestamp"}, "level": {"type": "float"},
                                                       "station": {"type": "string"}}}}
    app = make_app(tmp_path, name="writer", manifest={
        "parameters": {"type": "object", "properties": {}}, "streams": streams, "state": MINIMAL_STATE,
        "functions": {"observe": {"entrypoint": "writer.fns:observe", "stream": "gauges"}}},
        files={"writer/fns.py": FUNCTIONS})
    (app / "data").mkdir(exist_ok=True)
    (app / "data" / "gauges.jsonl").write_text(json.dumps({"time": "2026-03-01T00:00:00Z", "level": 1.5,
                                                           "station": "ow1"}) + "\n")
    failed = items(check_app(app, run_tests=False, train=False))["function observe"]
    assert not failed.ok and failed.error is not None
    assert failed.error.startswith("update_state: reported.level"), failed.error
    assert failed.error.endswith("; record at offset 0, key station=ow1"), failed.error
    line = next(n for n, text in enumerate(FUNCTIONS.splitlines(), 1) if "update_state" in text)
    assert failed.where == f"writer/fns.py:{line}"
