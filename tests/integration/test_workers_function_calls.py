"""A batch of function calls in a real warm worker (bubblewrap where it works): each call's effects come back
as that call's, times exactly; a call that raises ends the batch with its error and the calls before it stand;
a worker that dies mid-batch says how many calls returned; and a worker that forges its answer on the
protocol pipe gets a malformed call refused, or the whole batch, and never has anything unpickled."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack
import pytest

from helpers import warm_app
from twinengine.twins.schemas import PropertyValue, TwinState
from twinengine.workers.effects import CallEffects, Malformed
from twinengine.workers.process import WorkerCrashed
from twinengine.workers.protocol import PART_CALLS, ProtocolError
from twinengine.workers.service import AppWorkers

CODE = '''
import os
import sys

from twinengine.workers.protocol import write_message

SEEN = []


def each(ctx, records):
    (r,) = records
    p = ctx.parameters
    if r["n"] == p.get("fail"):
        raise RuntimeError(f"call {r['n']} failed")
    if r["n"] == p.get("exit"):
        os._exit(3)
    if r["n"] == p.get("forge"):  # answer for the worker, on its protocol pipe, then vanish
        frame = sys._getframe()
        while type(frame.f_locals.get("self")).__name__ != "Child":  # the worker's loop, up the stack
            frame = frame.f_back
        write_message(frame.f_locals["self"].out, p["header"], [p["document"].encode("latin-1")])
        os._exit(0)
    SEEN.append(r["n"])  # one list, growing: each call's update holds it as it was then
    assert ctx.state.revision is None  # asked of the engine once per batch (no state: an empty one)
    ctx.update_state(timestamp=r["time"], message=f"record {r['n']}", n=r["n"], seen=SEEN)
    if r["n"] % 2:
        ctx.emit("odd", n=r["n"], at=r["time"])


def reads(ctx, records):
    ctx.update_state(seen=ctx.state.reported["level"].value)


def echo(ctx, records):
    for r in records:
        ctx.update_state(blob=r["blob"][::-1])
        ctx.publish("out", [{"blob": r["blob"]}])
'''

T0 = datetime(2026, 3, 1, 6, 0, 0, 250_001, tzinfo=UTC)
ROW = '[[[{"n":0},"2026-03-01T06:00:00+00:00",null,null]],[],[],[]]'


def packed(*rows: str) -> bytes:
    """A part as a worker sends it, from rows written as JSON for the reader's sake."""
    return msgpack.Packer().pack_array_header(len(rows)) + b"".join(msgpack.packb(json.loads(r)) for r in rows)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[AppWorkers]:
    with warm_app(tmp_path, "calls_app", CODE) as workers:
        yield workers


def call(app: AppWorkers, count: int, **parameters: Any) -> tuple[list[CallEffects | Malformed], dict[str, Any] | None]:
    header = {"entrypoint": "calls_app.fns:each", "model": None, "seconds": 30.0,
              "twin": {"id": "t", "name": "n", "function": "each", "parameters": parameters}}
    asked: list[dict[str, Any]] = []
    batch = [[{"n": i, "time": T0 + timedelta(minutes=i)}] for i in range(count)]
    results, failed = app.functions(header, batch, ask=lambda q: asked.append(q))
    assert len(asked) <= 1
    return results, failed


def test_the_state_sent_with_the_calls_spares_the_question(app: AppWorkers) -> None:
    header = {"entrypoint": "calls_app.fns:reads", "model": None, "seconds": 30.0,
              "twin": {"id": "t", "name": "n", "function": "reads", "parameters": {}}}
    batch = [[{"n": i}] for i in range(3)]
    asked: list[dict[str, Any]] = []

    def state(level: float) -> TwinState:
        value = PropertyValue(value=level, unit="m", timestamp=T0, revision=1)
        return TwinState(twin_id="t", revision=1, at=None, reported={"level": value}, desired={}, delta={})

    def ask(question: dict[str, Any]) -> Any:
        asked.append(question)
        return state(1.0)

    results, failed = app.functions(header, batch, ask=ask)
    assert failed is None and asked == [{"ask": "state"}]  # asked once for the batch
    assert [r.updates[0].values for r in results if isinstance(r, CallEffects)] == [{"seen": 1.0}] * 3
    results, failed = app.functions(header, batch, ask=ask, state=lambda: state(2.0))
    assert failed is None and len(asked) == 1  # not asked again: it came with the calls
    assert [r.updates[0].values for r in results if isinstance(r, CallEffects)] == [{"seen": 2.0}] * 3


