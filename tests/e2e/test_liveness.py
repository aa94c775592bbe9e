"""``twin serve`` stays live under more clients than it has request threads (on SQLite and PostgreSQL).

Sixty-four clients at once write and read state, probe ``/health``, run synchronous openEO graphs and
asynchronous workflow runs for a while: nothing answers 5xx, ``/health`` always answers, every acknowledged
write is in the history afterwards, and SIGTERM stops the server in the middle of the load.

How long ``/health`` takes is timed by a prober in a process of its own, connected before the load starts, as
an orchestrator's probe would be: a probe timed in this process waits for its 64 client threads too, and a
first request made as the load starts times the client's own cold start (1.5 to 2.5 s on PostgreSQL here,
while the engine answered every ``/health`` within 0.25 s by its own clock)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx2 as httpx
import pytest

from helpers import RIVER_REACH, admin_token, free_port, serve_engine, serve_settings
from twinengine.client import Client
from twinengine.config import Settings

# ci_only: 64 clients against a real twin serve on each store
# the store itself, its concurrency, or engines in several processes: both stores
pytestmark = [pytest.mark.every_store, pytest.mark.ci_only]

TWINS = 4
WRITERS, READERS, PROBES, SYNC_GRAPHS, ASYNC_RUNS = 36, 12, 4, 6, 6  # 64 clients
LOAD_SECONDS = 12.0
HEALTH_BOUND = 10.0  # live, not fast: an event loop blocked this long is a defect on any machine; how fast
# /health answers under load is bench/mixed_load.py's figure (a CI machine at three workers on two cores took
# 2.35 s once, which a bound of 2 s called a failure)
STOP_BOUND = 10.0
PROBER = """
import sys, time, httpx2 as httpx
url, seconds, slowest, answers = sys.argv[1], float(sys.argv[2]), 0.0, []
with httpx.Client(base_url=url, timeout=30) as http:
    http.get("/health")  # connected and warm before the load: a cold first request times the prober itself
    print("ready", flush=True)
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        start = time.perf_counter()
        answers.append(http.get("/health").status_code)
        slowest = max(slowest, time.perf_counter() - start)
        time.sleep(0.1)
