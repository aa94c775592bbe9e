"""Uncertainty on stream record fields, end to end on both stream logs: values with their std, quantiles or
members go in as JSON lines, JSON and Arrow IPC, come back in JSON and Arrow pages and Server-Sent Events,
reach load_stream over compacted Parquet plus the log's tail as NetCDF-U variables, and reach functions on
arrival, which write them to state. Bad input is a 422 naming record and field, with nothing written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import select

from helpers import Engine, make_app
from streams_fixtures import (  # noqa: F401
    drop_streams,
    eventually,
    stream_backend,
    stream_engine,
    stream_settings,
)
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.daemons.streams_compactor import Compactor
from twinengine.errors import ValidationFailed
from twinengine.streams.compaction import load_stream
from twinengine.streams.models import CompactedSegment
from twinengine.streams.uncertainty import UNCERTAINTY_TYPE
from twinengine.workflows.stream_processes import to_records_dataset

STREAMS = {"gauges": {"time_field": "time", "fields": {
    "time": {"type": "timestamp"},
    "level": {"type": "float", "unit": "m", "uncertainty": ["std", "quantiles", "members"]},
    "rain": {"type": "float", "uncertainty": "std"},
    "station": {"type": "string"}}}}
STATE = {"level": {"type": "number", "unit": "m", "uncertainty": ["std", "quantiles", "members"]},
         "count": {"type": "integer"}}
FUNCTIONS = '''
def to_state(ctx, records):
    (r,) = records
    carried = (r["_uncertainty"] or {}).get("level")
    ctx.update_state(level={"value": r["level"], "uncertainty": carried} if carried else r["level"])
'''


def at(i: int) -> str:
    return f"2026-03-01T00:{i:02d}:00Z"


def reading(i: int, level: Any, rain: Any = 0.5) -> dict[str, Any]:
    return {"time": at(i), "level": level, "rain": rain, "station": "G1"}


@pytest.fixture
def settings(tmp_path: Path, stream_backend: str) -> Settings:  # noqa: F811
    return stream_settings(tmp_path / "data", stream_backend, function_backoff=0.05, stream_segment_bytes=4096,
                           stream_segment_entries=3)


@pytest.fixture
def engine(settings: Settings, drop_streams: list[Any]) -> Iterator[Engine]:  # noqa: F811
    with stream_engine(settings, drop_streams) as started:
        yield started


def twin(engine: Engine, root: Path, functions: dict[str, Any] | None = None) -> Client:
    app = make_app(root, name="gauge-app", manifest={"streams": STREAMS, "state": STATE,
                                                     "functions": functions or {}},
                   files={"gauge_app/fns.py": FUNCTIONS})
    engine.as_role("ada", "developer").publish_app(app)
    uma = engine.as_role("uma", "user")
    uma.create_twin("gauge-app@1.0.0", "g", {"station": "G1"})
    return uma


def test_values_with_their_uncertainty_go_in_and_come_back(engine: Engine, tmp_path: Path) -> None:
    uma = twin(engine, tmp_path)
    quantiles = {"0.05": 1.9, "0.5": 2.1, "0.95": 2.4}
    records = [reading(0, 2.0),
               reading(1, {"value": 2.1, "uncertainty": {"std": 0.3, "quantiles": quantiles}},
                       {"value": 1.5, "uncertainty": {"std": 0.2}}),
               reading(2, {"value": 2.2, "uncertainty": {"members": [2.0, 2.2, 2.4]}})]
    assert uma.streams.append("g", "gauges", records).count == 3
    # JSON lines take the fast path until a record carries an envelope (an object, not a number)
    lines = "\n".join(json.dumps(r) for r in [reading(3, 2.3), reading(4, {"value": 2.4, "uncertainty": {
        "std": 0.1}})]).encode()
    response = engine.http.post("/api/v1/twins/g/streams/gauges/records", content=lines,
                                headers={**engine.headers(engine.token("uma", "user")),
                                         "Content-Type": "application/x-ndjson"})
    assert response.status_code == 201, response.text

    items = uma.streams.read("g", "gauges").items
    assert [r["level"] for r in items] == [2.0, 2.1, 2.2, 2.3, 2.4]  # the field keeps the value
    assert [r["_uncertainty"] for r in items] == [
        None, {"level": {"std": 0.3, "quantiles": quantiles}, "rain": {"std": 0.2}},
        {"level": {"members": [2.0, 2.2, 2.4]}}, None, {"level": {"std": 0.1}}]
    table = uma.streams.read_arrow("g", "gauges")
    assert table.schema.field("_uncertainty").type == UNCERTAINTY_TYPE
    assert table.column("level").to_pylist() == [2.0, 2.1, 2.2, 2.3, 2.4]

    # Arrow in: the same column; what came out goes back in unchanged
    again = table.select(["time", "level", "rain", "station", "_uncertainty"])
    assert uma.streams.append("g", "gauges", again).count == 5
    assert [r["_uncertainty"] for r in uma.streams.read("g", "gauges", start=5).items] == \
        [r["_uncertainty"] for r in items]

    events = engine.http.get("/api/v1/twins/g/streams/gauges/events", params={"start": 1, "count": 1},
                             headers=engine.headers(engine.token("uma", "user")))
    data = json.loads(next(line for line in events.text.splitlines() if line.startswith("data:"))[5:])
    assert data["_uncertainty"]["rain"] == {"std": 0.2}


@pytest.mark.parametrize(("value", "loc", "message"), [
    ({"value": 2.0, "uncertainty": {"std": -0.1}}, "records[1].level.uncertainty.std", "greater than or equal"),
    ({"value": 2.0, "uncertainty": {"quantiles": {"0.9": 2.5, "0.1": 1.5}}},
     "records[1].level.uncertainty.quantiles", "must increase"),
    ({"value": 2.0, "uncertainty": {"members": [1.0, "2"]}}, "records[1].level.uncertainty.members[1]",
     "valid number"),
    ({"value": 2.0, "uncertainty": {"spread": 1}}, "records[1].level.uncertainty.spread", "Extra inputs"),
    ({"value": 2.0, "uncertainty": {"std": 0.1}, "unit": "m"}, "records[1].level.unit", "not part of"),
    ({"uncertainty": {"std": 0.1}}, "records[1].level.value", "required"),
])
def test_a_malformed_uncertainty_is_refused_naming_record_and_field(engine: Engine, tmp_path: Path, value: Any,
                                                                   loc: str, message: str) -> None:
    uma = twin(engine, tmp_path)
    with pytest.raises(ValidationFailed) as info:
        uma.streams.append("g", "gauges", [reading(0, 1.0), reading(1, value)])
    found = {p.loc: p.msg for p in info.value.problems}
    assert loc in found and message in found[loc], found
    assert uma.streams.read("g", "gauges").count == 0  # nothing of the batch was written


def test_an_undeclared_form_is_refused_in_json_and_arrow(engine: Engine, tmp_path: Path) -> None:
    uma = twin(engine, tmp_path)
    with pytest.raises(ValidationFailed, match=r"records\[0\]\.rain\.uncertainty\.members: field 'rain' "
                                               r"declares uncertainty as std only"):
        uma.streams.append("g", "gauges", [reading(0, 1.0, {"value": 1.0, "uncertainty": {"members": [1.0]}})])
    with pytest.raises(ValidationFailed, match=r"records\[0\]\.station: an object is not a string"):
        uma.streams.append("g", "gauges", [{**reading(0, 1.0), "station": {"value": "G1", "uncertainty": {
            "std": 1}}}])
    forms = pa.array([[("rain", {"std": None, "quantiles": [("0.5", 1.0)], "members": None})],
                      [("station", {"std": 1.0, "quantiles": None, "members": None})]], type=UNCERTAINTY_TYPE)
    arrow = pa.table({"time": pa.array([at(0), at(1)]).cast(pa.timestamp("us", tz="UTC")),
                      "level": [1.0, 1.1], "rain": [0.0, 0.0], "station": ["G1", "G1"], "_uncertainty": forms})
    with pytest.raises(ValidationFailed) as info:
        uma.streams.append("g", "gauges", arrow)
    found = {p.loc: p.msg for p in info.value.problems}
    assert found["records[0].rain.uncertainty.quantiles"] == "field 'rain' declares uncertainty as std only"
    assert found["records[1].station"] == "not a field of this stream that declares uncertainty"
    assert uma.streams.read("g", "gauges").count == 0


def test_load_stream_gives_the_uncertainty_as_variables_over_parquet_and_the_tail(engine: Engine,
                                                                                  tmp_path: Path) -> None:
    uma = twin(engine, tmp_path)
    rng = np.random.default_rng(3)
    sent = []
    for i in range(12):
        members = rng.normal(2.0, 0.2, size=4 + i % 2)  # the number of members may vary: padded with NaN
        level = ({"value": float(members.mean()), "uncertainty": {"std": float(members.std(ddof=1)),
                                                                  "members": members.tolist(),
                                                                  "quantiles": {"0.1": float(members.min()),
                                                                                "0.9": float(members.max())}}}
                 if i % 3 else 2.0)
        sent.append(reading(i, level))
    for i in range(0, 12, 3):  # small batches: closed segments to compact
        uma.streams.append("g", "gauges", sent[i:i + 3])
    runtime, twin_id = engine.runtime, uma.get_twin("g").id
    with runtime.db.session() as session:
        Compactor(runtime).run_once(session)
    with runtime.db.session(readonly=True) as session:
        assert list(session.scalars(select(CompactedSegment).where(CompactedSegment.twin_id == twin_id)))
        table = load_stream(session, runtime.streams, twin_id=twin_id, stream="gauges", time_field="time",
                            sink=runtime.segment_sink)
    ds = to_records_dataset(table, "time")
    assert ds["level"].attrs["ancillary_variables"] == "level_std level_q1 level_q9 level_members"
    assert ds["level_std"].attrs["ref"] == "http://www.uncertml.org/statistics/standard-deviation"
    assert ds["level_q1"].attrs == {"ref": "http://www.uncertml.org/statistics/quantile", "quantile": 0.1}
    for i, record in enumerate(sent):
        level = record["level"]
        if isinstance(level, dict):
            assert ds["level_std"].values[i] == pytest.approx(level["uncertainty"]["std"])
            got = ds["level_members"].values[i]
            np.testing.assert_allclose(got[~np.isnan(got)], level["uncertainty"]["members"])
            assert ds["level_q9"].values[i] == pytest.approx(level["uncertainty"]["quantiles"]["0.9"])
        else:
            assert np.isnan(ds["level_std"].values[i]) and np.isnan(ds["level_members"].values[i]).all()
    assert ds["level_members"].dims == ("record", "level_member") and ds.sizes["level_member"] == 5
    assert "rain_std" not in ds  # no record carried one


def test_functions_on_arrival_see_it_and_write_it_to_state(engine: Engine, tmp_path: Path) -> None:
    uma = twin(engine, tmp_path, {"to_state": {"entrypoint": "gauge_app.fns:to_state", "stream": "gauges"}})
    uma.streams.append("g", "gauges", [reading(0, {"value": 2.5, "uncertainty": {"std": 0.4, "members": [
        2.1, 2.5, 2.9]}})])
    level = eventually(lambda: (s := uma.get_state("g").reported.get("level")) and s)
    assert level.value == 2.5 and level.uncertainty is not None
    assert (level.uncertainty.std, level.uncertainty.members) == (0.4, [2.1, 2.5, 2.9])
    uma.streams.append("g", "gauges", [reading(1, 2.6)])
    level = eventually(lambda: (s := uma.get_state("g").reported["level"]).value == 2.6 and s)
    assert level.uncertainty is None and uma.streams.dead_letters("g") == []
