"""``/health`` latency while anonymous connections send oversized requests, beside ``/health`` idle, one run;
``twin serve`` (its edge, ``api/edge.py``) beside uvicorn serving the same engine alone (the baseline: how
``twin serve`` ran before the edge), each in a process of its own on a fresh SQLite data folder.

Each server is probed on one keep-alive connection (``http.client``, 20 probes a second, a probe that gets no
answer in 10 s counted at 10 s). Phases, each ``--seconds`` long, in this order:

- idle: nothing else;
- request lines: 10 connections each send ``GET /edr/collections/river-reach-rain/position?coords=AAAA…``
  with a 100 MB request line; when the engine answers or closes, the connection is opened again;
- bodies: 10 connections each ``POST /api/v1/twins`` a 100 MB body (5 declaring it by Content-Length,
  5 chunked);
- slow heads: 10 connections each send a request head one header line every 0.5 s, never ending it
  (slowloris);
- mixed: 4 request lines, 3 bodies, 3 slow heads at once.

The attackers run in processes of their own (an attacker thread in the prober's process would hold its
interpreter lock and be timed as the engine's), started and imported before a phase begins. For each phase:
/health p50/p99/max and its probes that got no answer; per attack, the connections opened, how the engine
ended them (status, "closed" without one, "none" still open when the phase ended), the median time from the
first byte to that end, and the median megabytes the kernel took from the attacker before that end (socket
buffers included). Then single requests: one request line of 1, 20, 60 and 100 MiB, each timed alone
(``--single``).

The attackers share the machine's cores with the engine and the prober: on a 2-core machine their own
sending and reconnecting is part of the load the engine is measured under.

Usage: python bench/request_limits.py [--seconds 20] [--single 1,20,60,100] [--edge-only]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from threading import Thread
from typing import Any

MB = 1_000_000
CHUNK = b"A" * (1 << 20)
PATH = "/edr/collections/river-reach-rain/position?coords="
PROBE_TIMEOUT = 10.0


# -- attackers (in processes of their own) -------------------------------------------------------------------

def _answer(sock: socket.socket, wait: float) -> str:
    """The status the engine answered with, "closed" when it closed without one, "none" when it neither
    answered nor closed within ``wait`` seconds."""
    sock.settimeout(max(wait, 0.05))
    data = b""
    try:
        while b"\r\n" not in data:
            piece = sock.recv(4096)
            if not piece:
                break
            data += piece
    except TimeoutError:
        return "none"
    except OSError:
        pass
    return data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.") else "closed"


def _send(sock: socket.socket, head: bytes, size: int, chunked: bool, tail: bytes, stop_at: float,
          sent: list[int]) -> None:
    """Send ``head``, ``size`` bytes of A's (as chunks when ``chunked``), then ``tail``; ``sent[0]`` counts the
    bytes the kernel took (until the engine closes: then sending raises)."""
    sock.sendall(head)
    while sent[0] < size:
        if time.monotonic() > stop_at:
            return  # the phase ended: no tail, which would make a short request of it
        piece = CHUNK[:size - sent[0]]
        if chunked:
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent[0] += len(piece)
        else:
            sent[0] += sock.send(piece)
    sock.sendall(b"0\r\n\r\n" if chunked else tail)


def _attack(kind: str, index: int, port: int, stop_at: float, out: list[tuple[str, str, float, int]]) -> None:
    while time.monotonic() < stop_at:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            time.sleep(0.05)
            continue
        started, sent = time.monotonic(), [0]
        try:
            sock.settimeout(max(stop_at - started, 0.05))
            if kind == "request line":
                _send(sock, f"GET {PATH}".encode(), 100 * MB, False, b" HTTP/1.1\r\nHost: bench\r\n\r\n", stop_at,
                      sent)
            elif kind == "body":
                chunked = index % 2 == 1
                framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % (100 * MB)
                _send(sock, b"POST /api/v1/twins HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                      + framing + b"\r\n\r\n", 100 * MB, chunked, b"", stop_at, sent)
            else:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\n")
                line = 0
                while time.monotonic() < stop_at:
                    time.sleep(0.5)
                    sock.sendall(b"X-Drip-%d: a\r\n" % line)
                    line += 1
        except OSError:
            pass
        status = _answer(sock, stop_at - time.monotonic())
        out.append((kind, status, time.monotonic() - started, sent[0]))
        sock.close()


def attacker(kinds: list[str], port: int, seconds: float, ready: Any, go: Any, results: Any) -> None:
    """One process: a thread per connection in ``kinds``, from ``go`` for ``seconds``; puts its records on
    ``results`` at the end."""
    out: list[tuple[str, str, float, int]] = []
    ready.put(True)
    go.wait()
    stop_at = time.monotonic() + seconds
    threads = [Thread(target=_attack, args=(kind, i, port, stop_at, out), daemon=True) for i, kind in enumerate(kinds)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(stop_at - time.monotonic(), 0) + 30)
    results.put(out)


# -- the prober (this process) -------------------------------------------------------------------------------

class Prober:
    def __init__(self, port: int) -> None:
        self.port = port
        self.connection: http.client.HTTPConnection | None = None

    def probe(self) -> float:
        """Seconds for one ``GET /health`` (``PROBE_TIMEOUT`` when it got no answer in time)."""
        started = time.perf_counter()
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=PROBE_TIMEOUT)
            self.connection.request("GET", "/health")
            response = self.connection.getresponse()
            response.read()
            if response.status != 200:
                raise OSError(response.status)
            return time.perf_counter() - started
        except (OSError, http.client.HTTPException):
            if self.connection is not None:
                self.connection.close()
            self.connection = None
            return max(time.perf_counter() - started, PROBE_TIMEOUT)

    def run(self, seconds: float) -> list[float]:
        samples, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            tick = time.monotonic()
            samples.append(self.probe())
            time.sleep(max(0.0, 0.05 - (time.monotonic() - tick)))
        return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def phase(prober: Prober, port: int, seconds: float, groups: list[list[str]]) -> tuple[list[float], list[Any]]:
    context = multiprocessing.get_context("spawn")
    results, ready, go = context.Queue(), context.Queue(), context.Event()
    processes = [context.Process(target=attacker, args=(kinds, port, seconds, ready, go, results))
                 for kinds in groups]
    for process in processes:
        process.start()
    for _ in processes:  # started and imported: the attack and the probing begin together
        ready.get(timeout=120)
    go.set()
    samples = prober.run(seconds)
    records: list[Any] = []
    for _ in processes:
        records.extend(results.get(timeout=120))
    for process in processes:
        process.join(timeout=30)
    return samples, records


def ms(value: float) -> str:
    return f"{value * 1000:8.1f} ms"


def report(name: str, samples: list[float], records: list[Any], idle_p99: float | None) -> None:
    missed = sum(1 for s in samples if s >= PROBE_TIMEOUT)
    p99 = percentile(samples, 0.99)
    ratio = f"  p99 x{p99 / idle_p99:6.1f} idle" if idle_p99 else ""
    print(f"{name:<14} /health p50 {ms(percentile(samples, 0.5))}  p99 {ms(p99)}  max {ms(max(samples))}  "
          f"no answer {missed}/{len(samples)}{ratio}")
    for kind in sorted({r[0] for r in records}):
        mine = [r for r in records if r[0] == kind]
        endings = Counter(r[1] for r in mine)
        took, sent = statistics.median(r[2] for r in mine), statistics.median(r[3] for r in mine) / MB
        print(f"{'':14}   {kind:<13} {len(mine):5} connections, ended by {dict(endings)}, median "
              f"{took:7.2f} s to the end, {sent:7.1f} MB sent")


def single(port: int, mib: int) -> str:
    """One request line of ``mib`` MiB, alone: the time from its first byte to the engine's answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=300) as sock:
        started = time.monotonic()
        with contextlib.suppress(OSError):  # the engine answered and closed before the line ended
            _send(sock, f"GET {PATH}".encode(), mib << 20, False, b" HTTP/1.1\r\nHost: bench\r\n\r\n",
                  started + 300, [0])
        status = _answer(sock, 300)
        return f"{status} after {time.monotonic() - started:.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="Length of each phase.")
    parser.add_argument("--single", default="1,20,60,100", help="Sizes (MiB) of the lone request lines.")
    parser.add_argument("--edge-only", action="store_true", help="Skip the baseline (uvicorn alone).")
    args = parser.parse_args()
    from served import TwinServe  # here, not at the top: the attackers' processes import this module too

    from twinengine.config import Settings

    with tempfile.TemporaryDirectory(prefix="twin-bench-limits-") as folder:
        if not args.edge_only:
            print("uvicorn alone, as twin serve ran before its edge (the baseline):")
            with PlainServe(Path(folder) / "plain") as port:
                measure(port, args)
        print("twin serve:")
        with TwinServe(Settings(data_dir=Path(folder) / "edge")) as url:
            measure(int(url.rsplit(":", 1)[1]), args)


