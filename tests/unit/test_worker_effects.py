"""The effects of a batch of function calls as a worker writes them (one MessagePack row per call, packed as the
call returns) and as the engine reads them: each call's effects stay its own, times come back exactly (or as
the same instant), values mean what JSON would make them mean, and what a hostile worker sends instead is
refused, for the call it claims to be or for the whole batch."""

from __future__ import annotations

import json
import pickle
import struct
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import msgpack
import numpy as np
import pytest

from twinengine.app._context import FunctionContext
from twinengine.workers.effects import CallEffects, EffectsWriter, Malformed, read_effects
from twinengine.workers.protocol import ProtocolError

T0 = datetime(2026, 3, 1, 6, 15, 0, 123456, tzinfo=UTC)


def run_batch(calls: list[Any]) -> tuple[EffectsWriter, list[CallEffects | Malformed]]:
    """Each call is a function of ``ctx``; rows are written as in the worker's loop."""
    ctx = FunctionContext(twin_id="t", twin_name="n", function="f", parameters={})
    writer = EffectsWriter()
    for call in calls:
        events, requests, published = len(ctx.events), len(ctx.workflow_requests), len(ctx.published)
        call(ctx)
        writer.add(ctx, events, requests, published)
        ctx.applied += ctx.updates
        ctx.updates = []
    return writer, read_effects(writer.document(), len(calls), tagged=writer.tagged)


def test_each_calls_effects_come_back_as_that_calls_with_exact_times() -> None:
    berlin = timezone(timedelta(hours=1))
    shared: list[int] = []

    def call(i: int) -> Any:
        def run(ctx: FunctionContext) -> None:
            shared.append(i)  # the same list each time: each row holds it as it was when its call returned
            ctx.update_state(timestamp=T0 + timedelta(minutes=i), message=f"call {i}", level=i / 10, seen=shared)
            if i % 2:
                ctx.emit("odd", i=i)
            if i == 2:
                ctx.update_state(timestamp=datetime(2026, 3, 1, 7, tzinfo=berlin), level=-1.0)
                ctx.update_state(level=float("nan"))  # no timestamp
                ctx.start_workflow("nowcast", level=0.2)
                ctx.publish("out", [{"time": "2026-03-01T00:00:00Z", "x": np.float32(1.5)}])
        return run

    writer, results = run_batch([call(i) for i in range(4)])
    assert not writer.tagged  # only timestamps, which travel in their own place
    assert all(isinstance(r, CallEffects) for r in results) and len(results) == 4
    for i, result in enumerate(results):
        assert isinstance(result, CallEffects)
        first = result.updates[0]
        assert first.timestamp == T0 + timedelta(minutes=i) and first.timestamp.tzinfo is UTC
        assert first.message == f"call {i}" and first.values == {"level": i / 10, "seen": list(range(i + 1))}
        assert result.events == ([{"kind": "odd", "i": i}] if i % 2 else [])
        assert (result.workflows, len(result.updates)) == (([{"workflow": "nowcast", "parameters": {"level": 0.2}}], 3)
                                                           if i == 2 else ([], 1))
    two = results[2]
    assert isinstance(two, CallEffects)
    assert two.updates[1].timestamp == datetime(2026, 3, 1, 7, tzinfo=berlin)
    assert two.updates[1].timestamp.utcoffset() == timedelta(hours=1)
    assert two.updates[2].timestamp is None and two.updates[2].values["level"] != two.updates[2].values["level"]
    assert two.published == [{"stream": "out", "records": [{"time": "2026-03-01T00:00:00Z", "x": 1.5}]}]


def test_times_inside_values_are_tagged_and_only_then_decoded_as_times() -> None:
    naive = datetime(2026, 3, 1, 6, 0, 0, 5)

    def call(ctx: FunctionContext) -> None:
        ctx.update_state(timestamp=np.datetime64("2026-03-01T06:00:00.000001"), when=naive, day=date(2026, 3, 1),
                         span=timedelta(seconds=1.5))
        ctx.emit("seen", at=T0)

    writer, (result,) = run_batch([call])
    assert writer.tagged and isinstance(result, CallEffects)
    update = result.updates[0]
    assert update.timestamp == datetime(2026, 3, 1, 6, 0, 0, 1)  # numpy's datetime64, as before
    assert update.values == {"when": naive, "day": date(2026, 3, 1), "span": timedelta(seconds=1.5)}
    assert result.events[0]["at"] == T0

    def plain(ctx: FunctionContext) -> None:
        ctx.emit("seen", user={"$twin": "a user's own key"})

    writer, (result,) = run_batch([plain])
    assert not writer.tagged and isinstance(result, CallEffects)
    assert result.events == [{"kind": "seen", "user": {"$twin": "a user's own key"}}]  # left as it was


