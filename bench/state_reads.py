"""State reads against a trivial authenticated request, measured side by side, as a twin's history grows.

For each backend (SQLite always; PostgreSQL when ``TWIN_BENCH_POSTGRES_URL`` or the default local server
answers) and each history length it fills one twin with that many revisions (1 to 3 of five properties
each, reported and desired, valid times mostly increasing with some late arrivals), then times, as the
median of ``--repeat`` calls:

- baseline: in process, ``twins.service.get_twin`` (authorize, one row); over HTTP, ``GET /api/v1/me``;
- current state, state at a random revision, state at a random valid time, and the diff between two
  random revisions: in process through ``twins.service`` (one read-only unit of work each); over HTTP
  against ``twin serve`` in a process of its own on a loopback port (``served``: as deployed, and not
  sharing this process's interpreter lock with the client that times it), as a bare request on a
  kept-alive connection (the answer's bytes read, not parsed: the server's time and the wire's); and with
  the SDK (the answer parsed into its pydantic model, as a Python user sees it).

Every round takes each read of each column once, in an order shuffled per round, so that the machine's
drift during the run falls on all of them alike. Ratios are each read over the baseline of the same column.
``--plot FILE.png`` draws ms against revisions.

Usage: python bench/state_reads.py [--revisions 1000,10000,100000] [--repeat 30] [--plot reads.png]
                                  [--sqlite-only | --postgresql-only]
       (``--revisions 1000000`` takes 20 minutes or more to fill per backend)
"""

from __future__ import annotations

import argparse
import http.client
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from rich.progress import Progress
from served import TwinServe  # beside this script
from state_writes import fresh_pg_database, postgres_url

from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.bootstrap import prepare_store
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.runtime import Runtime
from twinengine.twins import service, state
from twinengine.twins.schemas import StateKind

APP = Path(__file__).resolve().parents[1] / "examples" / "apps" / "river-reach"
T0 = datetime(2020, 1, 1, tzinfo=UTC)
REPORTED = ("level", "rain", "discharge", "storage")
BATCH = 2000
OPS = ("baseline", "current state", "at revision", "at time", "diff")
COLUMNS = ("in-process", "HTTP", "SDK")


def fill(runtime: Runtime, name: str, n: int, progress: Progress, label: str) -> None:
    """``n`` revisions through the engine's own append path, ``BATCH`` revisions a transaction."""
    rng = random.Random(7)
    task = progress.add_task(f"{label}: filling {n:,} revisions", total=n)
    done = 0
    while done < n:
        with runtime.db.session() as session:
            twin = service.get_twin(session, principal=SYSTEM, ref=name)
            for i in range(done, min(n, done + BATCH)):
                late = rng.random() < 0.05  # a value that arrives after newer ones
                stamp = T0 + timedelta(seconds=60 * i - (rng.randint(60, 3600) if late else 0))
                props = rng.sample(REPORTED, rng.randint(1, 3))
                values = [state.NewValue(p, StateKind.REPORTED, rng.uniform(0, 10), None, stamp) for p in props]
                if i % 50 == 0:
                    values.append(state.NewValue("alert_threshold", StateKind.DESIRED, rng.uniform(2, 4), None, stamp))
                state.append_revision(session, twin, values, author="bench", message=None)
            done = min(n, done + BATCH)
        progress.update(task, completed=done)


class BareHTTP:
    """GET requests on one kept-alive connection, the answer read and not parsed."""

    def __init__(self, url: str, token: str | None) -> None:
        parts = urlsplit(url)
        self._connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, **params: object) -> bytes:
        query = urlencode({k: v for k, v in params.items() if v is not None})
        self._connection.request("GET", f"{path}?{query}" if query else path, headers=self._headers)
        response = self._connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        return body

    def close(self) -> None:
        self._connection.close()


def interleaved_medians(repeat: int, calls: dict[tuple[str, str], Callable[[int], object]]
                        ) -> dict[tuple[str, str], float]:
    """Median ms of each call, every round taking each call once in a shuffled order."""
    for call in calls.values():
        call(0)  # warm caches and connections
    rng = random.Random(3)
    keys = list(calls)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    for i in range(repeat):
        rng.shuffle(keys)
        for key in keys:
            start = time.perf_counter()
            calls[key](i + 1)
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) * 1000 for key, values in times.items()}


