"""How fast the engine is back: the command line, ``twin serve``, and ``twin serve`` after a kill -9.

Each figure is printed beside a baseline measured in the same run, on the same machine and load:

1. ``twin --help`` and ``twin app validate examples/apps/river-reach`` (medians of ``--runs``), against the
   interpreter starting and stopping (``python -c pass``).
2. The first answer: ``twin serve`` on an empty data dir (embedded SQLite), and with ``--demo DIR`` on a copy
   of the demo's data dir (``twin demo --data-dir DIR``), from spawning it to the first 200 on ``/health``
   (liveness), on an authenticated ``GET /api/v1/twins`` (the first answer a client waits for) and on
   ``/health/ready`` (readiness: started and warm), against a bare FastAPI app under uvicorn answering its
   first request, spawned in turn with each start (median of ``--runs``; the machine's load average with
   each run). Goals: the first answer within 3 s on an idle 2-core machine, and within 6x the bare app's.
3. The same engine after a kill -9 with ``--stream-mib`` of stream log: to ``/health`` and to the first read
   of the stream answered; what the log adds over the empty start, in seconds per GiB.

Usage: python bench/startup.py [--runs 5] [--stream-mib 256] [--demo DIR] [--only cli,first,crash]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx

REPO = Path(__file__).resolve().parents[1]
TWIN = [sys.executable, "-m", "twinengine.cli.main"]
HELLO = """
import sys, uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""
FASTAPI_HELLO = """
import sys, uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def hello() -> dict[str, str]:
    return {"hello": "world"}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""
TOKEN = re.compile(rb"eyJ[\w-]+\.[\w-]+\.[\w-]+")
CPU: dict[int | str, float] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def median_run(argv: list[str], runs: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds (user + system) of running ``argv`` to its end."""
    times, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times), statistics.median(cpus)


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(probe: Callable[[], bool], process: subprocess.Popen[bytes], start: float,
             timeout: float = 300) -> float:
    """Seconds from ``start`` until ``probe()`` is true (polled every 10 ms); the process's CPU seconds by
    then are in ``CPU[process.pid]``."""
    while True:
        try:
            if probe():
                CPU[process.pid] = cpu_of(process.pid)
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        if time.perf_counter() - start > timeout:
            raise SystemExit("the server did not answer in time")
        time.sleep(0.01)


