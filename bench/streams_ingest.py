"""Stream ingestion, measured side by side with its baselines in one run.

1. Durable HTTP batch ingest (JSON lines, 5,000 small records per request, 4 concurrent producers in another
   process) into 1 and into 10 streams of one twin, against the floor of the same disk: the same bodies
   appended to a file with one fsync per batch.
2. MQTT (QoS 1, one record per message, publisher in another process) into 1 and 10 streams, each
   acknowledged only once durable, against mosquitto's own pub→sub rate on the same broker (a QoS 1
   subscriber in another process), measured right before; both from the publisher's first message to the
   last message received (baseline) or durable in the streams (engine).
3. Latency from publish to function start at 10,000 records/s (HTTP batches every 10 ms), p50/p99: the
   function in its sandboxed worker (the default) against the same engine with ``sandbox: none`` (its
   worker unsandboxed), each in an engine of its own, one after the other in the same run.

Usage: python bench/streams_ingest.py [--records 400000] [--messages 20000] [--seconds 10] [--latency-only]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml

from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime

STREAMS = [f"s{i}" for i in range(10)]
FIELDS = {"time": {"type": "timestamp"}, "value": {"type": "float"}, "sent_ns": {"type": "integer"}}
PROBE = '''import time

def probe(ctx, records):
    now = time.time_ns()  # the function runs in the app's sandboxed worker: it reports through an event
    ctx.emit("latency", ms=(now - records[0]["sent_ns"]) / 1e6)
'''


def bench_app(root: Path) -> Path:
    folder = root / "bench-app"
    (folder / "bench_app").mkdir(parents=True)
    manifest = {"manifest_version": 1, "name": "bench-app", "version": "1.0.0", "title": "Stream bench",
                "domain": "testing", "authors": [{"name": "bench"}], "license": "MIT",
                "streams": {s: {"fields": FIELDS} for s in STREAMS},
                "functions": {"probe": {"entrypoint": "bench_app.fns:probe", "stream": "latency"}}}
    manifest["streams"]["latency"] = {"fields": FIELDS}
    (folder / "twinapp.yaml").write_text(yaml.safe_dump(manifest))
    (folder / "bench_app" / "__init__.py").write_text("")
    (folder / "bench_app" / "fns.py").write_text(PROBE)
    return folder


def body(n: int, start: int = 0) -> bytes:
    now = time.time_ns()
    return "".join(f'{{"time":"2026-03-01T00:00:{(start + i) % 60:02d}Z","value":{(start + i) * 0.5},'
                   f'"sent_ns":{now}}}\n' for i in range(n)).encode()


# -- 1. HTTP --------------------------------------------------------------------------------------------

def _http_producer(url: str, token: str, streams: list[str], batches: int, size: int, workers: int,
                   out: Any) -> None:
    payload = body(size)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    done = [0] * workers

    def work(w: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for b in range(w, batches, workers):
                stream = streams[b % len(streams)]
                r = http.post(f"/api/v1/twins/bench/streams/{stream}/records", content=payload, headers=headers)
                if r.status_code != 201:
                    raise SystemExit(f"HTTP {r.status_code}: {r.text[:200]}")
                done[w] += size

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(sum(done) / (time.perf_counter() - started))


def in_process(target: Any, *args: Any) -> Any:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, out))
    proc.start()
    value = out.get(timeout=600)
    proc.join(timeout=60)
    return value


def floor_rate(folder: Path, batches: int, size: int) -> float:
    payload = body(size)
    path = folder / "floor.jsonl"
    with path.open("ab") as fh:
        started = time.perf_counter()
        for _ in range(batches):
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        seconds = time.perf_counter() - started
    path.unlink()
    return batches * size / seconds


# -- 2. MQTT --------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mosquitto(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 1000\n"
                    "max_queued_messages 0\n")
    proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, port


def _mqtt_client(port: int, name: str, clean: bool = True) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, clean_session=clean)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    return client


def _mqtt_publisher(port: int, topics: list[str], n: int, out: Any) -> None:
    client = _mqtt_client(port, f"bench-pub-{os.getpid()}")
    client.loop_start()
    now = time.time_ns()
    payloads = [json.dumps({"time": "2026-03-01T00:00:00Z", "value": i * 0.5, "sent_ns": now}) for i in range(n)]
    out.put(time.time())  # both measurements start here: connected, about to publish the first message
    started = time.perf_counter()
    infos = [client.publish(topics[i % len(topics)], payloads[i], qos=1) for i in range(n)]
    for info in infos:
        info.wait_for_publish(120)
    out.put(time.perf_counter() - started)
    client.loop_stop()


def _mqtt_subscriber(port: int, topics: list[str], n: int, out: Any) -> None:
    client = _mqtt_client(port, f"bench-sub-{os.getpid()}")
    got = [0]
    done = threading.Event()
    finished: list[float] = []

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        got[0] += 1
        if got[0] >= n:
            finished.append(time.time())
            done.set()

    client.on_message = on_message
    client.subscribe([(t, 1) for t in topics])
    client.loop_start()
    out.put("ready")
    done.wait(300)
    out.put(finished[0])
    client.loop_stop()


def mosquitto_rate(port: int, topics: list[str], n: int) -> float:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    sub = ctx.Process(target=_mqtt_subscriber, args=(port, topics, n, out))
    sub.start()
    assert out.get(timeout=60) == "ready"
    time.sleep(0.3)
    pub_out = ctx.Queue()
    pub = ctx.Process(target=_mqtt_publisher, args=(port, topics, n, pub_out))
    pub.start()
    started = float(pub_out.get(timeout=60))
    finished = float(out.get(timeout=600))
    pub.join(timeout=60)
    sub.join(timeout=60)
    return n / (finished - started)


def engine_mqtt_rate(runtime: Runtime, client: Client, port: int, topics: list[str], streams: list[str],
                     n: int) -> float:
    before = {s: client.streams.read("bench", s, last=1).end_offset for s in streams}
    ctx = mp.get_context("spawn")
    pub_out = ctx.Queue()
    pub = ctx.Process(target=_mqtt_publisher, args=(port, topics, n, pub_out))
    pub.start()
    twin_id = client.get_twin("bench").id
    started = float(pub_out.get(timeout=60))
    while sum(runtime.streams.end(f"{twin_id}/{s}") - before[s] for s in streams) < n:
        time.sleep(0.002)
    rate = n / (time.time() - started)
    pub.join(timeout=60)
    return rate


# -- 3. latency ---------------------------------------------------------------------------------------

def _paced_producer(url: str, token: str, seconds: float, rate: int, out: Any) -> None:
    """Offer ``rate`` records/s: every 10 ms, whatever the schedule says is due (100 records on time)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    sent = 0
    with httpx.Client(base_url=url, timeout=60) as http:
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            due = int(elapsed * rate) - sent
            if due <= 0:
                time.sleep(0.01 - elapsed % 0.01)
                continue
            r = http.post("/api/v1/twins/bench/streams/latency/records", content=body(due, sent), headers=headers)
            assert r.status_code == 201, r.text
            sent += due
        out.put(sent / (time.perf_counter() - started))


