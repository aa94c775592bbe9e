"""Fast channels as array fields, against the same samples as scalar records, measured in one run.

Ten channels at 4096 Hz for ``--seconds`` seconds go through validation and a durable append to the local
stream log (fsync per batch), in batches of one second:

- baseline: one record per sample instant with ten float fields (4096 records per second of data);
- arrays: one record per second with ten ``array`` fields of 4096 samples.

Both as JSON lines and as Arrow IPC. Printed: samples per second through validation alone (CPU) and through
validation and the durable append (the best of ``--repeats`` runs, interleaved, as fsync times vary on a
shared disk), the ratios arrays / baseline (above 1: arrays are faster), and the body sizes.

Usage: python bench/stream_arrays.py [--seconds 30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from twinengine.catalog.manifest import Stream
from twinengine.streams import records
from twinengine.streams.backends.local import LocalLog
from twinengine.streams.hub import StreamHub

RATE = 4096
CHANNELS = [f"c{i}" for i in range(10)]
SCALAR = Stream.model_validate({"fields": {"time": {"type": "timestamp"},
                                           **{c: {"type": "float"} for c in CHANNELS}}})
ARRAYS = Stream.model_validate({"fields": {"time": {"type": "timestamp"},
                                           **{c: {"type": "array", "items": "float", "length": RATE}
                                              for c in CHANNELS}}})
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def bodies(seconds: int) -> dict[str, list[bytes]]:
    rng = np.random.default_rng(0)
    out: dict[str, list[bytes]] = {"scalar json": [], "arrays json": [], "scalar arrow": [], "arrays arrow": []}
    for s in range(seconds):
        data = {c: np.round(rng.normal(size=RATE), 6) for c in CHANNELS}
        start = T0 + timedelta(seconds=s)
        times = [start + timedelta(microseconds=round(i * 1e6 / RATE)) for i in range(RATE)]
        stamps = [t.isoformat().replace("+00:00", "Z") for t in times]
        out["scalar json"].append("".join(
            json.dumps({"time": stamps[i], **{c: float(data[c][i]) for c in CHANNELS}}) + "\n"
            for i in range(RATE)).encode())
        out["arrays json"].append((json.dumps({"time": stamps[0], **{c: data[c].tolist() for c in CHANNELS}})
                                   + "\n").encode())
        out["scalar arrow"].append(_ipc(pa.table({"time": pa.array(times, pa.timestamp("us", tz="UTC")),
                                                  **{c: pa.array(data[c]) for c in CHANNELS}})))
        out["arrays arrow"].append(_ipc(pa.table({
            "time": pa.array([start], pa.timestamp("us", tz="UTC")),
            **{c: pa.FixedSizeListArray.from_arrays(pa.array(data[c]), RATE) for c in CHANNELS}})))
    return out


def validate(kind: str, batches: list[bytes]) -> float:
    """Samples per second through parsing and validation alone."""
    declared = ARRAYS if kind.startswith("arrays") else SCALAR
    parse = records.parse_arrow if kind.endswith("arrow") else records.parse_json_lines
    start = time.perf_counter()
    for body in batches:
        parse(declared, body)
    return len(batches) * RATE * len(CHANNELS) / (time.perf_counter() - start)


def run(kind: str, batches: list[bytes], root: Path) -> float:
    """Samples per second: parse and validate each batch, then append it durably."""
    declared = ARRAYS if kind.startswith("arrays") else SCALAR
    parse = records.parse_arrow if kind.endswith("arrow") else records.parse_json_lines
    hub = StreamHub(LocalLog(Path(tempfile.mkdtemp(prefix=kind.replace(" ", "-"), dir=root))))
    try:
        start = time.perf_counter()
        for body in batches:
            hub.append("bench/channels", parse(declared, body), time_field="time")
        elapsed = time.perf_counter() - start
    finally:
        hub.close()
    return len(batches) * RATE * len(CHANNELS) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=30, help="seconds of data (one batch each)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each path; the best counts")
    args = parser.parse_args()
    made = bodies(args.seconds)
    checked: dict[str, float] = {}
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-arrays-") as tmp:
        for _ in range(args.repeats):
            for kind, batches in made.items():
                checked[kind] = max(checked.get(kind, 0.0), validate(kind, batches))
                rates[kind] = max(rates.get(kind, 0.0), run(kind, batches, Path(tmp)))
    print(f"{'path':14s} {'validated':>12s} {'+ durable':>12s}   body")
    for kind, rate in rates.items():
        size = sum(map(len, made[kind])) / len(made[kind]) / 1e6
        print(f"{kind:14s} {checked[kind] / 1e6:8.2f} M/s {rate / 1e6:8.2f} M/s   {size:5.2f} MB per second of data")
    for form in ("json", "arrow"):
        print(f"arrays / baseline ({form}): validated {checked[f'arrays {form}'] / checked[f'scalar {form}']:.1f}x, "
              f"+ durable {rates[f'arrays {form}'] / rates[f'scalar {form}']:.1f}x")


if __name__ == "__main__":
    main()
