"""Reads of one key of a keyed property (``head[ow500]``) against the same reads of an unkeyed property,
measured side by side in one run, as the number of keys and revisions grows.

For each backend (SQLite always; PostgreSQL when ``TWIN_BENCH_POSTGRES_URL`` or the default local server
answers) it publishes ``examples/apps/well-field`` and fills two twins through the engine's own append path:

- ``field``: ``--revisions`` revisions, each writing every one of ``--keys`` wells' ``head[owN]`` and the
  unkeyed ``drawdown_limit`` (so each key, and the unkeyed property beside them, has that many values);
- ``single``: the same number of revisions of ``drawdown_limit`` alone (the unkeyed baseline).

Then it times, as the median of ``--repeat`` calls in process through ``twins.service.read_property`` (one
read-only unit of work each), in an order shuffled per round: one key's value now, as of a random revision
and as of a random valid time, the same three reads of ``drawdown_limit`` on ``single`` and on ``field``,
and, for scale, every key at once (``head``). The ratios are each read over the same read on ``single``:
a ratio that stays near 1 whatever the keys and revisions is a read that does not grow with them. On
PostgreSQL the tables are vacuumed and analysed after the fill.

Usage: python bench/keyed_state.py [--keys 200] [--revisions 200] [--repeat 50] [--sqlite-only]
       python bench/keyed_state.py --full   (1,000 keys x 1,000 revisions: a million values per backend)
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.progress import Progress
from sqlalchemy import text
from state_writes import fresh_pg_database, postgres_url  # beside this script

from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.bootstrap import prepare_store
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.config import Settings
from twinengine.runtime import Runtime
from twinengine.twins import service, state
from twinengine.twins.schemas import StateKind

APP = Path(__file__).resolve().parents[1] / "examples" / "apps" / "well-field"
T0 = datetime(2020, 1, 1, tzinfo=UTC)
PER_TRANSACTION = 20  # revisions
READS = ("now", "at revision", "at time")


def fill(runtime: Runtime, name: str, keys: int, revisions: int, progress: Progress, label: str) -> None:
    """``revisions`` revisions of ``name``: each writes ``keys`` heads (none when 0) and ``drawdown_limit``."""
    rng = random.Random(7)
    task = progress.add_task(f"{label}: filling {name} ({keys:,} keys x {revisions:,} revisions)", total=revisions)
    done = 0
    while done < revisions:
        with runtime.db.session() as session:
            twin = service.get_twin(session, principal=SYSTEM, ref=name)
            for i in range(done, min(revisions, done + PER_TRANSACTION)):
                stamp = T0 + timedelta(minutes=i)
                values = [state.NewValue(f"head[ow{k}]", StateKind.REPORTED, rng.uniform(10, 40), "m", stamp)
                          for k in range(keys)]
                values.append(state.NewValue("drawdown_limit", StateKind.REPORTED, rng.uniform(5, 8), "m", stamp))
                state.append_revision(session, twin, values, author="bench", message=None)
            done = min(revisions, done + PER_TRANSACTION)
        progress.update(task, completed=done)


def medians(repeat: int, calls: dict[str, Callable[[int], object]]) -> dict[str, float]:
    """Median ms of each call; every round takes each call once, in a shuffled order."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    rng = random.Random(11)
    order = list(calls)
    for i in range(repeat):
        rng.shuffle(order)
        for name in order:
            start = time.perf_counter()
            calls[name](i)
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def measure(runtime: Runtime, keys: int, revisions: int, repeat: int) -> dict[str, float]:
    rng = random.Random(3)
    picks = [(rng.randint(1, revisions), T0 + timedelta(minutes=rng.uniform(0, revisions)), rng.randrange(keys))
             for _ in range(repeat)]

    def read(ref: str, prop: Callable[[int], str], how: str) -> Callable[[int], object]:
        def run(i: int) -> object:
            revision, at, _key = picks[i]
            with runtime.db.session() as session:
                found = service.read_property(session, principal=SYSTEM, ref=ref, prop=prop(i),
                                              revision=revision if how == "at revision" else None,
                                              at=at if how == "at time" else None)
            assert found.value is not None or found.keys, (ref, prop(i), how)
            return found
        return run

    def key(i: int) -> str:
        return f"head[ow{picks[i][2]}]"

    def unkeyed(_i: int) -> str:
        return "drawdown_limit"

    calls: dict[str, Callable[[int], object]] = {}
    for how in READS:
        calls[f"unkeyed, alone: {how}"] = read("single", unkeyed, how)
        calls[f"unkeyed, beside keys: {how}"] = read("field", unkeyed, how)
        calls[f"one key: {how}"] = read("field", key, how)
    calls["every key: now"] = read("field", lambda _i: "head", "now")
    medians(min(repeat, 5), calls)  # warm caches and compiled statements
    return medians(repeat, calls)


