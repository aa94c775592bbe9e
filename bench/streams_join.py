"""What joining streams costs a function on arrival, beside the same records in one stream.

virgo-glitch's shape: one second of ten 4096-sample channels. Baseline: one stream whose records hold the ten
channels as array fields, read and turned into records as the function worker does (``hub.read`` +
``to_python``). Joined: the strain as one stream and nine channels as nine streams, the strain's records
read the same way and joined with their nine partners (``twinengine.streams.join.Joiner``, what the worker
does for a function with ``join``). Batches of 1, 16 and 128 seconds; per batch the median milliseconds of
each side by side and their ratio, and the joined side's cost per partner record. In process, on an
in-memory log: the join's own work, without the sandboxed call that follows either way. Every stream is
appended 16 seconds at a time; each batch joins with a new Joiner (its cursors start at the beginning, as
after a restart).

Usage: python bench/streams_join.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from twinengine.catalog.manifest import Manifest
from twinengine.streams import records as stream_records
from twinengine.streams.arrays import to_python
from twinengine.streams.backends.memory import MemoryLog
from twinengine.streams.hub import StreamHub, stream_key

CHANNELS = ["h", "seis_x", "seis_y", "seis_z", "mag_x", "mag_y", "mic", "laser_int", "laser_freq", "pitch"]
SAMPLES = 4096
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _array() -> dict[str, Any]:
    return {"type": "array", "items": "float", "length": SAMPLES}


def manifest() -> Manifest:
    streams: dict[str, Any] = {
        "frame": {"fields": {"time": {"type": "timestamp"}, **{c: _array() for c in CHANNELS}}},
        "strain": {"fields": {"time": {"type": "timestamp"}, "h": _array()}},
        **{c: {"fields": {"time": {"type": "timestamp"}, "x": _array()}} for c in CHANNELS[1:]}}
    return Manifest.model_validate({
        "name": "bench", "version": "1.0.0", "title": "bench", "domain": "bench", "authors": [{"name": "b"}],
        "license": "MIT", "streams": streams, "functions": {
            "veto": {"entrypoint": "bench.fns:veto", "stream": "strain",
                     "join": {"streams": CHANNELS[1:], "tolerance": "1ms"}}}})


def fill(hub: StreamHub, spec: Manifest, seconds: int, chunk: int = 16) -> None:
    """``seconds`` of every channel, appended ``chunk`` seconds at a time (as a data acquisition sends them)."""
    rng = np.random.default_rng(0)
    for first in range(0, seconds, chunk):
        times = [T0 + timedelta(seconds=first + i) for i in range(chunk)]
        data = {c: rng.normal(size=(chunk, SAMPLES)) for c in CHANNELS}
        frames = [{"time": t, **{c: data[c][i] for c in CHANNELS}} for i, t in enumerate(times)]
        hub.append(stream_key("tw", "frame"), stream_records.check_records(spec.streams["frame"], frames),
                   time_field="time")
        hub.append(stream_key("tw", "strain"), stream_records.check_records(
            spec.streams["strain"], [{"time": t, "h": data["h"][i]} for i, t in enumerate(times)]),
            time_field="time")
        for c in CHANNELS[1:]:
            hub.append(stream_key("tw", c), stream_records.check_records(
                spec.streams[c], [{"time": t, "x": data[c][i]} for i, t in enumerate(times)]), time_field="time")


def one_stream(hub: StreamHub, start: int, size: int) -> int:
    table = hub.read(stream_key("tw", "frame"), start=start, limit=size, time_field="time")
    return len(to_python(table)) if table is not None else 0


def joined(hub: StreamHub, spec: Manifest, start: int, size: int) -> int:
    from twinengine.streams.join import Joiner

    fn = spec.functions["veto"]
    assert fn.join is not None
    table = hub.read(stream_key("tw", "strain"), start=start, limit=size, time_field="time")
    records = to_python(table) if table is not None else []
    out = Joiner(spec, "strain", fn.join)(hub, "tw", table, records, now=math.inf)
    assert all(not r["_missing"] for r in out.records)
    return len(out.records)


def median_ms(work: Any, rounds: int) -> float:
    times = []
    for i in range(rounds):
        started = time.perf_counter()
        work(i)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    spec = manifest()
    hub = StreamHub(MemoryLog())
    total = 512
    fill(hub, spec, total)
    print(f"{'seconds per batch':>18} {'one stream ms':>14} {'ten joined ms':>14} {'ratio':>7} {'us per partner':>15}")
    for size in (1, 16, 128):
        def starts(i: int, size: int = size) -> int:
            return (i * size) % (total - size)

        base = median_ms(lambda i, size=size: one_stream(hub, starts(i), size), args.rounds)
        join = median_ms(lambda i, size=size: joined(hub, spec, starts(i), size), args.rounds)
        per_partner = (join - base) * 1000 / (size * (len(CHANNELS) - 1))
        print(f"{size:>18} {base:>14.2f} {join:>14.2f} {join / base:>7.2f} {per_partner:>15.1f}")


if __name__ == "__main__":
    main()
