"""Streams over HTTP on both store backends and both stream logs: validated ingest (JSON lines, JSON, Arrow
IPC), nothing half-appended, producer dedup, reads by offset and event time, live SSE, WebSocket."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pyarrow as pa
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from helpers import RIVER_REACH, Engine, admin_token
from streams_fixtures import T0, drop_streams, gauge, stream_backend, stream_settings  # noqa: F401
from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.errors import PermissionDenied, StreamNotFound, ValidationFailed
from twinengine.runtime import Runtime

PATH = "/api/v1/twins/reach/streams/gauges/records"


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, stream_backend: str) -> Settings:  # noqa: F811
    return stream_settings(tmp_path / "data", stream_backend, database_url)


@pytest.fixture
def engine(settings: Settings, drop_streams: list) -> Iterator[Engine]:  # noqa: F811
    runtime = Runtime.from_settings(settings)
    app = create_app(runtime=runtime)
    drop_streams.append(runtime)
    try:
        with TestClient(app) as http:
            yield Engine(runtime=runtime, app=app, http=http,
                         admin_token=admin_token(settings))
    finally:
        runtime.close()


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    return client


def lines(records: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def test_json_lines_are_appended_and_read_back_in_order(engine: Engine, uma: Client) -> None:
    headers = {**engine.headers(engine.token("uma", "user")), "Content-Type": "application/x-ndjson"}
    r = engine.http.post(PATH, content=lines([gauge(i) for i in range(5)]), headers=headers)
    assert r.status_code == 201, r.text
    assert r.json() == {"twin_id": r.json()["twin_id"], "stream": "gauges", "first_offset": 0, "count": 5,
                        "duplicates": 0, "next_offset": 5}
    r = engine.http.post(PATH, json=[gauge(i) for i in range(5, 8)],
                         headers=engine.headers(engine.token("uma", "user")))
    assert r.status_code == 201 and r.json()["first_offset"] == 5
    page = engine.http.get(PATH, headers=headers).json()
    assert page["count"] == 8 and page["end_offset"] == 8 and page["next_offset"] == 8
    assert [item["_offset"] for item in page["items"]] == list(range(8))
    assert page["items"][3]["level"] == gauge(3)["level"] and page["items"][3]["time"] == gauge(3)["time"]
    assert page["items"][0]["_arrival"].endswith("Z")
    tail = engine.http.get(PATH, params={"last": 2}, headers=headers).json()
    assert [item["_offset"] for item in tail["items"]] == [6, 7]


def test_bad_records_are_refused_whole_with_index_and_field(engine: Engine, uma: Client) -> None:
    headers = {**engine.headers(engine.token("uma", "user")), "Content-Type": "application/x-ndjson"}
    bad = [gauge(0), gauge(1) | {"level": "high"}, gauge(2) | {"colour": "red"}, {"station": "RR-01"}]
    r = engine.http.post(PATH, content=lines(bad), headers=headers)
    assert r.status_code == 422
    locs = {d["loc"] for d in r.json()["details"]}
    assert {"records[1].level", "records[2].colour", "records[3].time"} <= locs
    r = engine.http.post(PATH, content=b'{"time": "2026-03-01T00:00:00Z"}\n{"time": ', headers=headers)
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == "records[1]"
    r = engine.http.post(PATH, content=b"", headers=headers)
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == "records"
    deep = b"[" * 100_000 + b"]" * 100_000  # deeper than the parser recurses: a RecursionError was a 500
    r = engine.http.post(PATH, content=deep, headers=headers)
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == "records[0]", r.text[:200]
    for body in (deep, deep[:-100_000] + b'"\\u0000", NaN' + deep[-100_000:]):  # the edge's checks parse it too
        r = engine.http.post(PATH, content=body, headers={**headers, "Content-Type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["message"], r.text[:200]
    r = engine.http.post(PATH, content=b"x", headers={**headers, "Content-Type": "text/csv"})
    assert r.status_code == 400 and "Content-Type" in r.json()["message"]
    assert engine.http.get(PATH, headers=headers).json()["end_offset"] == 0  # nothing was half-appended


def test_arrow_ipc_batches_are_cast_and_checked(engine: Engine, uma: Client) -> None:
    headers = {**engine.headers(engine.token("uma", "user")), "Content-Type": "application/vnd.apache.arrow.stream"}
    table = pa.table({"time": pa.array([T0.replace(tzinfo=None)] * 3, type=pa.timestamp("ms")),
                      "station": ["RR-01"] * 3, "level": pa.array([1, 2, 3], type=pa.int32()),
                      "rain": pa.array([0, 0, 1], type=pa.int64())})
    r = engine.http.post(PATH, content=ipc(table), headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["count"] == 3
    bad = pa.table({"time": pa.array([T0, None], type=pa.timestamp("us", tz="UTC")), "level": ["a", "b"],
                    "extra": [1, 2]})
    r = engine.http.post(PATH, content=ipc(bad), headers=headers)
    assert r.status_code == 422
    assert {d["loc"] for d in r.json()["details"]} >= {"columns.extra", "columns.level", "records[1].time"}
    r = engine.http.post(PATH, content=b"not arrow", headers=headers)
    assert r.status_code == 400 and "Arrow" in r.json()["message"]
    arrow = engine.http.get(PATH, headers={**headers, "Accept": "application/vnd.apache.arrow.stream"})
    back = pa.ipc.open_stream(arrow.content).read_all()
    assert back.column("level").to_pylist() == [1.0, 2.0, 3.0] and back.column("rain").to_pylist() == [0, 0, 1.0]
    assert back.column("_offset").to_pylist() == [0, 1, 2]


def ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_producer_sequences_drop_duplicates(engine: Engine, uma: Client) -> None:
    headers = {**engine.headers(engine.token("uma", "user")), "Content-Type": "application/x-ndjson"}
    body = lines([gauge(i) for i in range(4)])
    first = engine.http.post(PATH, content=body, params={"producer": "g1", "seq": 10}, headers=headers).json()
    again = engine.http.post(PATH, content=body, params={"producer": "g1", "seq": 10}, headers=headers).json()
    overlap = engine.http.post(PATH, content=lines([gauge(i) for i in range(3, 6)]),
                               params={"producer": "g1", "seq": 13}, headers=headers).json()
    other = engine.http.post(PATH, content=body, params={"producer": "g2", "seq": 10}, headers=headers).json()
    assert (first["count"], first["duplicates"]) == (4, 0)
    assert (again["count"], again["duplicates"]) == (0, 4)
    assert (overlap["count"], overlap["duplicates"]) == (2, 1)
    assert other["count"] == 4 and other["first_offset"] == 6
    r = engine.http.post(PATH, content=body, params={"producer": "g1"}, headers=headers)
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == "seq"


def test_late_records_are_kept_with_event_and_arrival_time(engine: Engine, uma: Client) -> None:
    sdk = uma.streams
    sdk.append("reach", "gauges", [gauge(10), gauge(11)])
    sdk.append("reach", "gauges", [gauge(2)])  # late: its event time is before what came already
    page = sdk.read("reach", "gauges", since=T0, until=T0.replace(hour=1))
    assert [r["_offset"] for r in page.items] == [2]
    assert page.items[0]["_arrival"] > page.items[0]["time"]
    assert len(sdk.read("reach", "gauges").items) == 3


def test_access_and_unknown_streams(engine: Engine, uma: Client) -> None:
    with pytest.raises(StreamNotFound, match="gauges"):
        uma.streams.append("reach", "weather", [gauge(0)])
    with pytest.raises(ValidationFailed):
        uma.streams.append("reach", "gauges", [{"time": "yesterday"}])
    other = engine.as_role("olga", "user")
    with pytest.raises(PermissionDenied):
        other.streams.append("reach", "gauges", [gauge(0)])
    uma.grant("reach", "olga", "read")
    assert other.streams.read("reach", "gauges").count == 0
    with pytest.raises(PermissionDenied):
        other.streams.append("reach", "gauges", [gauge(0)])
    listed = uma.streams.list("reach")
    assert [s.name for s in listed] == ["gauges"] and listed[0].time_field == "time" and listed[0].key == "station"


def test_server_sent_events_follow_new_records(engine: Engine, uma: Client) -> None:
    uma.streams.append("reach", "gauges", [gauge(0), gauge(1)])
    headers = engine.headers(engine.token("uma", "user"))
    with engine.http.stream("GET", PATH.replace("records", "events"), params={"start": 1, "count": 3},
                            headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        uma.streams.append("reach", "gauges", [gauge(2), gauge(3)])
        text = "".join(response.iter_text())
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    ids = [line[4:] for line in text.splitlines() if line.startswith("id: ")]
    assert [e["_offset"] for e in events] == [1, 2, 3] and ids == ["1", "2", "3"]


@pytest.mark.every_store  # reaches code only PostgreSQL runs
def test_state_changes_arrive_as_server_sent_events(engine: Engine, uma: Client) -> None:
    uma.report("reach", level=1.0)
    with engine.http.stream("GET", "/api/v1/twins/reach/state/events", params={"after": 0, "count": 2},
                            headers=engine.headers(engine.token("uma", "user"))) as response:
        uma.report("reach", level=1.5)
        text = "".join(response.iter_text())
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert [e["revision"] for e in events] == [1, 2]
    assert events[1]["changes"][0]["value"] == 1.5


def test_websocket_producers_get_an_ack_per_batch(engine: Engine, uma: Client) -> None:
    token = engine.token("uma", "user")
    with engine.http.websocket_connect("/api/v1/twins/reach/streams/gauges/ws",
                                       headers=engine.headers(token)) as ws:
        ws.send_text(json.dumps({"records": [gauge(0), gauge(1)], "producer": "ws-1", "seq": 0}))
        assert ws.receive_json()["ack"]["count"] == 2
        ws.send_text(json.dumps({"records": [gauge(1)], "producer": "ws-1", "seq": 1}))
        assert ws.receive_json()["ack"]["duplicates"] == 1
        ws.send_text(json.dumps([gauge(2) | {"level": "x"}]))
        assert ws.receive_json()["error"]["details"][0]["loc"] == "records[0].level"
        ws.send_bytes(ipc(pa.table({"time": pa.array([T0], type=pa.timestamp("us", tz="UTC")), "station": ["x"],
                                    "rain": [0.0], "level": [1.0]})))
        assert ws.receive_json()["ack"]["first_offset"] == 2
    assert uma.streams.read("reach", "gauges").count == 3


def test_a_websocket_producer_stops_when_its_token_is_revoked(engine: Engine, uma: Client) -> None:
    """Authorised once at connect, a producer kept appending after its token was revoked; the token is
    checked again while the socket lasts (at most ``token_recheck`` after the revocation)."""
    token = engine.token("uma", "user")
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    with engine.http.websocket_connect("/api/v1/twins/reach/streams/gauges/ws",
                                       headers=engine.headers(token)) as ws:
        ws.send_text(json.dumps([gauge(0)]))
        assert ws.receive_json()["ack"]["count"] == 1
        engine.sdk(engine.admin_token).revoke_token(jti)
        time.sleep(engine.runtime.settings.token_recheck.total_seconds() + 0.2)
        ws.send_text(json.dumps([gauge(1)]))
        assert ws.receive_json()["error"]["code"] == "TokenInvalid"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008
    assert uma.streams.read("reach", "gauges").count == 1


def test_an_event_stream_ends_when_its_grant_is_withdrawn(engine: Engine, uma: Client) -> None:
    """A subscriber kept receiving records after the grant that let it in was withdrawn; the stream now ends
    with an ``error`` event (``idle`` bounds the test's wait if it did not)."""
    reader = engine.token("bob", "user")
    uma.grant("reach", "bob", "read")
    uma.streams.append("reach", "gauges", [gauge(0)])
    with engine.http.stream("GET", PATH.replace("records", "events"), params={"start": 0, "idle": 15},
                            headers=engine.headers(reader)) as response:
        kinds = []
        for line in response.iter_lines():
            if line.startswith("event: "):
                kinds.append(line[7:])
                if kinds == ["record"]:
                    uma.revoke_grant("reach", "bob")
    assert kinds == ["record", "error"]


def test_non_finite_floats_are_kept_not_nulled(engine: Engine, uma: Client) -> None:
    headers = {**engine.headers(engine.token("uma", "user")), "Content-Type": "application/x-ndjson"}
    body = b"".join(json.dumps(gauge(i, level=v)).encode() + b"\n"
                    for i, v in enumerate([float("nan"), float("inf"), float("-inf")]))
    assert b"NaN" in body and b"-Infinity" in body
    r = engine.http.post(PATH, content=body, headers=headers)
    assert r.status_code == 201, r.text
    r = engine.http.post(PATH, content=b"[" + body.strip().replace(b"\n", b",") + b"]",
                         headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    arrow = engine.http.get(PATH, headers={**headers, "Accept": "application/vnd.apache.arrow.stream"})
    levels = pa.ipc.open_stream(arrow.content).read_all().column("level").to_pylist()
    assert len(levels) == 6 and all(v is not None for v in levels)
    assert [str(v) for v in levels] == ["nan", "inf", "-inf"] * 2
    page = engine.http.get(PATH, headers=headers)
    assert [str(item["level"]) for item in json.loads(page.text)["items"]] == ["nan", "inf", "-inf"] * 2
    with engine.http.stream("GET", PATH.replace("records", "events"), params={"start": 0, "count": 3},
                            headers=headers) as response:
        text = "".join(response.iter_text())
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert [str(e["level"]) for e in events] == ["nan", "inf", "-inf"]


def test_event_times_in_query_parameters_are_iso_8601_never_bare_numbers(engine: Engine, uma: Client) -> None:
    headers = engine.headers(engine.token("uma", "user"))
    for path, name in [(PATH, "since"), (PATH, "until"), (PATH.replace("records", "quality"), "from"),
                       (PATH.replace("records", "quality"), "to")]:
        r = engine.http.get(path, params={name: "0.5"}, headers=headers)
        assert r.status_code == 422, (name, r.text)
        assert r.json()["details"][0]["loc"] == f"query.{name}" and "ISO 8601" in r.json()["details"][0]["msg"]
    assert engine.http.get(PATH, params={"since": "2026-03-01T00:00:00Z"}, headers=headers).status_code == 200
