"""What ``GET /ogcapi/jobs`` (OGC API - Processes' job list) costs with 10,000 jobs in the store, beside a
``GET /health`` and a static OGC document (``/ogcapi/conformance``) timed on the same ``twin serve`` in the same
run, so the ratios say what the list adds to answering at all on this machine as it is loaded now.

The jobs are runs made directly in the store (``--jobs``, default 10,000; a fifth of them ended, a tenth failed,
half of them executions of ``echo`` through OGC API - Processes, each with its own times), owned by one user
(``bench``); an admin sees them all. Each request is timed as a client in another process sees it (median and
worst of ``--repeat``): the first page (``limit`` 10 and 100), the last reachable page by its ``next`` links,
and the list filtered by ``processID``, ``status``, ``datetime`` and ``minDuration``.

Usage: python bench/ogc_jobs.py [--jobs 10000] [--repeat 20] [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
from served import TwinServe  # beside this script

from twinengine.bootstrap import prepare_store
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.processes.models import ProcessJob
from twinengine.runtime import Runtime
from twinengine.workflows.models import WorkflowRun

STATUSES = ["finished"] * 2 + ["error"] + ["queued"] * 4 + ["running"] * 3


def make_jobs(runtime: Runtime, owner: str, count: int) -> None:
    """``count`` runs of ``owner`` written straight into the store, half of them OGC jobs of ``echo``."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    graph = {"process_graph": {"run": {"process_id": "echo", "namespace": "ogc", "arguments": {"echoInput": "x"},
                                       "result": True}}}
    jobs: list[ProcessJob] = []
    with runtime.db.session() as session:
        for n in range(count):
            created = start + timedelta(seconds=30 * n)
            status = STATUSES[n % len(STATUSES)]
            ended = status in ("finished", "error")
            run_id = str(uuid.UUID(int=n + 1))
            session.add(WorkflowRun(
                id=run_id, kind="job", owner=owner, title=f"echo {n}", process=graph, graph_sha256="0" * 64,
                parameters={}, options={}, status=status, progress=100.0 if ended else 0.0, assets=[],
                error={"code": "ProcessFailed", "message": "failed"} if status == "error" else None,
                created_at=created, updated_at=created, queued_at=created,
                started_at=created + timedelta(seconds=1) if status != "queued" else None,
                finished_at=created + timedelta(seconds=1 + n % 20) if ended else None))
            if n % 2 == 0:
                jobs.append(ProcessJob(run_id=run_id, process_id="echo",
                                       request={"outputs": {"echoOutput": {"transmissionMode": "value"}},
                                                "response": "document"}))
            if n % 1000 == 999 or n == count - 1:
                session.flush()  # the runs first: a job names its run
                session.add_all(jobs)
                session.flush()
                jobs.clear()


def timed(http: httpx.Client, path: str, repeat: int) -> tuple[float, float, Any]:
    """Median and worst milliseconds of ``GET path``, and its last answer."""
    times, answer = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        answer = http.get(path)
        times.append(time.perf_counter() - start)
        answer.raise_for_status()
    return statistics.median(times) * 1000, max(times) * 1000, answer


def last_page(http: httpx.Client, path: str) -> tuple[str, int]:
    """The path of the last page reachable by ``next`` links from ``path``, and how many pages there were."""
    pages = 1
    while True:
        body = http.get(path).raise_for_status().json()
        following = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        if following is None:
            return path, pages
        path, pages = following, pages + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", database_url=args.database_url)
        runtime = Runtime.from_settings(settings)
        try:
            admin_token = prepare_store(runtime.db, runtime.issuer, settings)
            made = time.perf_counter()
            make_jobs(runtime, "bench", args.jobs)
            made = time.perf_counter() - made
        finally:
            runtime.close()
        with TwinServe(settings) as url, Client(url, admin_token) as admin:
            user_token = admin.create_token("bench", "user").token
            rows: list[tuple[str, str, float, float, int]] = []
            for who, token in (("admin", admin_token), ("bench", user_token)):
                with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600) as http:
                    for path in ("/health", "/ogcapi/conformance"):
                        median, worst, answer = timed(http, path, args.repeat)
                        rows.append((who, path, median, worst, len(answer.content)))
                    last, pages = last_page(http, "/ogcapi/jobs?limit=1000")
                    paths = ["/ogcapi/jobs?limit=10", "/ogcapi/jobs", "/ogcapi/jobs?limit=1000", last,
                             "/ogcapi/jobs?processID=echo&status=successful",
                             "/ogcapi/jobs?datetime=2026-01-02T00:00:00Z/2026-01-02T12:00:00Z",
                             "/ogcapi/jobs?minDuration=10&status=successful,failed"]
                    for path in paths:
                        median, worst, answer = timed(http, path, args.repeat)
                        jobs = len(answer.json()["jobs"])
                        label = f"{path} (page {pages} of {pages})" if path == last else path
                        rows.append((who, label, median, worst, jobs))
    print(f"{args.jobs:,} jobs written to the store in {made:.1f} s; {os.cpu_count()} cores, load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; median and worst of {args.repeat}:")
    baseline = {who: median for who, path, median, _w, _n in rows if path == "/health"}
    for who, path, median, worst, size in rows:
        what = f"{size:,} bytes" if path in ("/health", "/ogcapi/conformance") else f"{size:,} jobs"
        print(f"  {who:5} GET {path:75} {median:7.1f} ms (worst {worst:7.1f})  x{median / baseline[who]:5.1f} "
              f"of /health  {what}")


if __name__ == "__main__":
    main()
