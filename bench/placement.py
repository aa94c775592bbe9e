"""Placement by data against round-robin, side by side in one run.

Two compute sites, ``a`` and ``b`` (both computing in the engine's process, so only where the data is
differs), each with a lake endpoint near it; ``b``'s endpoint is behind a throttled link (the endpoint's
``rate_limit`` option, ``--rate`` bytes per second). An ensemble of ``--members`` members (runs of one
workflow that differ in one parameter, queued at once, ``--parallel`` at a time, run cache off) reads one
input dataset of ``--mb`` MB that only ``a``'s endpoint holds. The members are placed (1) by the engine
and (2) round-robin (member i pinned to ``a`` or ``b`` in turn). Each mode reads its own copy of the input
(the same bytes under another name), so neither finds what the other staged. Printed: the wall time from
the first submission to the last member's end, the bytes moved (the members' usage records' bytes
transferred, checked against the lake's transfers of the input), and where the members ran.

Usage: python bench/placement.py [--members 6] [--mb 40] [--rate 10e6] [--parallel 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime


def write_input(path: Path, megabytes: float) -> None:
    """Hourly float32 fields on a square grid, about ``megabytes`` MB as netCDF (uncompressed)."""
    hours = 48
    side = max(4, int((megabytes * 1e6 / 4 / hours) ** 0.5))
    rng = np.random.default_rng(7)
    data = rng.gamma(0.8, 3.0, (hours, side, side)).astype("float32")
    ds = xr.Dataset({"rain": (("time", "lat", "lon"), data)},
                    coords={"time": pd.date_range("2026-03-01", periods=hours, freq="h"),
                            "lat": np.linspace(46.0, 47.0, side), "lon": np.linspace(7.0, 8.2, side)})
    ds.to_netcdf(path, engine="h5netcdf")


def member_graph(collection: str, member: int) -> dict[str, Any]:
    """load -> daily mean -> + member -> netCDF."""
    return {"process_graph": {
        "load": {"process_id": "load_collection", "arguments": {"id": collection, "spatial_extent": None,
                                                                "temporal_extent": None}},
        "daily": {"process_id": "aggregate_temporal_period", "arguments": {
            "data": {"from_node": "load"}, "period": "day",
            "reducer": {"process_graph": {"r": {"process_id": "mean", "arguments": {"data": {"from_parameter":
                                                                                               "data"}},
                                                "result": True}}}}},
        "each": {"process_id": "apply", "arguments": {"data": {"from_node": "daily"}, "process": {"process_graph": {
            "op": {"process_id": "add", "arguments": {"x": {"from_parameter": "x"}, "y": member}, "result": True}}}}},
        "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "each"}, "format": "netCDF"},
                 "result": True}}}


def run_members(client: Client, collection: str, members: int, pins: list[str | None]
                ) -> tuple[float, list[str], list[str]]:
    """Queue every member at once, wait for all; the wall time, the site each ran on and the run ids."""
    started = time.perf_counter()
    ids = [client.workflows.submit(member_graph(collection, i), no_cache=True,
                                   options={"site": pins[i]} if pins[i] else {}).id for i in range(members)]
    sites = []
    for run_id in ids:
        final = client.workflows.wait(run_id, poll=0.05)
        if final.status != "finished":
            raise RuntimeError(f"run {run_id} ended as {final.status}: {final.error}")
        sites.append(str((final.staging or {}).get("site") or "?"))
    return time.perf_counter() - started, sites, ids


def charged(client: Client, run_ids: list[str]) -> int:
    """Bytes the runs' usage records say their staging transferred."""
    wanted = set(run_ids)
    return sum(r.bytes_transferred for r in client.compute.usage_records().items if r.run_id in wanted)


def moved(client: Client, dataset: str) -> int:
    """Bytes the lake's finished transfers moved for ``dataset``'s files."""
    return sum(t.bytes_done for t in client.lake.transfers(state="DONE", limit=1000)
               if t.did.startswith(dataset + "/"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=6)
    parser.add_argument("--mb", type=float, default=40.0, help="size of the input, MB")
    parser.add_argument("--rate", type=float, default=10e6, help="b's link, bytes per second")
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-placement-"))
    settings = Settings(data_dir=root / "data", workflow_workers=args.parallel, warm_routes=False)
    runtime = Runtime.from_settings(settings)
    try:
        token = runtime.start()
        assert token is not None
        with InProcessServer(create_app(runtime=runtime)) as server, Client(server.url, token) as client:
            lake = settings.data_dir / "lake"
            client.lake.add_endpoint("a-disk", "file", str(lake / "a-disk"))
            client.lake.add_endpoint("b-disk", "file", str(lake / "b-disk"), options={"rate_limit": str(args.rate)})
            for site in ("a", "b"):
                client.compute.add_site(site, "local", cores=4, memory_bytes=2**33, endpoints=[f"{site}-disk"])
            source = root / "input.nc"
            write_input(source, args.mb)
            size = source.stat().st_size
            modes: dict[str, list[str | None]] = {
                "engine": [None] * args.members,
                "round-robin": [("a", "b")[i % 2] for i in range(args.members)]}
            for mode in modes:
                client.lake.add_dataset(f"bench:input-{mode}")
                client.lake.upload(source, f"bench:input-{mode}/input.nc", endpoint="a-disk",
                                   dataset=f"bench:input-{mode}")
            run_members(client, "bench.input-engine", 1, [None])  # warm: routes, the first opening
            print(f"{args.members} members reading {size / 1e6:.1f} MB held only on a-disk (site a); b-disk's "
                  f"link limited to {args.rate / 1e6:.1f} MB/s; {args.parallel} at a time")
            print(f"{'placement':<12} {'wall s':>8} {'bytes moved':>13}  members per site")
            for mode, pins in modes.items():
                before = moved(client, f"bench:input-{mode}")
                seconds, sites, ids = run_members(client, f"bench.input-{mode}", args.members, pins)
                per_site = " ".join(f"{s}:{n}" for s, n in sorted(Counter(sites).items()))
                by_records, by_lake = charged(client, ids), moved(client, f"bench:input-{mode}") - before
                print(f"{mode:<12} {seconds:8.2f} {by_records:13d}  {per_site}")
                if by_records != by_lake:
                    print(f"  (the lake's transfers of the input moved {by_lake} bytes)")
    finally:
        runtime.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
