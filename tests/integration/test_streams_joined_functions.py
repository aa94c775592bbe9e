"""Functions on joined streams, run by the engine's own function worker on both stream logs: records joined
with their partners whichever stream comes first, a bounded wait for a partner that never comes (called
flagged, or left out, with an event either way), effects once, checkpoints that survive a restart, and the
pedigree of what a call wrote naming the joined stream whose record was not good."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import MINIMAL_STATE, Engine, make_app
from streams_fixtures import drop_streams, eventually, start_engine, stream_backend, stream_engine, stream_settings  # noqa: F401
from twinengine.client import Client
from twinengine.config import Settings

FUNCTIONS = '''
def joined(ctx, records):
    for r in records:
        ctx.emit("joined", level=r["level"], rain=r["rain"]["mm"] if r["rain"] else None,
                 wind=r["wind"]["speed"] if r["wind"] else None, missing=r["_missing"])
        ctx.update_state(timestamp=r["time"], level=r["level"] + (r["rain"]["mm"] if r["rain"] else 0))
'''
STREAMS = {
    "readings": {"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"}}},
    "rain": {"fields": {"time": {"type": "timestamp"}, "mm": {"type": "float"}},
             "quality": [{"check": "range", "field": "mm", "min": 0, "max": 50}]},
    "wind": {"time_field": "t", "fields": {"t": {"type": "timestamp"}, "speed": {"type": "float"}}},
}


def join_app(root: Path, name: str, **join: Any) -> Path:
    package = name.replace("-", "_")
    return make_app(root, name=name, manifest={"streams": STREAMS, "state": MINIMAL_STATE, "functions": {
        "joined": {"entrypoint": f"{package}.fns:joined", "stream": "readings",
                   "join": {"streams": ["rain", "wind"], "tolerance": "1s", **join}}}},
        files={f"{package}/fns.py": FUNCTIONS})


@pytest.fixture
def settings(tmp_path: Path, stream_backend: str) -> Settings:  # noqa: F811
    return stream_settings(tmp_path / "data", stream_backend, function_backoff=0.05)


@pytest.fixture
def engine(settings: Settings, drop_streams: list[Any]) -> Iterator[Engine]:  # noqa: F811
    with stream_engine(settings, drop_streams) as started:
        yield started


def _at(i: int, second: int = 0) -> str:
    return f"2026-03-01T00:{i:02d}:{second:02d}Z"


def _twin(engine: Engine, tmp_path: Path, name: str, **join: Any) -> Client:
    engine.as_role("ada", "developer").publish_app(join_app(tmp_path, name, **join))
    uma = engine.as_role("uma", "user")
    uma.create_twin(f"{name}@1.0.0", "basin", {"station": "B1"})
    return uma


def _joined(uma: Client, count: int) -> list[dict[str, Any]]:
    def enough() -> Any:
        found = [e for e in uma.streams.events("basin") if e.kind == "joined"]
        return found if len(found) >= count else None

    return [e.data for e in sorted(eventually(enough, timeout=30), key=lambda e: e.offset)]


def test_records_join_their_partners_whichever_comes_first(engine: Engine, tmp_path: Path) -> None:
    uma = _twin(engine, tmp_path, "join-app", wait="1h")
    uma.streams.append("basin", "rain", [{"time": _at(0), "mm": 0.5}])  # a partner before its record
    uma.streams.append("basin", "readings", [{"time": _at(i), "level": float(i)} for i in range(3)])
    uma.streams.append("basin", "wind", [{"t": _at(0), "speed": 3.0}, {"t": _at(1, 1), "speed": 4.0}])
    uma.streams.append("basin", "rain", [{"time": _at(1), "mm": 1.5}])
    assert [e["level"] for e in _joined(uma, 2)] == [0.0, 1.0]  # the third waits for its partners
    (fn,) = uma.streams.functions("basin")
    assert fn.joins == ["rain", "wind"] and fn.offset == 2
    uma.streams.append("basin", "wind", [{"t": _at(2), "speed": 5.0}])
    uma.streams.append("basin", "rain", [{"time": _at(2), "mm": 2.5}])
    joined = _joined(uma, 3)
    assert joined == [{"level": 0.0, "rain": 0.5, "wind": 3.0, "missing": []},
                      {"level": 1.0, "rain": 1.5, "wind": 4.0, "missing": []},  # wind 1 s later: within tolerance
                      {"level": 2.0, "rain": 2.5, "wind": 5.0, "missing": []}]
    fn = eventually(lambda: (f := uma.streams.functions("basin")[0]).offset == 3 and f)
    assert fn.calls == 3 and fn.lag == 0
    assert uma.get_state("basin").reported["level"].value == 4.5
    assert [e for e in uma.streams.events("basin") if e.kind == "join.incomplete"] == []


@pytest.mark.parametrize("incomplete", ["call", "skip"])
def test_a_record_whose_partner_never_comes_is_called_flagged_or_left_out(engine: Engine, tmp_path: Path,
                                                                         incomplete: str) -> None:
    uma = _twin(engine, tmp_path, f"lost-{incomplete}", wait="300ms", incomplete=incomplete)
    uma.streams.append("basin", "rain", [{"time": _at(i), "mm": 1.0} for i in range(2)])
    uma.streams.append("basin", "wind", [{"t": _at(0), "speed": 2.0}])  # none for the second record
    uma.streams.append("basin", "readings", [{"time": _at(i), "level": float(i)} for i in range(2)])
    (event,) = eventually(lambda: [e for e in uma.streams.events("basin") if e.kind == "join.incomplete"])
    assert event.data == {"records": 1, "left_out": int(incomplete == "skip"), "missing": {"1": ["wind"]}}
    fn = eventually(lambda: (f := uma.streams.functions("basin")[0]).offset == 2 and f)
    joined = [e.data for e in sorted(uma.streams.events("basin"), key=lambda e: e.offset) if e.kind == "joined"]
    complete = {"level": 0.0, "rain": 1.0, "wind": 2.0, "missing": []}
    if incomplete == "call":  # after its wait, run with what arrived, the absent stream named
        assert joined == [complete, {"level": 1.0, "rain": 1.0, "wind": None, "missing": ["wind"]}]
        assert fn.calls == 2
    else:
        assert joined == [complete] and fn.calls == 1


def test_joined_checkpoints_survive_a_restart(settings: Settings, tmp_path: Path,
                                              drop_streams: list[Any]) -> None:  # noqa: F811
    runtime, http = start_engine(settings, drop_streams)
    with http:
        engine = Engine(runtime=runtime, app=http.app, http=http, admin_token="")  # type: ignore[arg-type]
        uma = _twin(engine, tmp_path, "restart-app", wait="1h")
        for stream, field in (("rain", "mm"), ("wind", "speed")):
            time_field = "t" if stream == "wind" else "time"
            uma.streams.append("basin", stream, [{time_field: _at(i), field: float(i)} for i in range(4)])
        uma.streams.append("basin", "readings", [{"time": _at(i), "level": float(i)} for i in range(3)])
        assert len(_joined(uma, 3)) == 3
        eventually(lambda: uma.streams.functions("basin")[0].offset == 3)
        token = engine.token("uma", "user")
    runtime.close()
    runtime, http = start_engine(settings, drop_streams)
    with http:
        uma = Client("http://testserver", token, http=http)
        uma.streams.append("basin", "readings", [{"time": _at(3), "level": 3.0}])  # its partners came before
        joined = _joined(uma, 4)
        assert [e["level"] for e in joined] == [0.0, 1.0, 2.0, 3.0]  # nothing was run twice across the restart
        assert joined[-1] == {"level": 3.0, "rain": 3.0, "wind": 3.0, "missing": []}
        fn = eventually(lambda: (f := uma.streams.functions("basin")[0]).offset == 4 and f)
        assert fn.calls == 4
    runtime.close()


def test_a_value_computed_from_a_bad_partner_says_so(engine: Engine, tmp_path: Path) -> None:
    uma = _twin(engine, tmp_path, "pedigree-app", wait="1h")
    uma.streams.append("basin", "wind", [{"t": _at(i), "speed": 1.0} for i in range(2)])
    uma.streams.append("basin", "rain", [{"time": _at(0), "mm": 1.0}, {"time": _at(1), "mm": 80.0}])  # 80: bad
    uma.streams.append("basin", "readings", [{"time": _at(i), "level": float(i)} for i in range(2)])
    assert len(_joined(uma, 2)) == 2
    twin_id = uma.get_twin("basin").id
    history = eventually(lambda: (h := uma.history("basin", "level").items) and len(h) == 2 and h)
    first, second = history
    assert first.quality is None  # its record and partners were good
    assert second.quality is not None and second.quality.flag == "bad" and second.quality.function == "joined"
    assert second.quality.inputs == [f"stream:{twin_id}/rain"]  # the partner, not the function's own stream
    assert second.quality.records == {"good": 2, "suspect": 0, "bad": 1}  # its record and its two partners


SENSORS = '''
def calibrate(ctx, records):
    for r in records:
        reference = r["reference"]["pm25"] if r["reference"] else None
        ctx.emit("pair", sensor=r["sensor"], pm25=r["pm25"], reference=reference, missing=r["_missing"])
        if reference is not None:
            ctx.update_state(timestamp=r["time"], **{f"bias[{r['sensor']}]": r["pm25"] - reference})
'''


def test_a_sensor_network_joins_its_reference_station_key_by_key(engine: Engine, tmp_path: Path) -> None:
    """A keyed stream (30 low-cost sensors, one record per sensor and minute) drives a function joined to the
    reference station's unkeyed stream: each sensor's record joins the reference record at its time."""
    streams = {"pm": {"key": "sensor", "fields": {"time": {"type": "timestamp"}, "sensor": {"type": "string"},
                                                  "pm25": {"type": "float"}}},
               "reference": {"fields": {"time": {"type": "timestamp"}, "pm25": {"type": "float"}}}}
    state = {"bias": {"type": "number", "unit": "ug m-3", "key": "sensor"}}
    folder = make_app(tmp_path, name="pm-network", manifest={"streams": streams, "state": state, "functions": {
        "calibrate": {"entrypoint": "pm_network.fns:calibrate", "stream": "pm",
                      "join": {"streams": ["reference"], "tolerance": "30s", "wait": "1h"}}}},
        files={"pm_network/fns.py": SENSORS})
    engine.as_role("ada", "developer").publish_app(folder)
    uma = engine.as_role("uma", "user")
    uma.create_twin("pm-network@1.0.0", "city", {"station": "C1"})
    sensors = [f"s{i:02d}" for i in range(30)]
    uma.streams.append("city", "pm", [{"time": _at(m), "sensor": s, "pm25": 10.0 + m + i / 10}
                                      for m in range(2) for i, s in enumerate(sensors)])
    uma.streams.append("city", "reference", [{"time": _at(m, 5), "pm25": 10.0 + m} for m in range(2)])

    def pairs() -> Any:
        found = [e for e in uma.streams.events("city") if e.kind == "pair"]
        return found if len(found) >= 60 else None

    joined = [e.data for e in sorted(eventually(pairs, timeout=30), key=lambda e: e.offset)]
    assert [(p["sensor"], p["reference"]) for p in joined] == [(s, 10.0 + m) for m in range(2) for s in sensors]
    assert all(p["missing"] == [] for p in joined)
    biases = eventually(lambda: (b := uma.get_state("city").keyed("bias")) and len(b) == 30 and b)
    assert biases["s07"].value == pytest.approx(0.7)  # minute 1: 11.7 against the reference's 11.0
