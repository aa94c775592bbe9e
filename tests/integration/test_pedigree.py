"""Quality travels with lineage (SQLite and PostgreSQL): a value a run computed from a stream with bad records
says so in the twin's state, the run's provenance says so, and the run's quality report lists every input
with its flag counts; so does a model version's report (the records it was trained on)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from helpers import RIVER_REACH, Engine
from streams_fixtures import gauge
from twinengine.client import Client
from twinengine.errors import ProcessParameterInvalid
from workflow_data import write_collection

# load_stream and update_twin_state do not depend on each other: nodes without dependencies run in the order
# the graph lists them, so the stream is read before the state is written.
GRAPH = {"process_graph": {
    "load": {"process_id": "load_stream", "arguments": {"stream": "gauges"}},
    "state": {"process_id": "update_twin_state", "arguments": {"reported": {"forecast_peak_level": 1.4}}},
    "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "state"}, "format": "JSON"},
             "result": True}}}


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    return client


def _attrs(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    def plain(v: Any) -> Any:
        return v.get("$") if isinstance(v, dict) else v
    return [{k: plain(v) for k, v in e.items()} for e in (document.get(kind) or {}).values()]


def test_a_value_computed_from_bad_records_says_so(engine: Engine, uma: Client) -> None:
    records = [gauge(i) for i in range(8)]
    records[5]["level"] = 20.0  # out of the declared range 0..15: flagged bad
    uma.streams.append("reach", "gauges", records)
    run = uma.workflows.submit(GRAPH, twin="reach", sync=True)
    assert run.status == "finished", run.error
    twin_id = uma.get_twin("reach").id

    level = uma.get_state("reach").reported["forecast_peak_level"]
    assert level.value == 1.4 and level.quality is not None
    assert (level.quality.flag, level.quality.run, level.quality.inputs) == ("bad", run.id,
                                                                             [f"stream:{twin_id}/gauges"])
    assert uma.get_revision("reach", level.revision).changes[0].quality == level.quality
    assert uma.history("reach", "forecast_peak_level").items[-1].quality == level.quality

    headers = engine.headers(engine.token("uma", "user"))
    report = engine.http.get(f"/api/v1/runs/{run.id}/quality", headers=headers)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["subject"] == f"run:{run.id}" and body["flag"] == "bad"
    (stream,) = body["inputs"]
    assert stream["collection"] == f"stream:{twin_id}/gauges" and stream["flag"] == "bad"
    assert stream["records"]["bad"] >= 1 and sum(stream["records"].values()) == 8
    assert uma.workflows.quality(run.id).model_dump() == body  # the SDK

    provenance = uma.workflows.provenance(run.id)
    (activity,) = [a for a in _attrs(provenance, "activity") if a.get("twin:kind")]
    assert activity["twin:inputQuality"] == "bad"
    (used,) = [e for e in _attrs(provenance, "entity") if e.get("prov:type") == "twin:Dataset"]
    assert used["twin:quality"] == "bad" and int(used["twin:badRecords"]) >= 1  # PROV-JSON: typed literals
    revision = next(e for e in _attrs(provenance, "entity") if e.get("prov:type") == "twin:StateRevision")
    assert revision["twin:inputQuality"] == "bad"


def test_a_dataset_whose_source_keeps_no_version_is_named_alone(engine: Engine, uma: Client) -> None:
    """A collection its source gives no version is the dataset ``rain``, never ``rain/None``."""
    write_collection(engine.runtime.data_dir / "collections", "rain")
    graph = {"process_graph": {
        "load": {"process_id": "load_collection", "arguments": {"id": "rain", "spatial_extent": None,
                                                                "temporal_extent": None}},
        "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "load"}, "format": "netCDF"},
                 "result": True}}}
    run = uma.workflows.submit(graph, twin="reach", sync=True)
    assert run.status == "finished", run.error
    provenance = uma.workflows.provenance(run.id)
    datasets = {key: attrs for key, attrs in provenance["entity"].items() if "Dataset" in json.dumps(attrs)}
    (name,) = datasets
    assert name.startswith("twin:collection/rain") and "None" not in name, name
    assert "None" not in json.dumps(datasets)
    version = _attrs({"entity": datasets}, "entity")[0].get("twin:version")
    assert name == ("twin:collection/rain" if version is None else f"twin:collection/rain/{version}")


def test_a_run_that_leaves_bad_records_out_says_only_what_it_used(engine: Engine, uma: Client) -> None:
    records = [gauge(i) for i in range(8)]
    records[5]["level"] = 20.0  # flagged bad, and left out by load_stream's quality filter
    uma.streams.append("reach", "gauges", records)
    graph = json.loads(json.dumps(GRAPH))
    graph["process_graph"]["load"]["arguments"]["quality"] = "suspect"
    run = uma.workflows.submit(graph, twin="reach", sync=True)
    assert run.status == "finished", run.error
    assert uma.get_state("reach").reported["forecast_peak_level"].quality is None
    (stream,) = uma.workflows.quality(run.id).model_dump()["inputs"]
    assert stream["flag"] == "good" and stream["records"]["bad"] == 0 and sum(stream["records"].values()) == 7
    graph["process_graph"]["load"]["arguments"]["quality"] = "best"
    with pytest.raises(ProcessParameterInvalid, match="argument 'quality' of 'load_stream'"):
        uma.workflows.submit(graph, twin="reach", sync=True)


def test_a_value_from_good_inputs_carries_no_quality(engine: Engine, uma: Client) -> None:
    graph = {"process_graph": {"state": {"process_id": "update_twin_state", "arguments": {"reported": {
        "forecast_peak_level": 1.1}}, "result": True}}}
    run = uma.workflows.submit(graph, twin="reach", sync=True)
    assert run.status == "finished", run.error
    assert uma.get_state("reach").reported["forecast_peak_level"].quality is None
    report = engine.http.get(f"/api/v1/runs/{run.id}/quality", headers=engine.headers(engine.token("uma", "user")))
    assert report.json() == {"subject": f"run:{run.id}", "flag": "good", "inputs": []}


def test_the_quality_report_of_a_run_is_refused_to_others_and_before_it_ends(engine: Engine, uma: Client) -> None:
    run = uma.workflows.submit(GRAPH, twin="reach", sync=True)
    otto = engine.headers(engine.token("otto", "user"))
    assert engine.http.get(f"/api/v1/runs/{run.id}/quality", headers=otto).status_code in (403, 404)
    missing = engine.http.get("/api/v1/runs/no-such-run/quality", headers=engine.headers(engine.token("uma", "user")))
    assert missing.status_code == 404


def test_a_model_versions_report_lists_the_records_it_was_trained_on(engine: Engine, uma: Client) -> None:
    from twinengine.ml.models import TrainingRun

    twin_id = uma.get_twin("reach").id
    with engine.runtime.db.session() as session:  # what a training run records of its inputs (ml/engine.py)
        session.add(TrainingRun(id="tr-pedigree", twin_id=twin_id, model="runoff_correction", status="finished",
                                created_by="uma", model_version="3", inputs={
                                    "kind": "stream", "stream": "gauges", "start": 0, "end": 96, "records": 96,
                                    "quality": {"good": 90, "suspect": 6, "bad": 0}}))
    headers = engine.headers(engine.token("uma", "user"))
    report = engine.http.get("/api/v1/twins/reach/models/runoff_correction/versions/3/quality", headers=headers)
    assert report.status_code == 200, report.text
    assert report.json() == {"subject": "model:reach/runoff_correction/3", "flag": "suspect", "inputs": [
        {"collection": f"stream:{twin_id}/gauges", "version": "0-96", "flag": "suspect",
         "records": {"good": 90, "suspect": 6, "bad": 0}}]}
    assert uma.ml.quality("reach", "runoff_correction", "3").flag == "suspect"  # the SDK
    missing = engine.http.get("/api/v1/twins/reach/models/runoff_correction/versions/9/quality", headers=headers)
    assert missing.status_code == 404


def test_a_value_a_function_wrote_from_suspect_records_says_so(engine: Engine, uma: Client) -> None:
    from streams_fixtures import eventually

    records = [gauge(i, level=1.25) for i in range(7)]  # stuck: the 6th equal reading on is flagged suspect
    records.append(gauge(7, level=1.4))
    uma.streams.append("reach", "gauges", records[:6])
    twin_id = uma.get_twin("reach").id
    # the calls first, then the state: read the other way round, the sixth call could commit in between
    level = eventually(lambda: uma.streams.functions("reach")[0].calls == 6 and
                       (v := uma.get_state("reach").reported.get("level")) and v.revision and v)
    assert level.quality is not None
    assert (level.quality.flag, level.quality.function, level.quality.run) == ("suspect", "gauge_to_state", None)
    assert level.quality.inputs == [f"stream:{twin_id}/gauges"]
    assert level.quality.records == {"good": 0, "suspect": 1, "bad": 0}  # the call's one record
    # every value of that call says so; the earlier calls' values (good records) carry none
    history = uma.history("reach", "level").items
    assert [v.quality is not None for v in history] == [False] * 5 + [True]
    assert uma.get_state("reach").reported["discharge"].quality == level.quality
    uma.streams.append("reach", "gauges", records[6:])
    fresh = eventually(lambda: (v := uma.get_state("reach").reported["level"]).value == 1.4 and v)
    assert fresh.quality is None  # a good reading again
