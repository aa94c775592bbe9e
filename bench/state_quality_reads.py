"""State reads with a quality filter against the same reads without one, as a twin's history grows.

For each backend (SQLite always; PostgreSQL when ``TWIN_BENCH_POSTGRES_URL`` or the default local server
answers) it fills three twins of an app whose ``level`` declares range, spike and gap checks, with
``--revisions`` revisions each (level and one other property per revision, judged by the checks as the
engine writes them), then times in process, through ``twins.service``, the median of ``--repeat`` calls
(every round takes each read once, in a shuffled order):

- ``mixed``: a few percent of the values flagged (out of range: bad; spikes: suspect), the newest one bad;
- ``bad tail``: the newest ``--tail`` values of level all bad, so a filtered read walks past each of them;
- ``all bad``: every level value bad, so a filtered read walks the property's whole history and finds none.

Reads: the current state, the state as of a random valid time and as of a random revision, and the newest
1000 values of level's history, each unfiltered and with ``quality=good``. Ratios are over the unfiltered
current read of the same twin (the materialised heads).

Usage: python bench/state_quality_reads.py [--revisions 10000] [--tail 1000] [--repeat 30] [--sqlite-only]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from state_reads import interleaved_medians  # beside this script
from state_writes import fresh_pg_database, postgres_url

from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.config import Settings
from twinengine.quality.spec import Flag
from twinengine.runtime import Runtime
from twinengine.twins import service, state
from twinengine.twins.schemas import StateKind

T0 = datetime(2020, 1, 1, tzinfo=UTC)
BATCH = 2000
GOOD = [Flag.GOOD]
MANIFEST = {
    "manifest_version": 1, "name": "checked-reach", "version": "1.0.0", "title": "Checked reach",
    "description": "A bench app.", "domain": "testing", "keywords": ["bench"], "authors": [{"name": "Bench"}],
    "license": "MIT", "parameters": {"type": "object", "properties": {}},
    "state": {
        "level": {"type": "number", "unit": "m", "quality": [
            {"check": "range", "min": 0, "max": 10}, {"check": "spike", "max_change": 1.0},
            {"check": "gap", "every": "15min", "tolerance": "5min"}]},
        "rain": {"type": "number", "unit": "mm"},
        "label": {"type": "string", "quality": [{"check": "gap", "every": "1h"}]},
    },
}


def app_folder(root: Path) -> Path:
    folder = root / "checked-reach"
    (folder / "checked_reach").mkdir(parents=True)
    (folder / "checked_reach" / "__init__.py").write_text('"""A bench app."""\n')
    (folder / "twinapp.yaml").write_text(yaml.safe_dump(MANIFEST, sort_keys=False))
    return folder


def level_at(kind: str, i: int, n: int, tail: int, rng: random.Random) -> float:
    if kind == "all bad" or (kind == "bad tail" and i >= n - tail) or (kind == "mixed" and i == n - 1):
        return 20.0 + rng.random()  # out of range
    if kind == "mixed" and rng.random() < 0.03:
        return 20.0 if rng.random() < 0.5 else 5.0 + rng.random()  # bad, or a spike (suspect)
    return 2.0 + 0.1 * rng.random()


def fill(runtime: Runtime, name: str, kind: str, n: int, tail: int) -> None:
    """``n`` revisions judged by the app's checks, ``BATCH`` a transaction (one series each)."""
    rng = random.Random(7)
    done = 0
    while done < n:
        with runtime.db.session() as session:
            twin = service.get_twin(session, principal=SYSTEM, ref=name)
            manifest = service.manifest_for(session, twin)
            pending: list[state.Pending] = []
            for i in range(done, min(n, done + BATCH)):
                stamp = T0 + timedelta(minutes=10 * i)
                other = (state.NewValue("rain", StateKind.REPORTED, rng.uniform(0, 5), "mm", stamp) if i % 2
                         else state.NewValue("label", StateKind.REPORTED, "low", None, stamp))
                pending.append(([state.NewValue("level", StateKind.REPORTED, level_at(kind, i, n, tail, rng), "m",
                                                stamp), other], None))
            state.append_revisions(session, [(twin, pending)], author="bench", manifests={twin.id: manifest})
            done = min(n, done + BATCH)


