"""NaN and infinities in a JSON body (Python's parser reads the tokens; JSON has none, and PostgreSQL's ``json``
refuses them mid-transaction, a 500): refused first on both stores, naming the field, except where they are
data (stream records), which take them as before."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import RIVER_REACH, Engine

GRAPH = '{"a": {"process_id": "add", "arguments": {"x": %s, "y": 1}, "result": true}}'


@pytest.fixture
def headers(engine: Engine) -> dict[str, str]:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    engine.as_role("uma", "user").create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    return {**engine.headers(engine.token("uma", "user")), "Content-Type": "application/json"}


@pytest.mark.parametrize(("method", "path", "body", "loc"), [
    ("POST", "/api/v1/twins", '{"app": "river-reach@0.1.0", "name": "wet", "parameters": '
                              '{"station": "RR-02", "area_km2": NaN}}', "parameters.area_km2"),
    ("PATCH", "/api/v1/twins/reach/state", '{"reported": {"level": {"value": Infinity}}}', "reported.level.value"),
    ("POST", "/openeo/1.2/result", '{"process": {"process_graph": {"load": {"process_id": "load_collection", '
                                   '"arguments": {"id": "rain", "spatial_extent": {"west": 7, "south": 46, "east": '
                                   '1e999, "north": 46.5}, "temporal_extent": null}, "result": true}}}}',
     "process.process_graph.load.arguments.spatial_extent.east"),  # a number too large for a float: infinity
    ("PUT", "/openeo/1.2/process_graphs/udp", '{"process_graph": ' + GRAPH % "-Infinity" + "}",
     "process_graph.a.arguments.x"),
    ("POST", "/openeo/1.2/jobs", '{"process": {"process_graph": ' + GRAPH % "NaN" + "}}",
     "process.process_graph.a.arguments.x"),
    ("POST", "/openeo/1.2/result", '{"process": {"process_graph": ' + GRAPH % "NaN" + "}}",
     "process.process_graph.a.arguments.x"),
])
def test_nan_and_infinity_are_refused_naming_the_field(engine: Engine, headers: dict[str, str], method: str,
                                                       path: str, body: str, loc: str) -> None:
    response = engine.http.request(method, path, content=body, headers=headers)
    assert response.status_code == 422, response.text[:300]
    answer: dict[str, Any] = response.json()
    assert loc in answer["message"] and "not a JSON number" in answer["message"], answer


def test_the_words_are_text_and_stream_records_keep_their_nan(engine: Engine, headers: dict[str, str]) -> None:
    named = engine.http.post("/api/v1/twins", headers=headers, content='{"app": "river-reach@0.1.0", '
                             '"name": "nan-infinity", "parameters": {"station": "RR-03"}, "description": "NaN"}')
    assert named.status_code == 201 and named.json()["description"] == "NaN"
    records = '[{"time": "2026-03-01T00:00:00Z", "station": "RR-01", "level": NaN, "rain": 1.0}]'
    appended = engine.http.post("/api/v1/twins/reach/streams/gauges/records", content=records, headers=headers)
    assert appended.status_code == 201, appended.text
    read = engine.http.get("/api/v1/twins/reach/streams/gauges/records", headers=headers).json()
    assert read["items"][0]["level"] is None or read["items"][0]["level"] != read["items"][0]["level"]
