"""Fleets of many twins: listing, filtering, paging and aggregation against a trivial authenticated request,
and the CPU an idle engine uses with the fleet beside an empty one.

It publishes river-reach, creates one twin through the service (so its app's manifest trigger and state
rows are what a real create makes), then copies it in bulk with Core inserts into ``--twins`` twins
(tags, point locations along a river with 1 % polygons, parameters and their index rows, computed in SQL
as create computes them, two revisions of state with the heads' numeric copies, the desired alert
threshold, the trigger), bumping the change counter once as a bulk load does, then gathering planner
statistics (VACUUM ANALYZE on PostgreSQL, as autovacuum soon would; on SQLite the sampled ANALYZE the engine
runs on every start). Then, as the median of ``--repeat`` calls, as the owner of the fleet (a user, so the
access filter is part of every query):

- baseline: in process, ``twins.service.get_twin`` (authorize, one row); over HTTP, ``GET /api/v1/me``;
- pages: the first, one deep in the fleet (by cursor), and filtered by tag, state, parameter (a range and a
  rare text value), bbox and all;
- aggregates: mean by app, quantiles by tag, as of a past time (set-based), beside the per-twin time-travel
  read extrapolated from ``--per-twin`` twins;
- idle CPU: ``twin serve`` on the fleet's data dir and on an empty one: the CPU seconds of its start-up
  (until ``--settle`` seconds after it answered), then ``--idle`` seconds of idle as percent of one core
  (/proc/PID/stat).

Usage: python bench/fleet.py [--twins 100000] [--repeat 20] [--idle 20] [--settle 30]
                             [--sqlite-only | --postgresql-only]
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.progress import Progress
from sqlalchemy import insert, select
from state_writes import fresh_pg_database, postgres_url  # beside this script

from twinengine.api import create_app
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.auth.service import issue_token
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime
from twinengine.store import changes, migrate
from twinengine.twins import fleet, service, state
from twinengine.twins.models import StateHead, StateRevision, StateValue, Twin, TwinTag
from twinengine.twins.parameter_index import index_parameters
from twinengine.workflows.models import Trigger

APP = Path(__file__).resolve().parents[1] / "examples" / "apps" / "river-reach"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
UMA = Principal(name="uma", role=Role.USER)
BATCH = 5000
REGIONS = 20


def _rows(i: int, rng: random.Random, template: Twin, now: datetime) -> dict[str, list[dict[str, Any]]]:
    twin_id, name = f"tw-{secrets.token_hex(6)}", f"reach-{i:06d}"
    # along a river from (5, 45) to (15, 55), jittered; one in a hundred is a small polygon
    t = (i % 100_000) / 100_000
    x, y = 5 + 10 * t + rng.uniform(-0.2, 0.2), 45 + 10 * t + rng.uniform(-0.2, 0.2)
    if i % 100 == 0:
        d = 0.01
        location: dict[str, Any] = {"type": "Polygon", "coordinates": [[[x, y], [x + d, y], [x + d, y + d],
                                                                        [x, y + d], [x, y]]]}
        bbox = (x, y, x + d, y + d)
    else:
        location, bbox = {"type": "Point", "coordinates": [x, y]}, (x, y, x, y)
    tags = sorted({f"region-{i % REGIONS:02d}", *(["dam"] if i % 20 == 0 else [])})
    level, later = rng.uniform(0, 5), rng.uniform(0, 5)
    values = [("level", "reported", level, "m", T0), ("rain", "reported", rng.uniform(0, 20), "mm/h", T0),
              ("alert_threshold", "desired", 3.0, "m", T0), ("level", "reported", later, "m", T0 + timedelta(hours=1))]
    return {
        "twins": [{"id": twin_id, "name": name, "app_id": template.app_id, "app_name": template.app_name,
                   "app_version": template.app_version, "owner": template.owner, "description": None,
                   "parameters": {**template.parameters, "station": f"ST-{i:06d}",
                                  "area_km2": float(rng.choice((60, 120, 240)))},
                   "origin_id": None, "origin_name": None, "origin_revision": None, "head_revision": 2,
                   "created_at": now, "updated_at": now, "tags": tags, "location": location,
                   "bbox_minx": bbox[0], "bbox_miny": bbox[1], "bbox_maxx": bbox[2], "bbox_maxy": bbox[3]}],
        "tags": [{"tag": tag, "twin_id": twin_id} for tag in tags],
        "revisions": [{"twin_id": twin_id, "revision": r, "recorded_at": now, "author": "bench", "message": None}
                      for r in (1, 2)],
        "values": [{"twin_id": twin_id, "revision": 1 if k < 3 else 2, "property": p, "kind": kind, "value": v,
                    "unit": u, "timestamp": ts} for k, (p, kind, v, u, ts) in enumerate(values)],
        "heads": [{"twin_id": twin_id, "property": p, "kind": kind, "revision": 1 if k < 3 else 2, "value": v,
                   "unit": u, "timestamp": ts, "num_value": state.number_of(v)}
                  for k, (p, kind, v, u, ts) in enumerate(values) if k != 0],
    }


def populate(runtime: Runtime, n: int, progress: Progress, label: str) -> None:
    with runtime.db.session() as session:
        publish(session, runtime.blobs, principal=SYSTEM, archive=pack(APP), max_archive_bytes=10**8,
                max_unpacked_bytes=10**8, steps=runtime.publish_steps)
        template = service.create_twin(session, principal=UMA, app="river-reach@0.1.0", name="template",
                                       parameters={"station": "RR-00"})
        triggers = [{c.name: getattr(t, c.name) for c in Trigger.__table__.columns}
                    for t in session.scalars(select(Trigger).where(Trigger.twin_id == template.id))]
        session.expunge(template)
    rng = random.Random(7)
    task = progress.add_task(f"{label}: creating {n:,} twins", total=n)
    for start in range(0, n, BATCH):
        now = datetime.now(UTC)
        batch: dict[str, list[dict[str, Any]]] = {k: [] for k in ("twins", "tags", "revisions", "values",
                                                                  "heads")}
        for i in range(start, min(n, start + BATCH)):
            for key, rows in _rows(i, rng, template, now).items():
                batch[key] += rows
        trigger_rows = [{**t, "id": f"trg-{secrets.token_hex(6)}", "twin_id": twin["id"]}
                        for twin in batch["twins"] for t in triggers]
        with runtime.db.session() as session:
            for table, key in ((Twin, "twins"), (TwinTag, "tags"), (StateRevision, "revisions"),
                               (StateValue, "values"), (StateHead, "heads")):
                session.execute(insert(table.__table__), batch[key])  # Core: no ORM bookkeeping
            index_parameters(session, [twin["id"] for twin in batch["twins"]])  # as create does, in SQL
            if trigger_rows:
                session.execute(insert(Trigger.__table__), trigger_rows)
            changes.bump(session, "twins")  # a bulk load: loops reload the topic once
        progress.update(task, completed=min(n, start + BATCH))
    progress.remove_task(task)
    if runtime.db.engine.dialect.name == "postgresql":
        # What autovacuum does within minutes of a bulk load: planner statistics and the visibility map
        # (index-only scans). Without them the first minutes' plans rest on guesses and vary run to run.
        with runtime.db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    else:
        migrate.analyze(runtime.db)  # what the engine's next start does (store/migrate.py)


def median_ms(repeat: int, fn: Callable[[], object]) -> float:
    fn()  # warm caches and connections
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


CASES: dict[str, dict[str, Any]] = {
    "page 1": {},
    "deep page (cursor)": {"cursor": True},  # at 70 % of the fleet
    "tag": {"tags": ["region-07"]},
    "tag, rare": {"tags": ["dam", "region-00"]},
    "state level>4.5": {"state": ["level>4.5"]},
    "state level>@threshold": {"state": ["level>@desired.alert_threshold"]},
    "parameter area>100": {"parameters": ["area_km2>100"]},
    "parameter, rare (station=)": {"parameters": ["station=ST-000777"]},
    "bbox (small)": {"bbox": (9.9, 49.9, 10.1, 50.1)},
    "tag+state+bbox": {"tags": ["region-03"], "state": ["level>1"], "bbox": (5, 45, 10, 50)},
}
AGGREGATES: dict[str, dict[str, Any]] = {
    "mean by app": {"by": "app"},
    "p50,p90 by tag": {"by": "tag", "quantiles": [0.5, 0.9]},
    "mean as of T0+30min": {"at": T0 + timedelta(minutes=30)},
    "mean by area, level>2": {"by": "parameter:area_km2", "state": ["level>2"]},
    "mean, parameter area>100": {"parameters": ["area_km2>100"]},
}


def _filter(case: dict[str, Any]) -> fleet.FleetFilter:
    bbox = case.get("bbox")
    return fleet.parse_filter(tags=case.get("tags", ()), bbox=",".join(map(str, bbox)) if bbox else None,
                              state=case.get("state", ()), parameter=case.get("parameters", ()))


def measure(runtime: Runtime, client: Client, n: int, repeat: int, per_twin: int
            ) -> dict[str, tuple[float, float]]:
    def local(fn: Callable[..., object], **kwargs: Any) -> Callable[[], object]:
        def run() -> object:
            with runtime.db.session(readonly=True) as session:
                return fn(session, principal=UMA, **kwargs)
        return run

    results = {"baseline": (median_ms(repeat, local(service.get_twin, ref=f"reach-{n // 2:06d}")),
                            median_ms(repeat, client.me))}
    for label, case in CASES.items():
        filt, cursor = _filter(case), fleet.encode_cursor(f"reach-{n * 7 // 10:06d}") if "cursor" in case else None
        sdk = {k: v for k, v in case.items() if k != "cursor"}
        results[f"list: {label}"] = (
            median_ms(repeat, local(fleet.list_fleet, filt=filt, limit=50, cursor=cursor)),
            median_ms(repeat, lambda sdk=sdk, cursor=cursor: client.list_fleet(**sdk, limit=50, cursor=cursor)))
    for label, case in AGGREGATES.items():
        filt = _filter(case)
        extra = {k: case[k] for k in ("by", "quantiles", "at") if k in case}
        results[f"aggregate: {label}"] = (
            median_ms(max(repeat // 4, 3), local(fleet.aggregate, filt=filt, prop="level", **extra)),
            median_ms(max(repeat // 4, 3), lambda case=case: client.fleet_aggregate("level", **case)))
    with runtime.db.session(readonly=True) as session:
        names = [f"reach-{i:06d}" for i in range(per_twin)]
        start = time.perf_counter()
        for name in names:
            twin = service.get_twin(session, principal=UMA, ref=name)
            state.read_state(session, twin, at=T0 + timedelta(minutes=30)).reported.get("level")
        per = (time.perf_counter() - start) / per_twin
    results["aggregate: as of, per-twin reads (extrapolated)"] = (per * 1000 * runtime_size(runtime), float("nan"))
    return results


def runtime_size(runtime: Runtime) -> int:
    from sqlalchemy import func

    with runtime.db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(Twin)) or 0)


def idle_cpu(data_dir: Path, seconds: float, settle: float, env: dict[str, str]) -> tuple[float, float]:
    """``twin serve`` on ``data_dir``: the CPU seconds it took from spawn until ``settle`` seconds after it
    answered (start-up: imports, routes, the loops' first look at every twin), then the percent of one core
    it uses idle over ``seconds`` (/proc/PID/stat)."""
    port = 18000 + random.randint(0, 999)
    environ = {**os.environ, "TWIN_DATA_DIR": str(data_dir), **env}
    process = subprocess.Popen([sys.executable, "-m", "twinengine.cli.main", "serve", "--port", str(port)],
                               env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tick = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime + stime

    try:
        with Client(f"http://127.0.0.1:{port}") as probe:
            deadline = time.monotonic() + 300
            while True:
                try:
                    probe.health()
                    break
                except Exception:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("twin serve did not start") from None
                    time.sleep(0.2)
        time.sleep(settle)
        before, start = cpu(), time.monotonic()
        time.sleep(seconds)
        return before, 100 * (cpu() - before) / (time.monotonic() - start)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_backend(settings: Settings, label: str, n: int, args: argparse.Namespace, progress: Progress
                ) -> tuple[dict[str, tuple[float, float]], tuple[float, float]]:
    runtime = Runtime.from_settings(settings)
    runtime.start()
    try:
        started = time.perf_counter()
        populate(runtime, n, progress, label)
        print(f"{label}: created {n:,} twins in {time.perf_counter() - started:.1f} s")
        with runtime.db.session() as session:
            token = issue_token(session, runtime.issuer, principal=SYSTEM, name="uma", role=Role.USER,
                                ttl=timedelta(hours=2)).token
        task = progress.add_task(f"{label}: timing", total=None)
        with InProcessServer(create_app(runtime=runtime)) as server, Client(server.url, token) as client:
            results = measure(runtime, client, n, args.repeat, args.per_twin)
        progress.remove_task(task)
    finally:
        runtime.close()
    env = {"TWIN_DATABASE_URL": settings.database_url} if settings.database_url else {}
    return results, idle_cpu(settings.data_dir, args.idle, args.settle, env)


def report(label: str, n: int, results: dict[str, tuple[float, float]], idle: tuple[float, float],
           empty: tuple[float, float], settle: float) -> None:
    base_local, base_http = results["baseline"]
    print(f"\n{label}, {n:,} twins: median ms (ratio = ÷ the trivial authenticated request of the same column)")
    print(f"{'operation':<40}{'in-process':>11}{'ratio':>7}{'HTTP':>9}{'ratio':>7}")
    for op, (local_ms, http_ms) in results.items():
        print(f"{op:<40}{local_ms:>11.2f}{local_ms / base_local:>7.1f}{http_ms:>9.2f}{http_ms / base_http:>7.1f}")
    print(f"`twin serve` over the fleet: start-up {idle[0]:.1f} CPU s until {settle:g} s after it answered, then "
          f"idle {idle[1]:.2f} % of a core (empty engine: {empty[0]:.1f} CPU s, {empty[1]:.2f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--twins", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--idle", type=float, default=20.0, help="Seconds of idle CPU measured per engine.")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="Seconds after the engine answered before idle CPU is measured (start-up ends).")
    parser.add_argument("--per-twin", type=int, default=500, help="Twins read one by one for the as-of comparison.")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--postgresql-only", action="store_true")
    args = parser.parse_args()
    out = {}
    with tempfile.TemporaryDirectory() as tmp, Progress(transient=True) as progress:
        empty_dir = Path(tmp) / "empty"
        blank = Runtime.from_settings(Settings(data_dir=empty_dir))
        blank.start()
        blank.close()
        empty = idle_cpu(empty_dir, args.idle, args.settle, {})
        if not args.postgresql_only:
            out["sqlite"] = run_backend(Settings(data_dir=Path(tmp) / "sqlite"), "sqlite", args.twins, args,
                                        progress)
        admin_url = None if args.sqlite_only else postgres_url()
        if admin_url:
            url, drop = fresh_pg_database(admin_url)
            try:
                sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
                out["postgresql"] = run_backend(Settings(data_dir=Path(tmp) / "pg", database_url=sa_url),
                                                "postgresql", args.twins, args, progress)
            finally:
                drop()
    for label, (results, idle) in out.items():
        report(label, args.twins, results, idle, empty, args.settle)


if __name__ == "__main__":
    main()