def test_each_call_gets_its_own_effects_and_a_failing_call_ends_the_batch(app: AppWorkers) -> None:
    results, failed = call(app, 6, fail=4)
    assert failed is not None and failed["error"] == "RuntimeError: call 4 failed"
    assert len(results) == 4
    for i, result in enumerate(results):
        assert isinstance(result, CallEffects)
        (update,) = result.updates
        assert update.timestamp == T0 + timedelta(minutes=i) and update.timestamp.tzinfo is UTC
        assert update.values == {"n": i, "seen": list(range(i + 1))} and update.message == f"record {i}"
        assert result.events == ([{"kind": "odd", "n": i, "at": T0 + timedelta(minutes=i)}] if i % 2 else [])
    again, failed = call(app, 2)  # the same warm worker, a new batch
    assert failed is None and [r.updates[0].values["n"] for r in again if isinstance(r, CallEffects)] == [0, 1]


def test_a_batch_comes_back_in_parts_whole_and_in_order(app: AppWorkers) -> None:
    """The worker sends every ``PART_CALLS`` calls' effects as it goes; the engine puts them together."""
    count = 2 * PART_CALLS + 7
    results, failed = call(app, count)
    assert failed is None and len(results) == count
    assert [r.updates[0].values["n"] for r in results if isinstance(r, CallEffects)] == list(range(count))
    assert all(isinstance(r, CallEffects) and r.updates[0].timestamp == T0 + timedelta(minutes=i)
               for i, r in enumerate(results))
    results, failed = call(app, count, fail=PART_CALLS + 3)  # a failure in the second part
    assert failed is not None and "call 35 failed" in failed["error"] and len(results) == PART_CALLS + 3


def test_parts_larger_than_the_pipes_hold_flow_both_ways(app: AppWorkers) -> None:
    """Calls and effects of many times a pipe's buffer: the engine sends the whole request before it reads
    and the worker reads all of it before it writes, so neither waits on the other with both pipes full."""
    header = {"entrypoint": "calls_app.fns:echo", "model": None, "seconds": 60.0,
              "twin": {"id": "t", "name": "n", "function": "echo", "parameters": {}}}
    blobs = [f"{i:06d}" + "x" * 20_000 for i in range(4 * PART_CALLS + 1)]  # 2.6 MB of calls, 5.2 MB back
    results, failed = app.functions(header, [[{"blob": b}] for b in blobs], ask=lambda q: None)
    assert failed is None and len(results) == len(blobs)
    for blob, result in zip(blobs, results, strict=True):
        assert isinstance(result, CallEffects)
        assert result.updates[0].values == {"blob": blob[::-1]} and result.published[0]["records"] == [{"blob": blob}]


def test_a_worker_that_dies_mid_batch_says_how_many_calls_returned(app: AppWorkers) -> None:
    with pytest.raises(WorkerCrashed, match="exited with status 3") as info:
        call(app, 5, exit=3)
    assert info.value.completed == 3
    results, failed = call(app, 1)  # a fresh worker took its place
    assert failed is None and len(results) == 1


def forged(app: AppWorkers, header: dict[str, Any], document: bytes) -> tuple[list[Any], dict[str, Any] | None]:
    try:
        return call(app, 2, forge=1, header=header, document=document.decode("latin-1"))
    finally:
        app.workers.pool.discard(app.key)  # it answered, then exited: the next call starts another


def test_a_forged_answer_is_checked_like_any_other(app: AppWorkers, tmp_path: Path) -> None:
    results, failed = forged(app, {"calls": 2, "failed": None, "tagged": False},
                             packed(ROW, '[[[{"n":1},"yesterday",null,null]],[],[],[]]'))
    assert failed is None and isinstance(results[0], CallEffects)
    assert results[0].updates[0].timestamp == datetime(2026, 3, 1, 6, tzinfo=UTC)
    assert isinstance(results[1], Malformed) and str(results[1]) == "update_state: malformed update"

    with pytest.raises(ProtocolError, match="malformed"):  # more calls than it was sent
        forged(app, {"calls": 3, "failed": None, "tagged": False}, packed(ROW, ROW, ROW))
    with pytest.raises(ProtocolError, match="malformed"):  # fewer rows than it claims
        forged(app, {"calls": 2, "failed": None, "tagged": False}, packed(ROW))
    with pytest.raises(WorkerCrashed, match="broke the protocol"):  # a part claiming more calls than were sent
        forged(app, {"note": "effects", "calls": 3, "tagged": False}, packed(ROW, ROW, ROW))
    with pytest.raises(WorkerCrashed, match="broke the protocol"):  # a part that is not the calls it claims
        forged(app, {"note": "effects", "calls": 2, "tagged": False}, packed(ROW))

    marker = tmp_path / "unpickled-in-the-engine"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (marker.touch, ())

    for tagged in (False, True):
        with pytest.raises(ProtocolError):
            forged(app, {"calls": 2, "failed": None, "tagged": tagged}, pickle.dumps([Evil(), Evil()]))
    with pytest.raises(ProtocolError, match="unknown value tag"):
        forged(app, {"calls": 2, "failed": None, "tagged": True},
               packed(ROW, '[[],[{"kind":"k","x":{"$twin":"pickle","v":"gASV"}}],[],[]]'))
    assert not marker.exists()
