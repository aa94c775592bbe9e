"""A workflow output carries its uncertainty (SQLite and PostgreSQL): update_twin_state writes a value with it
to a property that declares it; a malformed one fails the run naming it (the STAC item of the run's results
is checked in test_lake_seams.py, where results are kept in the lake)."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import RIVER_REACH, Engine
from twinengine.client import Client
from twinengine.errors import TwinEngineError
from twinengine.quality.uncertainty import Uncertainty


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    return client


def _graph(reported: dict[str, Any]) -> dict[str, Any]:
    return {"process_graph": {
        "state": {"process_id": "update_twin_state", "arguments": {"reported": reported}},
        "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "state"}, "format": "JSON"},
                 "result": True}}}


def test_a_workflow_writes_a_value_with_its_uncertainty(uma: Client) -> None:
    peak = {"value": 2.1, "uncertainty": {"std": 0.3, "quantiles": {"0.1": 1.8, "0.9": 2.5}}}
    run = uma.workflows.submit(_graph({"forecast_peak_level": peak, "level": 1.2}), twin="reach", sync=True)
    assert run.status == "finished", run.error
    value = uma.get_state("reach").reported["forecast_peak_level"]
    assert value.value == 2.1 and value.uncertainty == Uncertainty(std=0.3, quantiles={"0.1": 1.8, "0.9": 2.5})
    assert run.value == 1  # the revision


def test_a_malformed_uncertainty_from_a_workflow_fails_the_run_naming_it(uma: Client) -> None:
    bad = {"value": 2.1, "uncertainty": {"members": [1.0, "x"]}}
    try:
        run = uma.workflows.submit(_graph({"forecast_peak_level": bad}), twin="reach", sync=True)
        status, message = run.status, (run.error or {}).get("message", "")
    except TwinEngineError as exc:  # a sync run that failed may answer as an error
        status, message = "error", str(exc)
    assert status == "error" and "reported.forecast_peak_level.uncertainty.members[1]" in message
    assert uma.get_twin("reach").head_revision == 0