def run_backend(settings: Settings, label: str, keys: int, revisions: int, repeat: int, progress: Progress
                ) -> dict[str, float]:
    runtime = Runtime.from_settings(settings)
    prepare_store(runtime.db, runtime.issuer, settings)
    try:
        with runtime.db.session() as session:
            publish(session, runtime.blobs, principal=SYSTEM, archive=pack(APP), max_archive_bytes=10**8,
                    max_unpacked_bytes=10**8, steps=runtime.publish_steps)
            for name in ("field", "single"):
                service.create_twin(session, principal=Principal(name="uma", role=Role.USER),
                                    app="well-field@0.1.0", name=name, parameters={"field": "WF-01"})
        started = time.perf_counter()
        fill(runtime, "field", keys, revisions, progress, label)
        fill(runtime, "single", 0, revisions, progress, label)
        print(f"{label}: filled {keys * revisions + 2 * revisions:,} values in {time.perf_counter() - started:.0f} s")
        if runtime.db.engine.dialect.name == "postgresql":
            # As autovacuum would before long: statistics, and hint bits set, so that the first read of each
            # freshly loaded page does not pay for writing them (it did: 2 to 4 times the unkeyed read).
            with runtime.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM ANALYZE state_values"))
                connection.execute(text("VACUUM ANALYZE state_heads"))
        task = progress.add_task(f"{label}: reading", total=None)
        results = measure(runtime, keys, revisions, repeat)
        progress.remove_task(task)
    finally:
        runtime.close()
    return results


def report(label: str, keys: int, revisions: int, results: dict[str, float]) -> None:
    print(f"\n{label}, {keys:,} keys x {revisions:,} revisions: median ms per read in process "
          "(ratio = read ÷ the same read of the unkeyed property alone)")
    for name, ms in results.items():
        how = name.rpartition(": ")[2]
        base = results[f"unkeyed, alone: {how}"]
        print(f"  {name:<34}{ms:>9.3f}{ms / base:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--revisions", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--full", action="store_true", help="1,000 keys x 1,000 revisions")
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    keys, revisions = (1000, 1000) if args.full else (args.keys, args.revisions)
    all_results = {}
    with tempfile.TemporaryDirectory() as tmp, Progress(transient=True) as progress:
        all_results["sqlite"] = run_backend(Settings(data_dir=Path(tmp) / "sqlite"), "sqlite", keys, revisions,
                                            args.repeat, progress)
        admin_url = None if args.sqlite_only else postgres_url()
        if admin_url:
            url, drop = fresh_pg_database(admin_url)
            try:
                sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
                all_results["postgresql"] = run_backend(Settings(data_dir=Path(tmp) / "pg", database_url=sa_url),
                                                        "postgresql", keys, revisions, args.repeat, progress)
            finally:
                drop()
    for label, results in all_results.items():
        report(label, keys, revisions, results)
    if "postgresql" not in all_results and not args.sqlite_only:
        print("\npostgresql: no server answered (set TWIN_BENCH_POSTGRES_URL)")


if __name__ == "__main__":
    main()