def measure(runtime: Runtime, client: Client, bare: BareHTTP, name: str, n: int, repeat: int
            ) -> dict[str, tuple[float, ...]]:
    rng = random.Random(11)
    revs = [rng.randint(1, n) for _ in range(repeat + 1)]
    times = [T0 + timedelta(seconds=60 * rng.randint(0, n)) for _ in range(repeat + 1)]
    pairs = [(rng.randint(0, n), rng.randint(0, n)) for _ in range(repeat + 1)]

    def local(call: Callable[..., object], **kwargs: object) -> Callable[[int], object]:
        def run(i: int) -> object:
            args = {k: (v[i] if isinstance(v, list) else v) for k, v in kwargs.items()}
            with runtime.db.session(readonly=True) as session:
                return call(session, principal=SYSTEM, ref=name, **args)
        return run

    twin = f"/api/v1/twins/{name}"
    calls: dict[str, dict[str, Callable[[int], object]]] = {
        "in-process": {
            "baseline": local(service.get_twin),
            "current state": local(service.read_state),
            "at revision": local(service.read_state, revision=revs),
            "at time": local(service.read_state, at=times),
            "diff": local(service.diff_state, from_revision=[a for a, _ in pairs],
                          to_revision=[b for _, b in pairs]),
        },
        "HTTP": {
            "baseline": lambda i: bare.get("/api/v1/me"),
            "current state": lambda i: bare.get(f"{twin}/state"),
            "at revision": lambda i: bare.get(f"{twin}/state", revision=revs[i]),
            "at time": lambda i: bare.get(f"{twin}/state", at=times[i].isoformat()),
            "diff": lambda i: bare.get(f"{twin}/diff", **{"from": pairs[i][0], "to": pairs[i][1]}),
        },
        "SDK": {
            "baseline": lambda i: client.me(),
            "current state": lambda i: client.get_state(name),
            "at revision": lambda i: client.get_state(name, revision=revs[i]),
            "at time": lambda i: client.get_state(name, at=times[i]),
            "diff": lambda i: client.diff(name, *pairs[i]),
        },
    }
    medians = interleaved_medians(repeat, {(column, op): call for column, ops in calls.items()
                                           for op, call in ops.items()})
    return {op: tuple(medians[column, op] for column in COLUMNS) for op in OPS}


def run_backend(settings: Settings, label: str, sizes: list[int], repeat: int, progress: Progress
                ) -> dict[int, dict[str, tuple[float, ...]]]:
    runtime = Runtime.from_settings(settings)
    admin_token = prepare_store(runtime.db, runtime.issuer, settings)  # the engine's loops run in twin serve
    results = {}
    try:
        with runtime.db.session() as session:
            publish(session, runtime.blobs, principal=SYSTEM, archive=pack(APP), max_archive_bytes=10**8,
                    max_unpacked_bytes=10**8, steps=runtime.publish_steps)
            for n in sizes:
                service.create_twin(session, principal=Principal(name="uma", role=Role.USER),
                                    app="river-reach@0.1.0", name=f"reach-{n}", parameters={"station": "RR-01"})
        for n in sizes:
            fill(runtime, f"reach-{n}", n, progress, label)
        with TwinServe(settings) as url, Client(url, admin_token) as client:
            bare = BareHTTP(url, admin_token)
            try:
                for n in sizes:
                    task = progress.add_task(f"{label}: reading at {n:,} revisions", total=None)
                    results[n] = measure(runtime, client, bare, f"reach-{n}", n, repeat)
                    progress.remove_task(task)
            finally:
                bare.close()
    finally:
        runtime.close()
    return results


def report(label: str, results: dict[int, dict[str, tuple[float, ...]]]) -> None:
    print(f"\n{label}: median ms per read (ratio = read ÷ the trivial authenticated request of the same column)")
    print(f"{'revisions':>10}  {'read':<14}" + "".join(f"{column:>11}{'ratio':>7}" for column in COLUMNS))
    for n, ops in results.items():
        base = ops["baseline"]
        for op in OPS:
            cells = "".join(f"{ms:>11.2f}{ms / b:>7.2f}" for ms, b in zip(ops[op], base, strict=True))
            print(f"{n:>10,}  {op:<14}{cells}")


def plot(path: Path, all_results: dict[str, dict[int, dict[str, tuple[float, ...]]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(all_results), figsize=(6 * len(all_results), 4.5), squeeze=False)
    for ax, (label, results) in zip(axes[0], all_results.items(), strict=True):
        sizes = sorted(results)
        for op in OPS:
            ax.plot(sizes, [results[n][op][0] for n in sizes], marker="o", label=f"{op} (in process)")
        ax.plot(sizes, [results[n]["current state"][1] for n in sizes], "C1--", marker="s",
                label="current state (HTTP)")
        ax.plot(sizes, [results[n]["baseline"][1] for n in sizes], "k--", label="GET /me (HTTP)")
        # A linear axis from zero: flat lines are the point, and a log axis over a narrow range hides it.
        ax.set(xscale="log", xlabel="revisions in the twin's history", ylabel="median ms", title=label)
        ax.set_ylim(bottom=0)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=120)
    print(f"\nplot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revisions", default="1000,10000,100000", help="Comma-separated history lengths.")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--postgresql-only", action="store_true")
    args = parser.parse_args()
    if args.sqlite_only and args.postgresql_only:
        parser.error("--sqlite-only and --postgresql-only exclude each other")
    sizes = sorted({int(s) for s in args.revisions.split(",") if s})
    all_results = {}
    with tempfile.TemporaryDirectory() as tmp, Progress(transient=True) as progress:
        if not args.postgresql_only:
            all_results["sqlite"] = run_backend(Settings(data_dir=Path(tmp) / "sqlite"), "sqlite", sizes,
                                                args.repeat, progress)
        admin_url = None if args.sqlite_only else postgres_url()
        if admin_url:
            url, drop = fresh_pg_database(admin_url)
            try:
                sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
                all_results["postgresql"] = run_backend(Settings(data_dir=Path(tmp) / "pg", database_url=sa_url),
                                                        "postgresql", sizes, args.repeat, progress)
            finally:
                drop()
    for label, results in all_results.items():
        report(label, results)
    if "postgresql" not in all_results and not args.sqlite_only:
        print("\npostgresql: no server answered (set TWIN_BENCH_POSTGRES_URL)")
    if args.plot:
        plot(args.plot, all_results)


if __name__ == "__main__":
    main()
