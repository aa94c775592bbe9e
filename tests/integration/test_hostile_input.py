"""Hostile input on the public surfaces: each request here once answered 500, lost data silently or was stored
without bound. Each is now refused naming the field, line or limit (a 4xx, or a dead letter for a function's
effect), and nothing of it is stored; a WebSocket producer can keep its token out of the URL."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from starlette.websockets import WebSocketDisconnect

from helpers import MINIMAL_STATE, RIVER_REACH, Engine, make_app, need_sandbox
from streams_fixtures import eventually, gauge
from twinengine.client import Client

RECORDS = "/api/v1/twins/reach/streams/gauges/records"


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    return client


def _line(record: dict[str, object]) -> bytes:
    return json.dumps(record).encode() + b"\n"


def test_stream_records_must_be_unicode_text(engine: Engine, uma: Client) -> None:
    headers = {**engine.headers(engine.token("uma", "user")), "Content-Type": "application/x-ndjson"}
    good = _line(gauge(0))
    invalid = _line(gauge(1)).replace(b'"RR-01"', b'"RR\xc3\x28"')  # not UTF-8: once stored, every read failed
    lone = _line(gauge(1)).replace(b'"RR-01"', b'"RR\\ud83d"')  # an escaped surrogate with no pair: once a 500
    raw_surrogate = _line(gauge(1)).replace(b'"RR-01"', b'"RR\xed\xa0\xbd"')  # the same as raw bytes
    for body, line in ((good + invalid, 2), (good + lone, 2), (good + good + raw_surrogate, 3)):
        r = engine.http.post(RECORDS, content=body, headers=headers)
        assert r.status_code == 400, r.text
        assert f"line {line}" in r.json()["message"], r.text
    r = engine.http.post(RECORDS, content=b"[" + lone.strip() + b"]",
                         headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["details"][0]["loc"].endswith("station"), r.text
    strings = pa.array([b"RR\xc3\x28"], type=pa.binary()).view(pa.string())  # Arrow IPC keeps bytes as sent
    table = pa.table({"time": pa.array([gauge(0)["time"]]).cast(pa.timestamp("us", tz="UTC")), "station": strings,
                      "level": [1.0], "rain": [0.0]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    r = engine.http.post(RECORDS, content=sink.getvalue().to_pybytes(),
                         headers={**headers, "Content-Type": "application/vnd.apache.arrow.stream"})
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == "columns.station", r.text
    page = engine.http.get(RECORDS, headers=headers)
    assert page.status_code == 200 and page.json()["end_offset"] == 0  # nothing was stored


def test_a_token_lifetime_beyond_any_date_is_refused(engine: Engine) -> None:
    headers = engine.headers(engine.admin_token)
    for expires in ("99999999d", "9" * 30 + "y", "1001y"):
        r = engine.http.post("/api/v1/tokens", json={"name": "uma", "role": "user", "expires_in": expires},
                             headers=headers)
        assert r.status_code == 422 and r.json()["details"][0]["loc"] == "expires_in", r.text
        assert "1000y" in r.json()["message"]
    r = engine.http.post("/api/v1/tokens", json={"name": "uma", "role": "user", "expires_in": "1000y"},
                         headers=headers)
    assert r.status_code == 201 and r.json()["expires_at"].startswith("30"), r.text


def test_an_endpoint_quota_beyond_64_bits_is_refused(engine: Engine, tmp_path: Path) -> None:
    provider = engine.as_role("pat", "provider")
    provider.lake.add_endpoint("site-b", "file", str(tmp_path / "site-b"))
    headers = {"Authorization": provider._auth["Authorization"]}
    for method, path, body in (("PATCH", "/api/v1/lake/endpoints/site-b", {"quota_bytes": 2**80}),
                               ("POST", "/api/v1/lake/endpoints", {"name": "site-c", "protocol": "file",
                                                                   "location": str(tmp_path / "c"),
                                                                   "quota_bytes": 2**63})):
        r = engine.http.request(method, path, json=body, headers=headers)
        assert r.status_code == 422 and "quota_bytes" in r.json()["details"][0]["loc"], r.text
    r = engine.http.patch("/api/v1/lake/endpoints/site-b", json={"quota_bytes": 2**63 - 1}, headers=headers)
    assert r.status_code == 200 and r.json()["quota_bytes"] == 2**63 - 1, r.text


def test_openeo_arithmetic_beyond_any_number_is_a_400_naming_the_process(engine: Engine) -> None:
    headers = engine.headers(engine.token("uma", "user"))
    for process_id, arguments in (("power", {"base": 10, "p": 1_000_000}), ("power", {"base": 10.0, "p": 400}),
                                  ("multiply", {"x": 10**300, "y": 10**300}), ("product", {"data": [10**300] * 3})):
        graph = {"process": {"process_graph": {
            "n": {"process_id": process_id, "arguments": arguments, "result": True}}}}
        r = engine.http.post("/openeo/1.2/result", json=graph, headers=headers)
        assert r.status_code == 400, (process_id, arguments, r.text[:300])
        assert f"({process_id})" in r.json()["message"] and "64-bit float" in r.json()["message"], r.text[:300]
    exact = {"process": {"process_graph": {"n": {"process_id": "power", "arguments": {"base": 2, "p": 62},
                                                 "result": True}}}}
    assert engine.http.post("/openeo/1.2/result", json=exact, headers=headers).json() == 2**62


def test_state_values_the_declared_type_cannot_hold_are_refused(engine: Engine, tmp_path: Path) -> None:
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="counts-app", manifest={
        "state": {**MINIMAL_STATE, "distance": {"type": "integer", "unit": "m"}}}))
    client = engine.as_role("uma", "user")
    client.create_twin("counts-app@1.0.0", "counts", {"station": "RR-01"})
    headers = engine.headers(engine.token("uma", "user"))
    path = "/api/v1/twins/counts/state"
    huge = int("9" * 4000)  # the store kept null for it
    for reported, loc, words in (
            ({"count": {"value": huge}}, "reported.count.value", "64-bit integer"),
            ({"count": {"value": 2**70}}, "reported.count.value", "64-bit integer"),  # kept as 1.1805916207174113e+21
            ({"count": {"value": 1e300}}, "reported.count.value", "64-bit integer"),
            ({"level": {"value": huge}}, "reported.level.value", "64-bit float"),  # math.isfinite raised: a 500
            ({"config": {"value": {"deep": [1, 2**64]}}}, "reported.config.value.deep[1]", "64-bit integer"),
            ({"distance": {"value": 10**16, "unit": "km"}}, "reported.distance.value", "64-bit integer"),
            ({"level": {"value": 1e308, "unit": "km"}}, "reported.level.value", "64-bit float")):
        r = engine.http.patch(path, content=json.dumps({"reported": reported}), headers={
            **headers, "Content-Type": "application/json"})
        assert r.status_code == 422, (reported if len(str(reported)) < 100 else loc, r.text[:300])
        assert r.json()["details"][0]["loc"] == loc and words in r.json()["details"][0]["msg"], r.text[:300]
    assert client.get_twin("counts").head_revision == 0  # nothing was written
    r = engine.http.patch(path, json={"reported": {
        "count": {"value": 2**63 - 1}, "config": {"value": {"n": -(2**63)}}}}, headers=headers)
    assert r.status_code == 200, r.text
    state = engine.http.get(path, headers=headers).json()
    assert state["reported"]["count"]["value"] == 2**63 - 1 and state["reported"]["config"]["value"] == {"n": -(2**63)}


def test_a_function_effect_over_the_size_limit_is_dead_lettered(engine: Engine, tmp_path: Path) -> None:
    need_sandbox()
    code = '''
def probe(ctx, records):
    ctx.emit("probe", result="A" * (2 << 20))  # one event of 2 MiB: stored and served whole before

def small(ctx, records):
    ctx.emit("probe", result="ok")
'''
    functions = {"probe": {"entrypoint": "big_app.fns:probe", "stream": "readings", "retries": 0},
                 "small": {"entrypoint": "big_app.fns:small", "stream": "readings", "retries": 0}}
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="big-app", manifest={
        "streams": {"readings": {"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"}}}},
        "functions": functions}, files={"big_app/fns.py": code}))
    uma = engine.as_role("uma", "user")
    uma.create_twin("big-app@1.0.0", "big", {"station": "P1"})
    uma.streams.append("big", "readings", [{"time": "2026-03-01T00:00:00Z", "level": 1.0}])
    dead = eventually(lambda: uma.streams.dead_letters("big"), timeout=60)
    assert dead[0].function == "probe" and "limit of 1,048,576 bytes per effect (function_effect_max_bytes)" \
        in dead[0].error and "emit: an event of 2,0" in dead[0].error, dead[0].error
    events = eventually(lambda: uma.streams.events("big"), timeout=60)
    assert [e.function for e in events if e.kind == "probe"] == ["small"]


def test_a_websocket_producer_authenticates_without_a_token_in_the_url(engine: Engine, uma: Client) -> None:
    token = engine.token("uma", "user")
    with engine.http.websocket_connect("/api/v1/twins/reach/streams/gauges/ws",
                                       subprotocols=["bearer", token]) as ws:
        assert ws.accepted_subprotocol == "bearer"  # a browser closes a socket whose server picks none it offered
        ws.send_text(json.dumps({"records": [gauge(0)], "producer": "ws-1", "seq": 0}))
        assert ws.receive_json()["ack"]["count"] == 1
    with pytest.raises(WebSocketDisconnect) as refused, \
            engine.http.websocket_connect("/api/v1/twins/reach/streams/gauges/ws", subprotocols=["bearer", "nope"]):
        pass
    assert refused.value.code == 1008
    assert uma.streams.read("reach", "gauges").count == 1