def test_a_timestamp_that_is_not_a_datetime_fails_its_call_only() -> None:
    def good(ctx: FunctionContext) -> None:
        ctx.update_state(timestamp=T0, level=1.0)

    for bad in ("2026-03-01T00:00:00Z", date(2026, 3, 1), 1.5e9, [T0]):
        _writer, results = run_batch([good, lambda ctx, bad=bad: ctx.update_state(timestamp=bad, level=2.0), good])
        assert len(results) == 2 and isinstance(results[0], CallEffects), bad
        assert isinstance(results[1], Malformed) and str(results[1]) == "update_state: malformed update", bad


def test_a_value_that_cannot_be_sent_fails_in_the_worker() -> None:
    ctx = FunctionContext(twin_id="t", twin_name="n", function="f", parameters={})
    writer = EffectsWriter()
    ctx.update_state(level=object())
    with pytest.raises(ProtocolError, match="cannot be sent back to the engine"):
        writer.add(ctx, 0, 0, 0)
    loop: list[Any] = []
    loop.append(loop)
    ctx.updates, ctx.events = [], [{"kind": "loop", "data": loop}]
    with pytest.raises(ProtocolError, match="cannot be sent back to the engine"):
        writer.add(ctx, 0, 0, 0)
    assert writer.rows == []


ROW = '[[[{"level":1.0},"2026-03-01T06:15:00+00:00",null,"app/fns.py:3"]],[],[],[]]'


def packed(*rows: str, count: int | None = None) -> bytes:
    """A part as a worker sends it, from rows written as JSON for the reader's sake."""
    head = msgpack.Packer().pack_array_header(len(rows) if count is None else count)
    return head + b"".join(msgpack.packb(json.loads(row)) for row in rows)


@pytest.mark.parametrize(("row", "why"), [
    ('[[[{"level":1.0},"yesterday",null,null]],[],[],[]]', "update_state: malformed update"),
    ('[[[{"level":1.0},{"$twin":"date","v":"2026-03-01"},null,null]],[],[],[]]', "update_state: malformed update"),
    ('[[[["level",1.0],null,null,null]],[],[],[]]', "update_state: malformed update"),
    ('[[[{"level":1.0},null,null,null,"extra"]],[],[],[]]', "update_state: malformed update"),
    ('[[[{"level":1.0},null,null,7]],[],[],[]]', "update_state: malformed update"),
    ('[[],[{"size":3}],[],[]]', "emit: an event needs a kind"),
    ('[[],[{"kind":7}],[],[]]', "emit: an event needs a kind"),
    ('[[],[],[{"workflow":"w"}],[]]', "start_workflow: malformed request"),
    ('[[],[],[{"workflow":"w","parameters":[]}],[]]', "start_workflow: malformed request"),
    ('[[],[],[],[{"stream":"out","records":{}}]]', "publish: malformed request"),
    ('[[],[],[]]', "four lists"),
    ('{"updates":[]}', "four lists"),
])
def test_a_hostile_row_fails_its_call_and_the_calls_before_it_stand(row: str, why: str) -> None:
    for tagged in (False, True):
        results = read_effects(packed(ROW, row, ROW), 3, tagged=tagged)
        assert len(results) == 2 and isinstance(results[0], CallEffects)
        assert results[0].updates[0].timestamp == datetime(2026, 3, 1, 6, 15, tzinfo=UTC)
        assert isinstance(results[1], Malformed) and why in str(results[1])


def test_values_mean_what_json_makes_them_mean() -> None:
    """Keys that are numbers, booleans or null become the text JSON writes; bytes are no value, nor is a
    key JSON has no text for; integers beyond 64 bits come back whole; an aware time inside a value comes
    back as the same instant."""
    berlin = datetime(2026, 3, 1, 7, tzinfo=timezone(timedelta(hours=1)))

    def keys(ctx: FunctionContext) -> None:
        ctx.update_state(histogram={1: 5, 2.5: 1, False: 0, None: 2, "x": {3: [4]}}, big=2 ** 70, at=berlin)

    writer, (result,) = run_batch([keys])
    assert isinstance(result, CallEffects)
    assert result.updates[0].values["histogram"] == json.loads(json.dumps({1: 5, 2.5: 1, False: 0, None: 2,
                                                                          "x": {3: [4]}}))
    assert result.updates[0].values["big"] == 2 ** 70 and writer.tagged
    assert result.updates[0].values["at"] == berlin

    good = lambda ctx: ctx.update_state(level=1.0)  # noqa: E731
    for bad, why in ((lambda ctx: ctx.update_state(raw=b"\x00\x01"), "update_state: malformed update"),
                     (lambda ctx: ctx.emit("e", data={b"k": 1}), "emit"),
                     (lambda ctx: ctx.update_state(pair={(1, 2): 3}), "cannot be sent back to the engine")):
        _writer, results = run_batch([good, bad, good])
        assert len(results) == 2 and isinstance(results[0], CallEffects)
        assert isinstance(results[1], Malformed) and why in str(results[1])


