"""Ingest with input quality checks against ingest without, side by side in one run.

Two streams of one twin with the same fields, on the same durable local log: ``checked`` declares the
river-reach style checks (two ranges, a spike per time, a flatline, a gap with a lateness limit, a
consistency rule, completeness), ``plain`` declares none. Each round sends the same JSON lines batch
(``--batch`` records, with a few faults in it) through the engine's ingest path (parse and validate,
flag, append, fsync) to one stream, then the other, alternating which goes first; the figures are records/s
over all rounds, the ratio checked / plain overall, and the median of the per-round ratios (robust to
bursts of load on a shared machine; goal: at least 0.8). Also printed: the cost of the checks
alone per record, and the same ratio for a key with four interleaved sources.

Usage: python bench/quality_ingest.py [--batch 5000] [--rounds 40]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from twinengine.catalog.manifest import Stream
from twinengine.config import Settings
from twinengine.quality.plan import CarriedState
from twinengine.streams import service
from twinengine.streams.backends import get_backend
from twinengine.streams.hub import StreamHub
from twinengine.twins.models import Twin

FIELDS = {"time": {"type": "timestamp"}, "station": {"type": "string"}, "rain": {"type": "float"},
          "level": {"type": "float"}, "low": {"type": "float"}}
CHECKS = [{"check": "range", "field": "level", "min": 0, "max": 15},
          {"check": "range", "field": "rain", "min": 0, "max": 300},
          {"check": "spike", "field": "level", "max_change": 0.5, "per": "15min", "severity": "bad"},
          {"check": "flatline", "field": "level", "records": 6},
          {"check": "gap", "every": "15min", "tolerance": "5min", "max_delay": "1d"},
          {"check": "consistency", "expr": "low <= level"},
          {"check": "completeness", "window": "6h", "min": 0.9}]
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=12)  # readings are recent: few are late


def lines(batch: int, round_: int, sources: int) -> bytes:
    """One batch of gauge readings, 15 minutes apart per source, with a spike, a stuck run and a gap."""
    out = []
    for i in range(batch):
        n = round_ * batch + i
        step = n // sources
        if i == batch // 3:  # a gap: skip nothing in the body, jump the clock instead
            step += 4
        level = 1.0 + 0.001 * (step % 500)
        if i == batch // 2:
            level += 3.0
        if batch // 4 <= i < batch // 4 + 8:
            level = 1.25
        out.append(json.dumps({"time": (T0 + timedelta(minutes=15 * step)).isoformat(), "station": f"S{n % sources}",
                               "rain": 0.1 * (n % 7), "level": round(level, 4), "low": 0.5}))
    return ("\n".join(out) + "\n").encode()


def run(batch: int, rounds: int, sources: int, root: Path) -> tuple[float, float, float]:
    settings = Settings(data_dir=root / f"data-{sources}")
    hub = StreamHub(get_backend("local").from_settings(settings))
    twin = Twin(id=f"tw-bench{sources}", name="bench")
    declared = {"checked": Stream.model_validate({"key": "station", "fields": FIELDS, "quality": CHECKS}),
                "plain": Stream.model_validate({"key": "station", "fields": FIELDS})}
    bodies = [lines(batch, r, sources) for r in range(rounds + 1)]  # the first one warms up
    spent = {"checked": 0.0, "plain": 0.0}
    paired: list[float] = []  # per round: plain time / checked time on the same batch
    try:
        for name in declared:  # warm up: caches, files, the plan
            service.append_table(hub, twin, name, declared[name], service.parse_body(declared[name], bodies[0],
                                                                                     "application/x-ndjson"))
        for r, payload in enumerate(bodies[1:]):
            order = ["checked", "plain"] if r % 2 == 0 else ["plain", "checked"]
            took = {}
            for name in order:
                started = time.perf_counter()
                table = service.parse_body(declared[name], payload, "application/x-ndjson")
                service.append_table(hub, twin, name, declared[name], table)
                took[name] = time.perf_counter() - started
                spent[name] += took[name]
            paired.append(took["plain"] / took["checked"])
        plan = service.quality_plan(declared["checked"])
        assert plan is not None
        table = service.parse_body(declared["checked"], bodies[-1], "application/x-ndjson")
        started = time.perf_counter()
        for _ in range(20):
            plan.apply(table, arrival_us=time.time_ns() // 1000, state=CarriedState())
        alone = (time.perf_counter() - started) / 20 / table.num_rows
        key = f"{twin.id}/checked"
        flags = hub.read(key, start=hub.end(key) - batch, limit=batch).column("_quality").to_pylist()
        assert {"suspect", "bad"} <= set(flags), "the faults were not flagged"
    finally:
        hub.close()
    total = batch * rounds
    return total / spent["checked"], total / spent["plain"], alone, statistics.median(paired)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="twin-bench-quality-") as tmp:
        for sources in (1, 4):
            print(f"ingest of {args.rounds} batches of {args.batch} JSON lines, {sources} source(s) per stream "
                  f"(durable local log)...", flush=True)
            checked, plain, alone, median = run(args.batch, args.rounds, sources, Path(tmp))
            print(f"  without checks: {plain:12,.0f} records/s")
            print(f"  with checks:    {checked:12,.0f} records/s   ratio {checked / plain:.2f}x overall, "
                  f"{median:.2f}x median of paired rounds (goal >= 0.8x)")
            print(f"  the checks alone: {alone * 1e9:,.0f} ns per record", flush=True)


if __name__ == "__main__":
    main()
