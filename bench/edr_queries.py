"""EDR query latency against the floor of reading exactly the chunks each query touches, side by side.

Builds (once, then reuses) a chunked zarr cube of hourly 2 m temperature for one year on a 1° global grid
(8760 x 180 x 360 float32 = 2.27 GB uncompressed, chunks time=168, lat=45, lon=90, zstd), then for each
query prints, measured in this process and run:

- floor: the chunks the query touches read and decoded directly with zarr, in each round the faster of
  one ``get_block_selection`` over their box and chunk by chunk on a thread pool of 4;
- ours, cold: the whole HTTP round trip to a served engine (auth, planning, chunk reads, CoverageJSON),
  with the decoded-chunk cache emptied first (its memory kept as spare buffers to decode into, as a full
  cache's evictions are in service; "fresh" is the same with the spare buffers dropped too, so that every
  chunk is decoded into new memory), from the standard library's ``http.client`` on one
  keep-alive connection (a lean client, so that a client library's own parsing is not counted as the
  engine's: httpx adds about 0.5 ms a request, and 12 ms reading the 10 MB continental answer);
- ours, hot: the same again with the cache warm (floor, cold and hot take turns in every round, so that
  load from elsewhere on the machine falls on all three);
- bytes read by the engine vs the encoded size of exactly the chunks the query needs;
- ours in process: the same extraction and CoverageJSON without HTTP, cold, to set beside
- pygeoapi's xarray-edr provider (in-process, its CoverageJSON serialised with json.dumps) on the queries
  it supports, when pygeoapi is importable (``pip install pygeoapi``, or on PYTHONPATH);
- work/decode: the query's chunks decoded one by one on one thread plus its answer written (CoverageJSON
  of the values already read, with orjson), over the decoding alone: the ratio to the floor of an engine
  that decodes these chunks and writes this JSON, spends nothing on anything else, and spreads its work
  over the cores exactly as well as the floor spreads its decoding (decoding does not scale perfectly:
  on two vCPUs, two threads decode 20 chunks only 1.3-1.5 times as fast as one);
- the per-request overhead: a trivial authenticated EDR request, and one refused for want of a token;
- the one-week position, cold, while continental answers are written on another connection, beside the
  same alone and beside the writer not handing the GIL over between pieces (how the engine wrote before).

The floor is decoded into memory from the C allocator, and what that costs depends on the process's
history: glibc hands blocks over 128 KiB out as fresh pages until frees raise its threshold, and each
fresh page is a page fault (on a 2-vCPU microVM the same 20 chunks took 43 ms fault-free and 75 ms with
8,700 faults). ``--keep-freed-memory`` runs the bench with glibc keeping freed memory for reuse
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``), so that neither side pays page faults: the
stricter floor. Without it the allocator is as ``twin serve`` runs it.

Usage: python bench/edr_queries.py [--repeat 15] [--dir ~/.cache/twinengine-bench] [--only 'one week']
                                   [--keep-freed-memory]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import shapely
import xarray as xr
import zarr

from twinengine.access import covjson
from twinengine.access.covjson import dumps, to_covjson
from twinengine.access.query import parse_datetime, parse_wkt
from twinengine.access.reads import usable_cores
from twinengine.access.service import Query, run_query
from twinengine.api import create_app
from twinengine.auth.principal import SYSTEM
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime

CHUNKS = (168, 45, 90)
MONTH = "2025-06-01T00:00:00Z/2025-06-30T23:00:00Z"
POLYGON = "POLYGON((5 43, 12 42.5, 17 45, 16 48.5, 10 49, 6 47.5, 5 43))"
QUERIES: list[dict[str, Any]] = [
    {"name": "position, full year", "type": "position", "coords": "POINT(10.3 45.7)"},
    {"name": "position, one week", "type": "position", "coords": "POINT(10.3 45.7)",
     "datetime": "2025-06-02T00:00:00Z/2025-06-08T23:00:00Z"},
    {"name": "small bbox cube, one month", "type": "cube", "bbox": "5,44,10,48", "datetime": MONTH},
    {"name": "polygon area, one month", "type": "area", "coords": POLYGON, "datetime": MONTH},
    {"name": "continental cube, one month", "type": "cube", "bbox": "-15,28,45,71", "datetime": MONTH},
]


def build_cube(path: Path) -> None:
    time_axis = pd.date_range("2025-01-01", periods=8760, freq="h")
    lat = np.arange(-89.5, 90, 1.0)
    lon = np.arange(-179.5, 180, 1.0)
    template = xr.Dataset(
        {"t2m": (("time", "lat", "lon"), np.zeros((0, lat.size, lon.size), dtype="float32"),
                 {"units": "degC", "standard_name": "air_temperature", "long_name": "2 m temperature"})},
        coords={"time": time_axis[:0], "lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"})}, attrs={"title": "Benchmark cube"})
    rng = np.random.default_rng(0)
    base = (28 - 40 * np.sin(np.radians(lat)) ** 2)[:, None] + 3 * np.cos(np.radians(lon))[None, :]
    for start in range(0, time_axis.size, CHUNKS[0]):
        t = time_axis[start:start + CHUNKS[0]]
        hours = np.arange(start, start + t.size)
        season = 8 * np.sin(2 * np.pi * (hours / 8760 - 0.3))[:, None, None] * np.sign(lat)[None, :, None]
        diurnal = 4 * np.sin(2 * np.pi * (hours % 24)[:, None, None] / 24 + np.radians(lon)[None, None, :])
        data = base[None] + season + diurnal + rng.normal(0, 0.8, (t.size, lat.size, lon.size))
        slab = xr.Dataset({"t2m": (("time", "lat", "lon"), np.round(data, 2).astype("float32"),
                                   template.t2m.attrs)},
                          coords={"time": t, "lat": template.lat, "lon": template.lon}, attrs=template.attrs)
        if start == 0:
            slab.to_zarr(path, mode="w", consolidated=False, encoding={"t2m": {"chunks": CHUNKS}})
        else:
            slab.to_zarr(path, append_dim="time", consolidated=False)
        print(f"\rbuilding {path.name}: {start + t.size}/{time_axis.size} hours", end="", flush=True)
    print()


def touched_blocks(ds: xr.Dataset, q: dict[str, Any]) -> list[tuple[int, int, int]]:
    """The chunks a query needs, computed here from coordinates alone (independently of the engine)."""
    times = ds.time.values
    if "datetime" in q:
        f = parse_datetime(q["datetime"])
        assert f is not None and f.start is not None and f.end is not None
        ti = np.flatnonzero((times >= f.start) & (times <= f.end))
    else:
        ti = np.arange(times.size)
    lat, lon = ds.lat.values, ds.lon.values
    if q["type"] == "position":
        point = parse_wkt(q["coords"], allowed=("POINT",))
        cells = {(int(np.abs(lat - point.y).argmin()), int(np.abs(lon - point.x).argmin()))}
    elif q["type"] == "cube":
        x0, y0, x1, y1 = (float(v) for v in q["bbox"].split(","))
        yi = np.flatnonzero((lat >= y0) & (lat <= y1))
        xi = np.flatnonzero((lon >= x0) & (lon <= x1))
        cells = {(int(j), int(i)) for j in yi for i in xi}
    else:
        polygon = parse_wkt(q["coords"], allowed=("POLYGON",))
        glon, glat = np.meshgrid(lon, lat)
        rows, cols = np.nonzero(shapely.intersects_xy(polygon, glon, glat))
        cells = set(zip(rows.tolist(), cols.tolist(), strict=True))
    spatial = {(j // CHUNKS[1], i // CHUNKS[2]) for j, i in cells}
    return sorted({(int(t), by, bx) for t in np.unique(ti // CHUNKS[0]) for by, bx in spatial})


def floors(array: zarr.Array[Any], blocks: list[tuple[int, int, int]], pool: ThreadPoolExecutor
           ) -> dict[str, Callable[[], Any]]:
    """Two ways of decoding exactly ``blocks`` with zarr; the floor is whichever is faster in each round:
    one ``get_block_selection`` over their box (all the queries here touch a box of chunks), and each chunk
    on its own on a thread pool (results dropped as they come, so no memory is held)."""
    ts, ys, xs = (sorted({b[k] for b in blocks}) for k in range(3))
    assert len(blocks) == len(ts) * len(ys) * len(xs), "the queries here touch a box of chunks"
    sel = (slice(ts[0], ts[-1] + 1), slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))

    def chunk_by_chunk() -> None:
        for _ in pool.map(lambda b: array.blocks[b], blocks):
            pass

    return {"floor, one box": lambda: array.get_block_selection(sel), "floor, chunk by chunk": chunk_by_chunk}


def decode_one_by_one(array: zarr.Array[Any], blocks: list[tuple[int, int, int]]) -> Callable[[], None]:
    """The query's chunks decoded on this thread alone, one after another: the decoding's CPU time."""
    def run() -> None:
        for block in blocks:
            array.blocks[block]
    return run


KEEP_FREED = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


def encoded_bytes(root: Path, blocks: list[tuple[int, int, int]]) -> int:
    return sum((root / "t2m" / "c" / str(t) / str(y) / str(x)).stat().st_size for t, y, x in blocks)


def timed(fn: Callable[[], Any], repeat: int, before: Callable[[], None] | None = None) -> float:
    samples = []
    for _ in range(repeat):
        if before:
            before()
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def interleaved(runs: dict[str, tuple[Callable[[], Any], Callable[[], None] | None]], repeat: int
                ) -> dict[str, list[float]]:
    """Seconds per round of each run, taking turns within every round, so that load from other processes
    on the machine falls on all of them alike rather than on whichever happened to run at a bad moment."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, (fn, before) in runs.items():
            if before:
                before()
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def pygeoapi_runner(path: Path) -> Callable[[dict[str, Any]], Callable[[], Any] | None] | None:
    try:
        from pygeoapi.provider.xarray_edr import XarrayEDRProvider  # type: ignore[import-not-found]
    except ImportError:
        return None
    provider = XarrayEDRProvider({"name": "xarray-edr", "type": "edr", "data": str(path),
                                  "format": {"name": "zarr", "mimetype": "application/zip"},
                                  "x_field": "lon", "y_field": "lat", "time_field": "time"})

    def make(q: dict[str, Any]) -> Callable[[], Any] | None:
        when = q.get("datetime")
        if q["type"] == "position":
            point = shapely.from_wkt(q["coords"])
            return lambda: json.dumps(provider.position(wkt=point, datetime_=when, select_properties=["t2m"])).encode()
        if q["type"] == "cube":
            bbox = [float(v) for v in q["bbox"].split(",")]
            return lambda: json.dumps(provider.cube(bbox=bbox, datetime_=when, select_properties=["t2m"])).encode()
        return None  # area (polygon), radius, trajectory, corridor: not offered by the xarray-edr provider

    return make