def test_a_value_deeper_than_any_honest_one_fails_its_call() -> None:
    deep: Any = {1: 1}  # a key to make text, at the bottom of more lists than Python recurses through
    for _ in range(600):
        deep = [deep]
    document = packed(ROW, count=2) + msgpack.packb([[[{"x": deep}, None, None]], [], [], []])
    results = read_effects(document, 2, tagged=False)
    assert len(results) == 2 and isinstance(results[0], CallEffects) and isinstance(results[1], Malformed)


def test_a_row_with_an_extension_type_refuses_the_batch() -> None:
    row = msgpack.packb([[[{"x": msgpack.ExtType(5, b"payload")}, None, None]], [], [], []])
    with pytest.raises(ProtocolError, match="extension type 5"):
        read_effects(msgpack.Packer().pack_array_header(1) + row, 1, tagged=False)


@pytest.mark.parametrize("document", [
    b"", b"not json", b"{}", packed(ROW), packed(ROW, count=2)[:-3], packed(ROW, ROW) + b"\xc0",
    pickle.dumps([[], [], [], []]),
    packed('[[],[{"kind":"k","at":{"$twin":"pickle","v":"x"}}],[],[]]', ROW),
    packed('[[],[{"kind":"k","at":{"$twin":"int","v":"twelve"}}],[],[]]', ROW),
    packed('[[],[{"kind":"k","at":{"$twin":"datetime"}}],[],[]]', ROW),
    msgpack.Packer().pack_array_header(2) + b"\x91" * 100_000,  # deeper than the parser goes
    msgpack.Packer().pack_array_header(2) + b"\x94\x91\x93\x80"  # a timestamp far beyond the year 9999
    + b"\xc7\x0c\xff" + struct.pack(">Iq", 0, 10 ** 15) + b"\xc0\x90\x90\x90" + packed(ROW)[1:],
])
def test_a_batch_that_is_not_the_calls_it_claims_is_refused_whole(document: bytes) -> None:
    with pytest.raises(ProtocolError):
        read_effects(document, 2, tagged=True)
    if b"$twin" not in document:
        with pytest.raises(ProtocolError):
            read_effects(document, 2, tagged=False)


@pytest.mark.parametrize(("effect", "why"), [
    (lambda ctx: ctx.emit("probe", result="A" * 5000), "emit: an event of 5,0"),
    (lambda ctx: ctx.update_state(label="A" * 5000), "update_state: an update of 5,0"),
    (lambda ctx: ctx.start_workflow("w", text="A" * 5000), "start_workflow: a request of 5,0"),
    (lambda ctx: ctx.publish("out", [{"x": 1}, {"x": "A" * 5000}]), "publish: a record of 5,0"),
])
def test_an_effect_over_the_size_limit_fails_its_call_and_the_calls_before_it_stand(effect: Any, why: str) -> None:
    ctx = FunctionContext(twin_id="t", twin_name="n", function="f", parameters={})
    writer = EffectsWriter()
    small = [lambda c: c.emit("small", text="A" * 900), lambda c: c.publish("out", [{"x": "A" * 900}] * 20)]
    for call in (*small, effect, small[0]):
        events, requests, published = len(ctx.events), len(ctx.workflow_requests), len(ctx.published)
        call(ctx)
        writer.add(ctx, events, requests, published)
        ctx.updates = []
    results = read_effects(writer.document(), 4, tagged=writer.tagged, max_bytes=1000)
    assert [type(r) for r in results] == [CallEffects, CallEffects, Malformed]  # many small records are fine
    assert why in str(results[-1]) and "limit of 1,000 bytes per effect (function_effect_max_bytes)" in str(results[-1])
    assert all(isinstance(r, CallEffects) for r in read_effects(writer.document(), 4, tagged=writer.tagged))