PLAIN = """
import sys, uvicorn
from twinengine.api.starting import StartingApp
from twinengine.config import Settings
uvicorn.run(StartingApp(Settings()), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            timeout_graceful_shutdown=5)
"""


class PlainServe:
    """The same engine served by uvicorn with its own protocol and nothing in front (``--edge-only`` skips)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> int:
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = int(free.getsockname()[1])
        env = {**os.environ, "TWIN_DATA_DIR": str(self.data_dir)}
        self.process = subprocess.Popen([sys.executable, "-c", PLAIN, str(port)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                    return port
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the plain uvicorn server did not start") from None
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def measure(port: int, args: argparse.Namespace) -> None:
    from twinengine.client import Client

    with Client(f"http://127.0.0.1:{port}") as probe:  # the engine behind the listening socket has started
        deadline = time.monotonic() + 300
        while probe.health().get("engine") == "starting" and time.monotonic() < deadline:
            time.sleep(0.2)
    prober = Prober(port)
    prober.run(2.0)  # warm
    line, body, slow = ["request line"], ["body"], ["slow head"]
    phases: list[tuple[str, list[list[str]]]] = [
        ("idle", []), ("request lines", [line * 5, line * 5]), ("bodies", [body * 5, body * 5]),
        ("slow heads", [slow * 10]), ("mixed", [line * 4, body * 3 + slow * 3])]
    idle_p99: float | None = None
    for name, groups in phases:
        samples, records = phase(prober, port, args.seconds, groups)
        report(name, samples, records, idle_p99)
        if name == "idle":
            idle_p99 = percentile(samples, 0.99)
    for mib in (int(s) for s in args.single.split(",") if s):
        print(f"one request line of {mib:3} MiB alone: {single(port, mib)};  /health after it "
              f"{ms(prober.probe())}")


if __name__ == "__main__":
    main()
