"""What a list of runs costs when the runs hold large values, against the same list of runs with small values,
side by side on one ``twin serve``; and what a refused synchronous result leaves in the data dir.

User A's ``--runs`` batch runs each end with a JSON value of ``--mib`` MiB (an array of 1 kB strings); user B's as
many with a value of a few bytes. ``GET /api/v1/runs?limit=N`` is timed for each user (median of ``--repeat``),
with the bytes it answered. Then ``POST /openeo/1.2/result`` with a graph whose result is 4x
``sync_max_result_bytes`` (lowered to 1 MiB here) is refused, and the data dir is measured before and after
(the store's write-ahead log folded into its file).

Usage: python bench/run_listing.py [--runs 20] [--mib 4] [--repeat 10]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
from served import TwinServe  # beside this script

from twinengine.bootstrap import prepare_store
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.runtime import Runtime

SYNC_LIMIT = 1 << 20


def strings(size: int) -> dict[str, Any]:
    return {"process_graph": {"a": {"process_id": "array_create", "result": True,
                                    "arguments": {"data": ["A" * 1000], "repeat": max(1, size // 1004)}}}}


def disk(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "twin.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(f.stat().st_size for f in data_dir.rglob("*") if f.is_file())


def listing(url: str, token: str, runs: int, repeat: int) -> tuple[float, int]:
    """Median seconds and bytes of ``GET /api/v1/runs?limit=runs``."""
    times, size = [], 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600) as http:
        for _ in range(repeat):
            start = time.perf_counter()
            answer = http.get("/api/v1/runs", params={"limit": runs})
            times.append(time.perf_counter() - start)
            answer.raise_for_status()
            size = len(answer.content)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mib", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    os.environ["TWIN_SYNC_MAX_RESULT_BYTES"] = str(SYNC_LIMIT)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", sync_max_result_bytes=SYNC_LIMIT)
        runtime = Runtime.from_settings(settings)
        try:
            admin_token = prepare_store(runtime.db, runtime.issuer, settings)
        finally:
            runtime.close()
        with TwinServe(settings) as url, Client(url, admin_token) as admin:
            tokens = {who: admin.create_token(who, "user").token for who in ("ana", "bob")}
            sizes = {"ana": int(args.mib * (1 << 20)), "bob": 10}
            for who, size in sizes.items():
                with Client(url, tokens[who]) as client:
                    made = [client.workflows.submit(strings(size)).id for _ in range(args.runs)]
                    for run_id in made:
                        run = client.workflows.wait(run_id, poll=0.2, timeout=600)
                        if run.status != "finished":
                            raise SystemExit(f"run {run_id} ended as {run.status}: {run.error}")
            small_s, small_b = listing(url, tokens["bob"], args.runs, args.repeat)
            large_s, large_b = listing(url, tokens["ana"], args.runs, args.repeat)
            before = disk(settings.data_dir)
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['ana']}"},
                              timeout=600) as http:
                refused = http.post("/openeo/1.2/result", json={"process": strings(4 * SYNC_LIMIT)})
            grew = disk(settings.data_dir) - before
    print(f"GET /api/v1/runs?limit={args.runs}, median of {args.repeat}:")
    print(f"  runs with values of 10 B:       {small_s * 1000:8.1f} ms, {small_b:,} bytes")
    print(f"  runs with values of {args.mib:g} MiB:     {large_s * 1000:8.1f} ms, {large_b:,} bytes  "
          f"(x{large_s / small_s:.2f} the time, x{large_b / small_b:.2f} the bytes)")
    print(f"refused /result of {4 * SYNC_LIMIT:,} bytes (limit {SYNC_LIMIT:,}): {refused.status_code} "
          f"{refused.json().get('code')}; the data dir grew by {grew:,} bytes")


if __name__ == "__main__":
    main()