def beside_large_answers(port: int, headers: dict[str, str], clear: Callable[[], None], repeat: int
                         ) -> dict[str, float]:
    """Median ms of the one-week position, cold, alone and while another connection keeps asking for the
    continental cube (its answers written piece by piece), with and without the writer offering the GIL
    between pieces; the three take turns in every round."""
    week, continental = QUERIES[1], QUERIES[4]

    def url(q: dict[str, Any]) -> str:
        return f"/edr/collections/cube/{q['type']}?" + urlencode({k: v for k, v in q.items()
                                                                  if k not in ("name", "type")})

    def fetch(conn: http.client.HTTPConnection, path: str) -> None:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200

    small = http.client.HTTPConnection("127.0.0.1", port)
    offer = covjson._offer_gil
    samples: dict[str, list[float]] = {"alone": [], "offered": [], "not offered": []}
    for _ in range(repeat):
        for arm in samples:
            covjson._offer_gil = (lambda: None) if arm == "not offered" else offer
            stop = threading.Event()
            big = http.client.HTTPConnection("127.0.0.1", port)

            def loop(big: http.client.HTTPConnection = big, stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    fetch(big, url(continental))

            writer = threading.Thread(target=loop) if arm != "alone" else None
            if writer is not None:
                writer.start()
                time.sleep(0.03)  # a continental answer under way
            for _ in range(3):
                clear()
                start = time.perf_counter()
                fetch(small, url(week))
                samples[arm].append(time.perf_counter() - start)
            stop.set()
            if writer is not None:
                writer.join()
            big.close()
    covjson._offer_gil = offer
    return {arm: statistics.median(values) * 1000 for arm, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--only", default="", help="run only the queries whose name contains this text")
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("TWIN_BENCH_DIR",
                                                                        Path.home() / ".cache" / "twinengine-bench")))
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="run with glibc keeping freed memory for reuse (no page faults on either side)")
    args = parser.parse_args()
    if args.keep_freed_memory and any(os.environ.get(k) != v for k, v in KEEP_FREED.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **KEEP_FREED})
    folder = args.dir / "collections"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cube.zarr"
    if not (path / "zarr.json").exists():
        build_cube(path)
    array = zarr.open_group(str(path), mode="r")["t2m"]
    assert isinstance(array, zarr.Array)
    ds = xr.open_zarr(path, consolidated=False)
    gb = ds.t2m.size * 4 / 1e9
    print(f"cube: {dict(ds.sizes)} float32 = {gb:.2f} GB uncompressed, chunks {CHUNKS}, "
          f"{sum(f.stat().st_size for f in (path / 't2m').rglob('*') if f.is_file()) / 1e9:.2f} GB on disk")
    pygeoapi = pygeoapi_runner(path)
    rows = []
    cores = usable_cores()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "engine", collections_dir=folder, edr_max_values=50_000_000)
        runtime = Runtime.from_settings(settings)
        token = runtime.start()
        assert token is not None
        access = runtime.access
        try:
            with (InProcessServer(create_app(runtime=runtime)) as server, Client(server.url, token) as client,
                  ThreadPoolExecutor(4) as pool):
                conn = http.client.HTTPConnection("127.0.0.1", server.port)
                headers = {"Authorization": f"Bearer {token}"}

                def get(path: str, params: dict[str, Any] | None = None, auth: bool = True) -> tuple[int, bytes]:
                    target = path + ("?" + urlencode(params) if params else "")
                    try:
                        conn.request("GET", target, headers=headers if auth else {})
                        response = conn.getresponse()
                    except (http.client.RemoteDisconnected, ConnectionError, http.client.CannotSendRequest):
                        # the server closed the idle keep-alive connection (uvicorn's 5 s) while another
                        # side ran long (pygeoapi's continental query): connect again and ask once more
                        conn.close()
                        conn.request("GET", target, headers=headers if auth else {})
                        response = conn.getresponse()
                    return response.status, response.read()

                trivial = timed(lambda: get("/edr/conformance"), 300)
                refused = timed(lambda: get("/edr/conformance", auth=False), 300)
                with_httpx = timed(lambda: client._http.get("/edr/conformance", headers=headers), 300)
                for q in [q for q in QUERIES if args.only in q["name"]]:
                    blocks = touched_blocks(ds, q)
                    ways = floors(array, blocks, pool)
                    for way in ways.values():
                        way()  # page cache warm for every side
                    params = {k: v for k, v in q.items() if k not in ("name", "type")}

                    def ours(q: dict[str, Any] = q, params: dict[str, Any] = params) -> int:
                        status, body = get(f"/edr/collections/cube/{q['type']}", params)
                        assert status == 200, body[:300]
                        return len(body)

                    size = ours()
                    geometry = shapely.from_wkt(q["coords"]) if "coords" in q else None
                    query = Query(kind=q["type"], geometry=geometry, datetime=parse_datetime(q.get("datetime")),
                                  bbox=tuple(float(v) for v in q["bbox"].split(",")) if "bbox" in q else None)

                    def in_process(query: Query = query) -> int:
                        extraction = run_query(access, principal=SYSTEM, collection_id="cube", query=query)
                        return len(dumps(to_covjson(extraction)))

                    done = run_query(access, principal=SYSTEM, collection_id="cube", query=query).complete()

                    def write(done: Any = done) -> int:
                        return len(dumps(to_covjson(done)))

                    def drop_spare_buffers_too() -> None:
                        access.cache.clear()
                        access.cache.spare.clear()

                    runs: dict[str, tuple[Callable[[], Any], Callable[[], None] | None]] = {
                        **{name: (way, None) for name, way in ways.items()}, "cold": (ours, access.cache.clear),
                        "fresh": (ours, drop_spare_buffers_too),
                        "hot": (ours, None), "in-process": (in_process, access.cache.clear),
                        "decode one by one": (decode_one_by_one(array, blocks), None), "write": (write, None)}
                    if pygeoapi is not None and (call := pygeoapi(q)) is not None:
                        call()
                        runs["pygeoapi"] = (call, None)
                    rounds = interleaved(runs, args.repeat)
                    rounds["floor"] = [min(pair) for pair in zip(*(rounds[name] for name in ways), strict=True)]
                    floor_s, cold, hot, inproc = (statistics.median(rounds[k])
                                                  for k in ("floor", "cold", "hot", "in-process"))
                    theirs = statistics.median(rounds["pygeoapi"]) if "pygeoapi" in rounds else None
                    # the ratio of each round (floor and ours measured back to back), then their median
                    ratio = statistics.median(c / f for c, f in zip(rounds["cold"], rounds["floor"], strict=True))
                    fresh = statistics.median(c / f for c, f in zip(rounds["fresh"], rounds["floor"], strict=True))
                    cpu = statistics.median((d + w) / d for d, w in zip(
                        rounds["decode one by one"], rounds["write"], strict=True))
                    access.cache.clear()
                    extraction = run_query(access, principal=SYSTEM, collection_id="cube", query=query)
                    read, minimal = extraction.stats.bytes_read, encoded_bytes(path / "", blocks)
                    rows.append((q["name"], extraction.values, size, len(blocks), floor_s, cold, ratio, fresh, cpu,
                                 hot, inproc, read, minimal, theirs))
                    print(f"  measured {q['name']}", flush=True)
                mixed = beside_large_answers(server.port, headers, access.cache.clear, args.repeat) \
                    if not args.only else None
        finally:
            runtime.close()
    allocator = "glibc keeping freed memory" if args.keep_freed_memory else "the default allocator"
    print(f"\nEDR queries on a {gb:.2f} GB cube, {cores} cores, {allocator}; medians of {args.repeat} "
          "interleaved rounds "
          "(cold/floor: median of the per-round ratios); cold, hot = HTTP round trip incl. auth and CoverageJSON;\n"
          "fresh = cold with no spare buffers either (every chunk decoded into new memory);\n"
          "work/decode = (the chunks decoded one by one on one thread + the answer written) / the decoding alone;\n"
          "inproc = the same extraction and CoverageJSON in process, cold, as pygeoapi is measured\n")
    head = (f"{'query':<29}{'values':>10}{'MB out':>7}{'chunks':>7}{'floor ms':>10}{'cold ms':>9}{'cold/floor':>11}"
            f"{'fresh/floor':>12}{'work/decode':>12}{'hot ms':>8}{'inproc':>9}{'read/minimal':>13}{'pygeoapi ms':>12}"
            f"{'pygeo/inproc':>14}")
    print(head)
    print("-" * len(head))
    for name, values, size, chunks, floor_s, cold, ratio, fresh, cpu, hot, inproc, read, minimal, theirs in rows:
        py = f"{theirs * 1000:>12.1f}{theirs / inproc:>14.1f}" if theirs else f"{'n/a':>12}{'-':>14}"
        print(f"{name:<29}{values:>10,}{size / 1e6:>7.2f}{chunks:>7}{floor_s * 1000:>10.1f}{cold * 1000:>9.1f}"
              f"{ratio:>11.2f}{fresh:>12.2f}{cpu:>12.2f}{hot * 1000:>8.1f}{inproc * 1000:>9.1f}"
              f"{read / minimal:>13.2f}{py}")
    print(f"\nper-request overhead: a trivial EDR request (GET /edr/conformance) takes {trivial * 1000:.2f} ms "
          f"with a valid token, {refused * 1000:.2f} ms refused without one (HTTP and routing alone); "
          f"{with_httpx * 1000:.2f} ms with a valid token from httpx")
    if mixed is not None:
        print(f"one-week position, cold, while continental answers are written on another connection: "
              f"{mixed['offered']:.1f} ms ({mixed['offered'] / mixed['alone']:.2f} x alone, {mixed['alone']:.1f} ms); "
              f"{mixed['not offered']:.1f} ms ({mixed['not offered'] / mixed['alone']:.2f} x) when the writer "
              "does not offer the GIL between pieces")
    if pygeoapi is None:
        print("pygeoapi is not installed here (pip install pygeoapi): its column is empty")
    else:
        print("pygeoapi n/a: its xarray-edr provider offers position and cube only (no area, radius, trajectory, "
              "corridor)")


if __name__ == "__main__":
    main()