def ok(url: str, **headers: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, headers=headers, timeout=60).status_code == 200


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    process.send_signal(sig)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def serve(data_dir: Path, port: int) -> tuple[subprocess.Popen[bytes], float]:
    env = {**os.environ, "TWIN_DATA_DIR": str(data_dir), "TWIN_SANDBOX": os.environ.get("TWIN_SANDBOX", "auto")}
    start = time.perf_counter()
    process = subprocess.Popen([*TWIN, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, cwd=REPO)
    return process, start


def drain(process: subprocess.Popen[bytes]) -> None:
    """Keep reading the server's stderr so that a full pipe never blocks it."""
    threading.Thread(target=lambda: [None for _ in iter(process.stderr.readline, b"")],  # type: ignore[union-attr]
                     daemon=True).start()


def bench_cli(runs: int) -> None:
    (base, base_cpu) = median_run([sys.executable, "-c", "pass"], runs)
    (help_, help_cpu) = median_run([*TWIN, "--help"], runs)
    (validate, validate_cpu) = median_run([*TWIN, "app", "validate", "examples/apps/river-reach"], runs)
    print(f"interpreter start (python -c pass)   {base:7.3f} s   baseline; CPU {base_cpu:.3f} s")
    print(f"twin --help                          {help_:7.3f} s   {help_ / base:6.1f}x baseline (goal 0.3 s); "
          f"CPU {help_cpu:.3f} s")
    print(f"twin app validate river-reach        {validate:7.3f} s   {validate / base:6.1f}x baseline (goal 1 s); "
          f"CPU {validate_cpu:.3f} s")


def bench_hello() -> float:
    port = free_port()
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", HELLO, str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        seconds = wait_for(ok(f"http://127.0.0.1:{port}/"), process, start)
        CPU["hello"] = CPU[process.pid]
        return seconds
    finally:
        stop(process)


def ready(url: str) -> Callable[[], bool]:
    """``/health/ready`` answers 200; on an engine without it (404: before readiness existed), ``/health``
    names nothing warming, as that engine said it was warm."""
    def check() -> bool:
        answer = httpx.get(f"{url}/health/ready", timeout=60)
        if answer.status_code == 404:
            health = httpx.get(f"{url}/health", timeout=60)
            return health.status_code == 200 and not {"warming", "engine"} & set(health.json())
        return answer.status_code == 200
    return check


def bench_fastapi() -> tuple[float, float]:
    """A bare FastAPI app under uvicorn: seconds from spawn to its first 200, and its CPU seconds by then."""
    port = free_port()
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", FASTAPI_HELLO, str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        seconds = wait_for(ok(f"http://127.0.0.1:{port}/"), process, start)
        return seconds, CPU[process.pid]
    finally:
        stop(process)


def first_answer(data_dir: Path, token: str | None) -> dict[str, float]:
    """``twin serve`` on ``data_dir`` from spawn: seconds (and CPU seconds) to /health, to the first
    authenticated ``GET /api/v1/twins`` and to /health/ready answering 200. Without ``token``, the first
    admin's, printed on the first start, is read from its output as soon as it is printed."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process, start = serve(data_dir, port)
    printed = threading.Event()
    found: list[str] = [token] if token else []

    def read() -> None:
        for line in iter(process.stderr.readline, b""):  # type: ignore[union-attr]
            match = TOKEN.search(line)
            if match and not found:
                found.append(match.group(0).decode())
                printed.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        out = {"load": os.getloadavg()[0]}
        out["health"] = wait_for(ok(f"{url}/health"), process, start)
        out["health cpu"] = CPU[process.pid]
        if token is None and not printed.wait(300):
            raise SystemExit("twin serve printed no admin token")
        out["api"] = wait_for(ok(f"{url}/api/v1/twins", Authorization=f"Bearer {found[0]}"), process, start)
        out["api cpu"] = CPU[process.pid]
        out["ready"] = wait_for(ready(url), process, start)
        out["ready cpu"] = CPU[process.pid]
        return out
    finally:
        stop(process)


def bench_first(runs: int, demo: Path | None) -> None:
    """The first answer of ``twin serve``, empty and on the demo's data, each beside a bare FastAPI app."""
    from shutil import copytree

    rows: dict[str, list[dict[str, float]]] = {"empty": [], "demo": []}
    with tempfile.TemporaryDirectory(prefix="twin-bench-first-") as tmp:
        demo_token = None
        if demo is not None:
            prepared = Path(tmp) / "demo"
            copytree(demo, prepared)
            demo_token = subprocess.run([*TWIN, "token", "create", "--data-dir", str(prepared), "--name", "bench",
                                         "--role", "user", "--expires", "1d", "--json"], check=True, cwd=REPO,
                                        capture_output=True, text=True).stdout
            demo_token = re.search(r'"token":\s*"([^"]+)"', demo_token).group(1)  # type: ignore[union-attr]
        for run in range(runs):
            for kind in ("empty", "demo") if demo is not None else ("empty",):
                bare, bare_cpu = bench_fastapi()
                data_dir = Path(tmp) / f"{kind}-{run}"
                if kind == "demo":
                    copytree(Path(tmp) / "demo", data_dir)
                row = first_answer(data_dir, demo_token if kind == "demo" else None)
                row.update(bare=bare, **{"bare cpu": bare_cpu})
                rows[kind].append(row)
                print(f"run {run + 1} {kind:<5}  load {row['load']:5.1f}  bare FastAPI {bare:6.3f} s "
                      f"(CPU {bare_cpu:.2f})  /health {row['health']:6.3f}  GET /api/v1/twins {row['api']:6.3f} s (CPU "
                      f"{row['api cpu']:.2f})  ready {row['ready']:6.3f} s (CPU {row['ready cpu']:.2f})", flush=True)

    def med(these: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in these)

    print(f"\nthe first answer of twin serve, medians of {runs} (machine: {os.cpu_count()} cores), wall-clock seconds "
          "from spawn; CPU seconds of the server process by then")
    print(f"{'':<46}{'wall s':>8}{'x bare':>8}{'CPU s':>8}{'x bare':>8}  goal")
    for kind, these in rows.items():
        if not these:
            continue
        bare, bare_cpu = med(these, "bare"), med(these, "bare cpu")
        loads = f"load average {min(r['load'] for r in these):.1f}-{max(r['load'] for r in these):.1f}"
        print(f"{'bare FastAPI app under uvicorn, first 200':<46}{bare:>8.3f}{1:>8.1f}{bare_cpu:>8.2f}{1:>8.1f}  "
              f"baseline ({kind} runs; {loads})")
        for key, label, goal in (("health", "/health 200 (liveness)", ""),
                                 ("api", "first authenticated GET /api/v1/twins", "<= 3 s idle, <= 6x bare"),
                                 ("ready", "/health/ready 200 (readiness)", "")):
            wall, cpu = med(these, key), med(these, f"{key} cpu") if key != "health" else med(these, "health cpu")
            print(f"{f'twin serve ({kind}), ' + label:<46}{wall:>8.3f}{wall / bare:>8.1f}{cpu:>8.2f}"
                  f"{cpu / bare_cpu:>8.1f}  {goal}")


def fill_streams(url: str, token: str, mib: int) -> None:
    """Publish river-reach, create a twin and send ``mib`` MiB of gauge readings in batches of 5,000."""
    from twinengine.client import Client

    with Client(url, token, timeout=300) as admin:
        dev = admin.create_token("bench-dev", "developer").token
        user = admin.create_token("bench-user", "user").token
    Client(url, dev, timeout=300).publish_app(REPO / "examples" / "apps" / "river-reach")
    with Client(url, user, timeout=300) as uma:
        uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    batch = "".join(f'{{"time":"2026-03-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",'
                    f'"station":"RR-01","rain":{i % 7 * 0.5},"level":{1 + i % 11 * 0.1:.2f}}}\n'
                    for i in range(5000)).encode()
    headers = {"Authorization": f"Bearer {user}", "Content-Type": "application/x-ndjson"}
    with httpx.Client(base_url=url, timeout=300, headers=headers) as http:
        for _ in range(max(1, (mib << 20) // len(batch))):
            http.post("/api/v1/twins/reach/streams/gauges/records", content=batch).raise_for_status()


def log_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in (data_dir / "streams").rglob("*.seg"))


def bench_serve(stream_mib: int) -> None:
    hello = bench_hello()
    with tempfile.TemporaryDirectory(prefix="twin-bench-startup-") as tmp:
        data_dir, port = Path(tmp) / "data", free_port()
        url = f"http://127.0.0.1:{port}"
        process, start = serve(data_dir, port)
        health = wait_for(ok(f"{url}/health"), process, start)
        health_cpu = CPU[process.pid]
        printed = b""
        while not TOKEN.search(printed):  # the first admin's token, printed once on the first start
            line = process.stderr.readline() if process.stderr else b""
            if not line:
                raise SystemExit("twin serve printed no admin token")
            printed += line
        admin = TOKEN.search(printed).group(0).decode()  # type: ignore[union-attr]
        drain(process)
        api = wait_for(ok(f"{url}/api/v1/me", Authorization=f"Bearer {admin}"), process, start)
        print(f"\nbare uvicorn app, first 200          {hello:7.3f} s   baseline; CPU {CPU['hello']:.3f} s")
        print(f"twin serve (empty), /health 200      {health:7.3f} s   {health / hello:6.1f}x baseline; "
              f"CPU {health_cpu:.3f} s")
        try:
            fill_streams(url, admin, stream_mib)
        except BaseException:  # the engine is not left serving (it refused app code without a sandbox, say)
            stop(process)
            raise
        process.send_signal(signal.SIGKILL)
        process.wait()
        size = log_bytes(data_dir) / (1 << 30)
        process, start = serve(data_dir, port)
        drain(process)
        try:
            health_after = wait_for(ok(f"{url}/health"), process, start)
            health_cpu = CPU[process.pid]
            read = wait_for(ok(f"{url}/api/v1/twins/reach/streams/gauges/records?last=1",
                               Authorization=f"Bearer {admin}"), process, start)
        finally:
            stop(process)
        print(f"after kill -9, {size:5.2f} GiB log, /health   {health_after:7.3f} s   "
              f"{health_after / hello:6.1f}x baseline; CPU {health_cpu:.3f} s")
        print(f"after kill -9, first stream read     {read:7.3f} s   {read / hello:6.1f}x baseline; "
              f"{read - api:+.2f} s against the empty start")
        bench_log_open(data_dir / "streams", size)


def bench_log_open(root: Path, size: float) -> None:
    """Opening the log as the engine does after a crash (every stream's end), against reading all its bytes."""
    from twinengine.streams.backends.local import LocalLog

    start = time.perf_counter()
    for path in root.rglob("*.seg"):
        with path.open("rb") as fh:
            while fh.read(1 << 24):
                pass
    read_all = time.perf_counter() - start
    start = time.perf_counter()
    log = LocalLog(root)
    ends = {key: log.last(key) for key in log.list_keys()}
    opened = time.perf_counter() - start
    log.close()
    segments = sorted(root.rglob("*.seg"))
    newest = {p.parent: p for p in segments}  # per stream, the open segment: all that opening reads
    scanned = sum(p.stat().st_size for p in newest.values()) / (1 << 30)
    print(f"reading every byte of the log        {read_all:7.3f} s   baseline ({size / read_all:.2f} GiB/s)")
    print(f"opening the log ({len(ends)} streams, {len(segments)} segments, {scanned:.3f} GiB in open ones) "
          f"{opened:7.3f} s   {opened / read_all:6.2f}x baseline; {opened / scanned:.2f} s per GiB scanned "
          f"(goal 1 s/GiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stream-mib", type=int, default=256)
    parser.add_argument("--demo", type=Path, default=None, help="the data folder of a `twin demo` run")
    parser.add_argument("--only", default="cli,first,crash", help="which parts, comma-separated")
    args = parser.parse_args()
    parts = args.only.split(",")
    if "cli" in parts:
        bench_cli(args.runs)
    if "first" in parts:
        bench_first(args.runs, args.demo)
    if "crash" in parts:
        bench_serve(args.stream_mib)


if __name__ == "__main__":
    main()
