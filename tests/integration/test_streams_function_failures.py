"""A function that fails: dead letters that say where (the app's line, the record's offset and key), a
deterministic failure that is not retried again, a function paused after a run of dead letters, and resumed
with its dead letters replayed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from helpers import MINIMAL_STATE, Engine, make_app
from streams_fixtures import drop_streams, eventually, start_engine, stream_engine, stream_settings  # noqa: F401
from twinengine.client import Client
from twinengine.errors import FunctionNotFound, FunctionNotPaused

FUNCTIONS = '''
def gauge(ctx, records):
    (r,) = records
    if "on" not in ctx.state.desired:
        r["depth_to_water"]  # the field is not in the stream
    ctx.update_state(level=r["level"])

def wrong(ctx, records):
    ctx.update_state(level="high")
'''
STREAMS = {"readings": {"key": "station", "fields": {
    "time": {"type": "timestamp"}, "level": {"type": "float"}, "station": {"type": "string"}}}}


def line_of(text: str) -> int:
    """The line of ``fail_app/fns.py`` that holds ``text``."""
    return next(n for n, line in enumerate(FUNCTIONS.splitlines(), 1) if text in line)


def rec(i: int) -> dict[str, Any]:
    return {"time": f"2026-03-01T00:{i:02d}:00Z", "level": float(i), "station": f"s{i % 2}"}


@pytest.fixture
def engine(tmp_path: Path, database_url: str | None, drop_streams: list[Any]) -> Iterator[Engine]:  # noqa: F811
    settings = stream_settings(tmp_path / "data", "local", database_url, function_backoff=0.05, function_retries=3,
                               function_pause_after=3)
    with stream_engine(settings, drop_streams) as started:
        yield started


def failing_twin(engine: Engine, tmp_path: Path, functions: tuple[str, ...] = ("gauge", "wrong")) -> Client:
    declared = {name: {"entrypoint": f"fail_app.fns:{name}", "stream": "readings"} for name in functions}
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="fail-app", manifest={
        "streams": STREAMS, "state": MINIMAL_STATE, "functions": declared}, files={"fail_app/fns.py": FUNCTIONS}))
    client = engine.as_role("uma", "user")
    client.create_twin("fail-app@1.0.0", "well", {"station": "W1"})
    return client


@pytest.fixture
def uma(engine: Engine, tmp_path: Path) -> Client:
    return failing_twin(engine, tmp_path)


def paused(uma: Client, name: str) -> Any:
    found = {f.name: f for f in uma.streams.functions("well")}[name]
    return found if found.paused else None


def test_a_deterministic_bug_pauses_the_function_and_resume_replays_its_dead_letters(uma: Client) -> None:
    uma.streams.append("well", "readings", [rec(i) for i in range(6)])
    gauge = eventually(lambda: paused(uma, "gauge"))
    assert gauge.offset == 3 and gauge.dead_letters == 3  # three in a row, then it waits
    assert gauge.paused_reason and "3 batches in a row failed" in gauge.paused_reason
    dead = sorted(uma.streams.dead_letters("well", function="gauge"), key=lambda d: d.first_offset)
    # the same exception at the same line twice: no third and fourth attempt, though three retries are allowed
    assert [(d.first_offset, d.attempts) for d in dead] == [(0, 2), (1, 2), (2, 2)]
    assert dead[1].error == (f"KeyError: 'depth_to_water' (at fail_app/fns.py:{line_of('depth_to_water')}); "
                             "function gauge, record at offset 1, key station=s1")

    uma.desire("well", on=True)  # what the function lacked
    resumed = uma.streams.resume_function("well", "gauge")
    assert (resumed.offset, resumed.replayed) == (0, 3)
    done = eventually(lambda: next((f for f in uma.streams.functions("well") if f.name == "gauge" and f.offset == 6),
                                   None))
    assert not done.paused and done.paused_reason is None and done.dead_letters == 0
    assert uma.get_state("well").reported["level"].value == 5.0
    with pytest.raises(FunctionNotPaused):
        uma.streams.resume_function("well", "gauge")
    with pytest.raises(FunctionNotFound):
        uma.streams.resume_function("well", "nothing")


def test_the_functions_answer_carries_the_paused_state_the_portal_shows(engine: Engine, uma: Client) -> None:
    """The streams page reads ``paused``, ``paused_reason`` and ``paused_at`` of each function from this answer."""
    uma.streams.append("well", "readings", [rec(i) for i in range(3)])
    eventually(lambda: paused(uma, "gauge"))
    answer = engine.http.get("/api/v1/twins/well/functions", headers=engine.headers(engine.token("uma", "user")))
    assert answer.status_code == 200, answer.text
    gauge = {f["name"]: f for f in answer.json()}["gauge"]
    assert gauge["paused"] is True and "3 batches in a row failed" in gauge["paused_reason"]
    assert datetime.fromisoformat(gauge["paused_at"]).tzinfo is not None
    documented = engine.http.get("/openapi.json").json()["components"]["schemas"]["FunctionRead"]["properties"]
    assert all(documented[field].get("description") for field in ("paused", "paused_reason", "paused_at"))


def test_a_refused_state_write_names_the_function_the_record_and_the_line(uma: Client) -> None:
    uma.streams.append("well", "readings", [rec(i) for i in range(4)])
    eventually(lambda: paused(uma, "wrong"))
    dead = sorted(uma.streams.dead_letters("well", function="wrong"), key=lambda d: d.first_offset)
    assert dead[0].attempts == 2
    error = dead[0].error
    assert error.startswith("update_state: reported.level") and "number" in error, error
    assert error.endswith(f"(at fail_app/fns.py:{line_of('high')}); function wrong, "
                          "record at offset 0, key station=s0"), error


def test_a_paused_function_stays_paused_across_a_restart(tmp_path: Path, drop_streams: list[Any]) -> None:  # noqa: F811
    settings = stream_settings(tmp_path / "data", "local", function_backoff=0.05, function_pause_after=2)
    runtime, http = start_engine(settings, drop_streams)
    with http:
        engine = Engine(runtime=runtime, app=http.app, http=http, admin_token="")  # type: ignore[arg-type]
        uma = failing_twin(engine, tmp_path, ("gauge",))
        uma.streams.append("well", "readings", [rec(i) for i in range(3)])
        assert eventually(lambda: paused(uma, "gauge")).offset == 2
        token = engine.token("uma", "user")
    runtime.close()
    runtime, http = start_engine(settings, drop_streams)
    with http:
        uma = Client("http://testserver", token, http=http)
        uma.streams.append("well", "readings", [rec(3)])
        assert paused(uma, "gauge") is not None
        uma.desire("well", on=True)
        resumed = uma.streams.resume_function("well", "gauge")
        assert (resumed.offset, resumed.replayed) == (0, 2)  # the run that paused it before the restart
        done = eventually(lambda: (f := uma.streams.functions("well")[0]).offset == 4 and f)
        assert done.calls == 4 and not done.paused  # records 0 and 1 ran again, then 2 and 3 for the first time
        assert uma.get_state("well").reported["level"].value == 3.0 and uma.streams.dead_letters("well") == []
    runtime.close()