def measure(runtime: Runtime, name: str, n: int, repeat: int) -> dict[str, float]:
    rng = random.Random(11)
    revs = [rng.randint(1, n) for _ in range(repeat + 1)]
    times = [T0 + timedelta(minutes=10 * rng.randint(0, n)) for _ in range(repeat + 1)]

    def local(call: Callable[..., object], **kwargs: object) -> Callable[[int], object]:
        def run(i: int) -> object:
            args = {k: (v[i] if isinstance(v, list) and k != "quality" else v) for k, v in kwargs.items()}
            with runtime.db.session(readonly=True) as session:
                return call(session, principal=SYSTEM, ref=name, **args)
        return run

    reads = {
        "current": local(service.read_state),
        "current good": local(service.read_state, quality=GOOD),
        "at time": local(service.read_state, at=times),
        "at time good": local(service.read_state, at=times, quality=GOOD),
        "at revision": local(service.read_state, revision=revs),
        "at revision good": local(service.read_state, revision=revs, quality=GOOD),
        "history 1000": local(service.property_history, prop="level", newest_first=True, limit=1000),
        "history 1000 good": local(service.property_history, prop="level", newest_first=True, limit=1000,
                                   quality=GOOD),
    }
    medians = interleaved_medians(repeat, {("in-process", read): fn for read, fn in reads.items()})
    return {read: medians["in-process", read] for read in reads}


KINDS = ("mixed", "bad tail", "all bad")


def run_backend(settings: Settings, label: str, n: int, tail: int, repeat: int, root: Path
                ) -> dict[str, dict[str, float]]:
    runtime = Runtime.from_settings(settings)
    runtime.start()
    try:
        with runtime.db.session() as session:
            publish(session, runtime.blobs, principal=SYSTEM, archive=pack(app_folder(root)),
                    max_archive_bytes=10**8, max_unpacked_bytes=10**8, steps=runtime.publish_steps)
            for i, _kind in enumerate(KINDS):
                service.create_twin(session, principal=Principal(name="uma", role=Role.USER),
                                    app="checked-reach@1.0.0", name=f"reach-{i}", parameters={})
        started = time.perf_counter()
        for i, kind in enumerate(KINDS):
            fill(runtime, f"reach-{i}", kind, n, tail)
        print(f"{label}: filled {len(KINDS)} x {n:,} revisions in {time.perf_counter() - started:.1f} s")
        return {kind: measure(runtime, f"reach-{i}", n, repeat) for i, kind in enumerate(KINDS)}
    finally:
        runtime.close()


def report(label: str, n: int, tail: int, results: dict[str, dict[str, float]]) -> None:
    print(f"\n{label}, {n:,} revisions (bad tail: {tail:,}): median ms per read, ratio over 'current'")
    print(f"{'read':<20}" + "".join(f"{kind:>12}{'ratio':>7}" for kind in results))
    for read in next(iter(results.values())):
        print(f"{read:<20}" + "".join(f"{ops[read]:>12.2f}{ops[read] / ops['current']:>7.1f}"
                                      for ops in results.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revisions", type=int, default=10_000)
    parser.add_argument("--tail", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results["sqlite"] = run_backend(Settings(data_dir=root / "sqlite"), "sqlite", args.revisions, args.tail,
                                        args.repeat, root / "app-sqlite")
        admin_url = None if args.sqlite_only else postgres_url()
        if admin_url:
            url, drop = fresh_pg_database(admin_url)
            try:
                sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
                results["postgresql"] = run_backend(Settings(data_dir=root / "pg", database_url=sa_url),
                                                    "postgresql", args.revisions, args.tail, args.repeat,
                                                    root / "app-pg")
            finally:
                drop()
    for label, found in results.items():
        report(label, args.revisions, args.tail, found)


if __name__ == "__main__":
    main()
