"""What functions on arrival use is recorded as usage of the twin's owner: the CPU of their calls, read by
the engine from /proc for the sandboxed workers that ran them (``daemons.functions_usage``)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from helpers import MINIMAL_STATE, Engine, make_app
from streams_fixtures import drop_streams, eventually, stream_engine, stream_settings  # noqa: F401
from twinengine.compute.models import UsageRecord

ITERATIONS = 100_000
BURN = f'''
import hashlib
import time


def burn(ctx, records):
    time.process_time = lambda: 0.0  # what it spends, hidden from any clock inside its sandbox
    for _ in records:
        hashlib.pbkdf2_hmac("sha256", b"twin", b"salt", {ITERATIONS})
    ctx.update_state(level=records[-1]["level"])
'''
STREAMS = {"readings": {"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"}}}}


@pytest.fixture
def engine(tmp_path: Path, drop_streams: list[Any]) -> Iterator[Engine]:  # noqa: F811
    with stream_engine(stream_settings(tmp_path / "data", "local"), drop_streams) as started:
        yield started


def _records(engine: Engine) -> list[UsageRecord]:
    with engine.runtime.db.session(readonly=True) as session:
        rows = list(session.scalars(select(UsageRecord).where(UsageRecord.kind == "function")))
        session.expunge_all()
    return rows


def _twin_with_a_burning_function(engine: Engine, tmp_path: Path, records: int) -> None:
    app = make_app(tmp_path, name="burn-app", manifest={
        "streams": STREAMS, "state": MINIMAL_STATE,
        "functions": {"burn": {"entrypoint": "burn_app.fns:burn", "stream": "readings"}}},
        files={"burn_app/fns.py": BURN})
    engine.as_role("ada", "developer").publish_app(app)
    uma = engine.as_role("uma", "user")
    uma.create_twin("burn-app@1.0.0", "pump", {"station": "P1"})
    uma.streams.append("pump", "readings", [{"time": f"2026-03-01T00:{i:02d}:00Z", "level": float(i)}
                                            for i in range(records)])
    eventually(lambda: [f for f in uma.streams.functions("pump") if f.offset == records], timeout=60)


def test_a_functions_calls_are_charged_to_the_twins_owner_with_the_cpu_the_kernel_counted(
        engine: Engine, tmp_path: Path) -> None:
    started = time.thread_time()  # this thread's: the engine's threads share the process
    hashlib.pbkdf2_hmac("sha256", b"twin", b"salt", ITERATIONS)
    one_call = time.thread_time() - started  # what each call adds, on this machine
    _twin_with_a_burning_function(engine, tmp_path, records=20)
    engine.app.state.stream_daemons.functions.flush_checkpoints()  # as when the engine stops

    [record] = _records(engine)
    assert (record.run_id, record.identity, record.twin_name, record.app) == ("burn", "uma", "pump",
                                                                              "burn-app@1.0.0")
    assert record.source == "worker-cpu" and record.site == "local"
    assert record.remote_core_seconds >= 20 * one_call / 2, (record.remote_core_seconds, one_call)
    assert record.core_seconds == record.remote_core_seconds  # the engine's own share is not the app's
    assert 0 < record.wall_seconds < 60 and record.started_at <= record.finished_at

    mine = engine.http.get("/api/v1/usage/records", headers=engine.headers(engine.token("uma", "user")))
    assert [(r["run_id"], r["kind"]) for r in mine.json()["items"]] == [("burn", "function")]
    by_kind = engine.as_role("uma", "user").compute.usage(by="kind").groups
    assert [(g.key, g.runs) for g in by_kind] == [("function", 1)]
    other = engine.http.get("/api/v1/usage/records", headers=engine.headers(engine.token("ola", "user")))
    assert other.status_code == 200 and other.json()["items"] == []
    engine.app.state.stream_daemons.functions.flush_checkpoints()
    assert len(_records(engine)) == 1  # nothing new ran: no second record


def test_a_function_that_runs_on_writes_a_record_each_period(engine: Engine, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from twinengine.daemons import functions_usage

    monkeypatch.setattr(functions_usage, "PERIOD_SECONDS", 0.0)  # every checkpoint closes a period
    _twin_with_a_burning_function(engine, tmp_path, records=3)
    records = eventually(lambda: _records(engine))  # written with the checkpoints, the loop still running
    assert {r.run_id for r in records} == {"burn"} and sum(r.remote_core_seconds for r in records) > 0


def test_a_function_that_ran_then_idles_has_its_record_once_its_period_is_over(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from twinengine.daemons import functions_usage

    monkeypatch.setattr(functions_usage, "PERIOD_SECONDS", 1.0)
    _twin_with_a_burning_function(engine, tmp_path, records=1)  # one batch, then no more records
    [record] = eventually(lambda: _records(engine), timeout=20)  # written by the loop, not by a stop
    assert record.run_id == "burn" and record.remote_core_seconds > 0
    assert (record.finished_at - record.started_at).total_seconds() >= 1.0  # from its batch to its period's end


def test_the_last_period_of_a_deleted_twins_function_is_still_charged_to_its_owner(engine: Engine,
                                                                                   tmp_path: Path) -> None:
    """Its period is not over when the twin goes: the loop writes it once it learns of the deletion, as the
    twin was (its owner, name and app), not when the engine stops."""
    _twin_with_a_burning_function(engine, tmp_path, records=2)
    assert _records(engine) == []  # a period of 60 s: nothing written yet
    twin_id = engine.as_role("uma", "user").get_twin("pump").id
    engine.as_role("uma", "user").delete_twin("pump")
    [record] = eventually(lambda: _records(engine), timeout=20)  # the engine still running
    assert (record.run_id, record.identity, record.twin_id, record.twin_name, record.app) == (
        "burn", "uma", twin_id, "pump", "burn-app@1.0.0")
    assert record.remote_core_seconds > 0
    engine.app.state.stream_daemons.functions.flush_checkpoints()
    assert len(_records(engine)) == 1  # written once


def test_a_used_up_quota_holds_the_owners_functions_and_keeps_their_records(engine: Engine, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Streams are never refused for a quota; the functions of the owner's twins wait (what the API says of
    them), and take the kept records once the quota allows again."""
    from twinengine.daemons import streams_functions

    monkeypatch.setattr(streams_functions, "_HOLD_SECONDS", 0.2)
    _twin_with_a_burning_function(engine, tmp_path, records=2)
    admin, uma = engine.sdk(engine.admin_token), engine.as_role("uma", "user")
    admin.compute.set_quota("uma", 0.0, site="local", period="day")
    time.sleep(0.5)  # past the loop's last look at uma's quota
    uma.streams.append("pump", "readings", [{"time": f"2026-03-01T01:{i:02d}:00Z", "level": float(i)}
                                            for i in range(3)])  # acknowledged: the records are kept
    [held] = eventually(lambda: [f for f in uma.streams.functions("pump") if f.held], timeout=20)
    assert "compute quota of uma on site local is used up" in held.held
    assert "functions on arrival wait, their records kept" in held.held
    time.sleep(1.0)
    [function] = uma.streams.functions("pump")
    assert function.offset == 2 and function.lag == 3  # it waited
    admin.compute.remove_quota("uma", site="local")
    eventually(lambda: [f for f in uma.streams.functions("pump") if f.offset == 5 and f.held is None], timeout=20)