print(slowest, *answers)
"""
GRAPH = {"process_graph": {"eq": {"process_id": "eq", "arguments": {"x": 1, "y": 1}, "result": True}}}


@dataclass
class Load:
    """What the clients saw: acknowledged revisions per twin, failures."""

    until: float
    acknowledged: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    failures: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, kind: str, response: httpx.Response) -> bool:
        with self.lock:
            self.counts[kind] += 1
            if response.status_code >= 500 or (kind != "write" and response.status_code >= 400):
                self.failures.append(f"{kind}: {response.status_code} {response.text[:300]}")
                return False
        return response.status_code < 400


def client_loop(load: Load, url: str, token: str | None, step: Callable[[httpx.Client, int], None]) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        i = 0
        while time.monotonic() < load.until:
            try:
                step(http, i)
            except httpx.HTTPError as exc:  # a hang past the timeout or a dropped connection
                with load.lock:
                    load.failures.append(f"{step.__name__}: {type(exc).__name__}: {exc}")
                return
            i += 1


def write(load: Load, n: int) -> Callable[[httpx.Client, int], None]:
    twin = f"reach-{n % TWINS}"

    def write(http: httpx.Client, i: int) -> None:
        answer = http.patch(f"/api/v1/twins/{twin}/state",
                            json={"reported": {"level": {"value": float(i)}}, "message": f"w{n}-{i}"})
        if load.note("write", answer):
            with load.lock:
                load.acknowledged[twin].add(int(answer.json()["revision"]))

    return write


def read(load: Load, n: int) -> Callable[[httpx.Client, int], None]:
    def read(http: httpx.Client, i: int) -> None:
        load.note("read", http.get(f"/api/v1/twins/reach-{(n + i) % TWINS}/state"))

    return read


def probe(load: Load) -> Callable[[httpx.Client, int], None]:
    def probe(http: httpx.Client, _i: int) -> None:
        load.note("health", http.get("/health"))
        time.sleep(0.05)

    return probe


def sync_graph(load: Load) -> Callable[[httpx.Client, int], None]:
    def sync_graph(http: httpx.Client, _i: int) -> None:
        answer = http.post("/openeo/1.2/result", json={"process": GRAPH})
        if load.note("sync graph", answer) and answer.json() is not True:
            load.failures.append(f"sync graph answered {answer.text[:200]}")

    return sync_graph


def async_run(load: Load) -> Callable[[httpx.Client, int], None]:
    def async_run(http: httpx.Client, _i: int) -> None:
        answer = http.post("/api/v1/runs", json={"process": GRAPH, "mode": "async"})
        if not load.note("async run", answer):
            return
        run_id = answer.json()["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            polled = http.get(f"/api/v1/runs/{run_id}")
            if not load.note("run poll", polled):
                return
            if polled.json()["status"] not in ("queued", "running"):
                if polled.json()["status"] != "finished":
                    load.failures.append(f"run {run_id} ended {polled.json()['status']}: {polled.text[:300]}")
                return
            time.sleep(0.1)
        load.failures.append(f"run {run_id} did not end within 60 s")

    return async_run


def start_load(url: str, user: str, seconds: float) -> tuple[Load, list[threading.Thread]]:
    load = Load(until=time.monotonic() + seconds)
    steps: list[tuple[str | None, Callable[[httpx.Client, int], None]]] = [
        *((user, write(load, n)) for n in range(WRITERS)),
        *((user, read(load, n)) for n in range(READERS)),
        *((None, probe(load)) for _ in range(PROBES)),
        *((user, sync_graph(load)) for _ in range(SYNC_GRAPHS)),
        *((user, async_run(load)) for _ in range(ASYNC_RUNS)),
    ]
    threads = [threading.Thread(target=client_loop, args=(load, url, token, step), daemon=True)
               for token, step in steps]
    for thread in threads:
        thread.start()
    return load, threads


@pytest.mark.sandbox
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_serve_stays_live_under_more_clients_than_threads(settings: Settings) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"TWIN_DATABASE_URL": settings.database_url} if settings.database_url else {}
    with serve_engine(settings.data_dir, port, **env) as process:
        with Client(url, admin_token(settings)) as admin:
            dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
        Client(url, dev).publish_app(RIVER_REACH)
        with Client(url, user) as uma:
            for t in range(TWINS):
                uma.create_twin("river-reach@0.1.0", f"reach-{t}", {"station": "RR-01"})

        prober = subprocess.Popen([sys.executable, "-c", PROBER, url, str(LOAD_SECONDS)], stdout=subprocess.PIPE,
                                  text=True)
        assert prober.stdout is not None and prober.stdout.readline().strip() == "ready"
        load, threads = start_load(url, user, LOAD_SECONDS)
        probed = prober.communicate(timeout=LOAD_SECONDS + 60)[0]
        assert prober.returncode == 0
        for thread in threads:
            thread.join(timeout=LOAD_SECONDS + 90)
        assert not any(t.is_alive() for t in threads), "clients still waiting for answers: the server is wedged"
        assert load.failures == []
        slowest, *answers = probed.split()
        assert len(answers) >= LOAD_SECONDS and set(answers) == {"200"}, probed
        print(f"/health under load: slowest {float(slowest) * 1000:.0f} ms of {len(answers)} probes")
        assert float(slowest) < HEALTH_BOUND, f"/health took {float(slowest):.1f} s under load"
        assert load.counts["write"] >= WRITERS and load.counts["sync graph"] >= SYNC_GRAPHS
        assert load.counts["async run"] >= ASYNC_RUNS
        with Client(url, user) as uma:
            for twin, revisions in load.acknowledged.items():
                stored = {r.revision for r in uma.revisions(twin, limit=500, order="asc").items}
                offset = 500
                while len(stored) == offset:
                    stored |= {r.revision for r in uma.revisions(twin, limit=500, offset=offset, order="asc").items}
                    offset += 500
                assert revisions <= stored and len(stored) == len(revisions), twin  # every acknowledged write

        # SIGTERM in the middle of the load: the server stops within the bound, runs in progress included.
        load, threads = start_load(url, user, 60)
        time.sleep(3)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=STOP_BOUND + 20)
        stopped_after = time.monotonic() - started
        load.until = 0
        for thread in threads:
            thread.join(timeout=30)
        assert stopped_after < STOP_BOUND, f"twin serve took {stopped_after:.1f} s to stop on SIGTERM"

    with serve_engine(settings.data_dir, port, **env), Client(url, user) as uma:  # after a restart
        for twin, revisions in load.acknowledged.items():
            stored = {r.revision for r in uma.revisions(twin, limit=500, order="desc").items}
            assert {r for r in revisions if r > min(stored, default=0)} <= stored
        deadline = time.monotonic() + 30
        while (left := [r for status in ("queued", "running") for r in uma.workflows.runs(status=status).items]):
            assert time.monotonic() < deadline, [(r.id, r.status) for r in left]  # queued ones resume, none hang
            time.sleep(0.2)
        ended = uma.workflows.runs(status="error", limit=500).items
        assert all(r.error and r.error.get("message") for r in ended)  # interrupted runs say why


@pytest.mark.sandbox
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_refused_writes_let_go_of_the_store_before_they_wait_for_a_thread(settings: Settings) -> None:
    """Sixteen clients (four times the request threads) ask for the same link at once. Each request locks
    the relationship type's clock (PostgreSQL) or the store (SQLite) at its first write, so fifteen of them
    are refused while holding that lock. A refused request's transaction used to be rolled back later, on a
    request thread of its own; with every request thread taken by requests waiting for the lock it held,
    the engine stopped answering (for good on PostgreSQL, until SQLite's busy timeout of 30 s gave up). It is
    now rolled back on the thread that ran it, before the error answer: one link, fifteen conflicts."""
    with serve_settings(settings) as url:
        with Client(url, admin_token(settings)) as admin:
            dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
        Client(url, dev).publish_app(RIVER_REACH)
        with Client(url, user) as uma:
            for name in ("upper", "lower"):
                uma.create_twin("river-reach@0.1.0", name, {"station": "RR-01"})
        clients = 4 * Settings().request_threads
        start = threading.Barrier(clients)

        def link(_: int) -> int | str:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {user}"}, timeout=20) as http:
                http.get("/health")  # connected before the barrier: the requests arrive together
                start.wait()
                try:
                    return http.post("/api/v1/twins/upper/links", json={"type": "flows_into", "target": "lower"}
                                     ).status_code
                except httpx.ReadTimeout:
                    return "no answer within 20 s"

        with ThreadPoolExecutor(clients) as pool:
            answers = list(pool.map(link, range(clients)))
        assert sorted(answers, key=str) == [201] + [409] * (clients - 1), answers
        with Client(url, user) as uma:
            lower = uma.get_twin("lower").id
            assert [(held.type, held.target_id) for held in uma.links("upper").items] == [("flows_into", lower)]