@contextmanager
def bench_twin(runtime: Runtime, root: Path) -> Iterator[tuple[InProcessServer, Client, str]]:
    """``runtime`` started and served in-process, the bench app published and its twin ``bench`` created: the
    server, a user's client and that user's token."""
    admin_token = runtime.start() or ""
    with InProcessServer(create_app(runtime=runtime)) as server, Client(server.url, admin_token) as admin:
        dev = admin.create_token("ada", "developer").token
        token = admin.create_token("uma", "user").token
        Client(server.url, dev).publish_app(bench_app(root))
        client = Client(server.url, token)
        client.create_twin("bench-app@1.0.0", "bench", {})
        yield server, client, token


def latency_run(tmp: Path, sandbox: str, seconds: float) -> tuple[float, list[float]]:
    """Publish → function start in an engine of its own whose workers run under ``sandbox``: the records/s
    achieved and each call's latency in ms."""
    root = tmp / f"latency-{sandbox}"
    runtime = Runtime.from_settings(Settings(data_dir=root / "engine", sandbox=sandbox))
    try:
        with bench_twin(runtime, root) as (server, client, token):
            in_process(_paced_producer, server.url, token, 1.0, 1_000)  # the function's worker starts warm
            time.sleep(1.0)
            warm = max((e.offset for e in client.streams.events("bench", last=10_000)), default=-1)
            achieved = in_process(_paced_producer, server.url, token, seconds, 10_000)
            time.sleep(1.0)
            events = client.streams.events("bench", last=10_000)
            return achieved, [float(e.data["ms"]) for e in events if e.kind == "latency" and e.offset > warm]
    finally:
        runtime.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=400_000, help="records per HTTP run")
    parser.add_argument("--messages", type=int, default=20_000, help="MQTT messages per run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each latency run")
    parser.add_argument("--latency-only", action="store_true", help="only part 3, sandboxed and unsandboxed")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="twin-bench-"))
    try:
        rows = [] if args.latency_only else throughput(tmp, args.records, args.messages)
        latencies = {mode: latency_run(tmp, mode, args.seconds) for mode in ("bwrap", "none")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if rows:
        print("\nstream ingestion, durable (acknowledged after fsync), engine vs baseline in the same run\n")
        print(f"{'path':<28}{'records/s':>12}{'baseline/s':>12}{'ratio':>8}  baseline")
        for name, rate, base, what in rows:
            print(f"{name:<28}{rate:>12,.0f}{base:>12,.0f}{rate / base:>8.2f}  {what}")
    print("\npublish → function start, HTTP batches every 10 ms, each mode in an engine of its own, same run\n")
    print(f"{'worker':<14}{'records/s':>11}{'calls':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    p99 = {}
    for mode, (achieved, values) in latencies.items():
        if not values:
            print(f"{mode:<14}{achieved:>11,.0f}{0:>7}  no call reported")
            continue
        p99[mode] = percentile(values, 0.99)
        print(f"{'sandboxed' if mode == 'bwrap' else 'unsandboxed':<14}{achieved:>11,.0f}{len(values):>7}"
              f"{percentile(values, 0.5):>9.1f}{p99[mode]:>9.1f}{max(values):>9.1f}")
    if len(p99) == 2:
        print(f"\np99 sandboxed ÷ unsandboxed: {p99['bwrap'] / p99['none']:.2f}")


def throughput(tmp: Path, records: int, messages: int) -> list[tuple[str, float, float, str]]:
    """Parts 1 and 2 in one engine: each path's records/s beside its baseline."""
    size = 5000
    batches = max(records // size, 4)
    broker, port = start_mosquitto(tmp)
    runtime = Runtime.from_settings(Settings(data_dir=tmp / "engine", mqtt_url=f"mqtt://127.0.0.1:{port}"))
    rows: list[tuple[str, float, float, str]] = []
    try:
        with bench_twin(runtime, tmp) as (server, client, token):
            for streams in (STREAMS[:1], STREAMS):
                floor = floor_rate(tmp, batches, size)
                rate = in_process(_http_producer, server.url, token, streams, batches, size, 4)
                rows.append((f"HTTP batches, {len(streams)} stream{'s' * (len(streams) > 1)}", rate, floor,
                             "fsync'd append of the same bytes"))
            for count in (1, 10):
                topics = [f"bench/{s}" for s in STREAMS[:count]]
                baseline = mosquitto_rate(port, topics, messages)
                for topic, stream in zip(topics, STREAMS[:count], strict=True):
                    client.streams.bind_mqtt("bench", stream, topic)
                time.sleep(2.0)  # the bridge subscribes within a second
                rate = engine_mqtt_rate(runtime, client, port, topics, STREAMS[:count], messages)
                rows.append((f"MQTT QoS 1, {count} stream{'s' * (count > 1)}", rate, baseline,
                             "mosquitto pub→sub, same broker"))
                for stream in STREAMS[:count]:
                    client.streams.unbind_mqtt("bench", stream)
    finally:
        runtime.close()
        broker.terminate()
        broker.wait(timeout=10)
    return rows


if __name__ == "__main__":
    main()
