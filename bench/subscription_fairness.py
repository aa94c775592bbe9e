"""How long one user's alert takes to reach its webhook while another user's 100 webhooks hang, against the same
alert on the same engine while nothing else is sent, measured side by side in one run.

One ``twin serve`` (default settings, but webhooks allowed to reach loopback). User A holds 100 subscriptions
(the most a user may), each to a receiver of a tarpit on loopback that takes the connection and never answers;
user B holds one, to a receiver on one of the tarpit's own hosts. B's latency is the time from B's state write
(before the request) to B's receiver getting the message: ``--rounds`` times while A is quiet (idle), then, after
one change of A's twin has queued 100 messages to the tarpit, ``--rounds`` times while A's tries hang (each
until ``subscription_webhook_timeout``, 15 s, then retried), ``--gap`` seconds apart, so that the loaded rounds
span several of A's timeouts.

Usage: python bench/subscription_fairness.py [--rounds 10] [--gap 2]
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from served import TwinServe  # beside this script

from twinengine.auth.principal import SYSTEM
from twinengine.bootstrap import prepare_store
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.runtime import Runtime

TARPITS = 100
HOSTS = [f"127.0.0.{n}" for n in range(10, 20)]
MANIFEST = {"manifest_version": 1, "name": "alerting", "version": "1.0.0", "title": "Alerting",
            "description": "One alert.", "domain": "testing", "authors": [{"name": "Bench"}], "license": "MIT",
            "parameters": {"type": "object", "properties": {"station": {"type": "string"}}},
            "state": {"alert": {"type": "boolean"}}}


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def receiver(host: str) -> Iterator[tuple[str, list[float]]]:
    """A webhook receiver answering 200 at once; yields its URL and the monotonic times POSTs arrived."""
    arrived: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrived.append(time.monotonic())
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer((host, free_port(host)), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}/hook", arrived
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def tarpit(hosts: list[str]) -> Iterator[tuple[int, list[int]]]:
    """Listeners on each of ``hosts`` (one port) that accept and never answer; yields the port and a counter."""
    port, accepted, held, listeners = free_port(hosts[0]), [0], list[socket.socket](), list[socket.socket]()
    selector, stop = selectors.DefaultSelector(), threading.Event()
    for host in hosts:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(256)
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ, len(listeners))
        listeners.append(listener)

    def hold() -> None:
        while not stop.is_set():
            for key, _ in selector.select(timeout=0.1):
                try:
                    held.append(listeners[key.data].accept()[0])
                    accepted[0] += 1
                except BlockingIOError:
                    pass

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        yield port, accepted
    finally:
        stop.set()
        thread.join(timeout=10)
        selector.close()
        for sock in [*held, *listeners]:
            sock.close()


def alert_latency(bob: Client, arrived: list[float], value: bool) -> float:
    """Seconds from B's state write to B's receiver getting the message."""
    before, start = len(arrived), time.monotonic()
    bob.report("bob-reach", alert=value)
    deadline = start + 600
    while len(arrived) == before:
        if time.monotonic() > deadline:
            raise SystemExit("B's alert did not arrive within 600 s")
        time.sleep(0.002)
    return arrived[before] - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--gap", type=float, default=2.0, help="Seconds between two of B's alerts.")
    args = parser.parse_args()
    os.environ["TWIN_SUBSCRIPTION_WEBHOOK_HOSTS"] = "127.0.0.0/8"  # as an admin lists a private network
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", subscription_webhook_hosts=["127.0.0.0/8"])
        runtime = Runtime.from_settings(settings)
        try:
            admin_token = prepare_store(runtime.db, runtime.issuer, settings)
            app = Path(tmp) / "alerting"
            (app / "alerting").mkdir(parents=True)
            (app / "alerting" / "__init__.py").write_text('"""Alerting."""\n')
            (app / "twinapp.yaml").write_text(yaml.safe_dump(MANIFEST))
            with runtime.db.session() as session:
                publish(session, runtime.blobs, principal=SYSTEM, archive=pack(app), max_archive_bytes=10**8,
                        max_unpacked_bytes=10**8, steps=runtime.publish_steps)
        finally:
            runtime.close()
        with TwinServe(settings) as url, Client(url, admin_token) as admin, tarpit(HOSTS) as (port, accepted), \
                receiver(HOSTS[0]) as (hook, arrived):
            ana = Client(url, admin.create_token("ana", "user").token)
            bob = Client(url, admin.create_token("bob", "user").token)
            for who, twin in ((ana, "ana-reach"), (bob, "bob-reach")):
                who.create_twin("alerting@1.0.0", twin, {"station": twin})
                who.report(twin, alert=False)
            for n in range(TARPITS):
                ana.subscriptions.subscribe("ana-reach", "alert changes",
                                            webhook=f"http://{HOSTS[n % len(HOSTS)]}:{port}/hook/{n}")
            bob.subscriptions.subscribe("bob-reach", "alert changes", webhook=hook)
            value = False
            idle = []
            for _ in range(args.rounds):
                value = not value
                idle.append(alert_latency(bob, arrived, value))
                time.sleep(args.gap)
            ana.report("ana-reach", alert=True)  # 100 messages to the tarpit
            deadline = time.monotonic() + 60
            while accepted[0] == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            loaded = []
            for _ in range(args.rounds):
                value = not value
                loaded.append(alert_latency(bob, arrived, value))
                time.sleep(args.gap)
            held = accepted[0]
            ana.close()
            bob.close()
    idle_ms, loaded_ms = statistics.median(idle) * 1000, statistics.median(loaded) * 1000
    print(f"B's alert, write to webhook, median of {args.rounds} (max), ms, {args.gap:g} s apart:")
    print(f"  idle engine:                    {idle_ms:8.1f} ({max(idle) * 1000:.1f})")
    print(f"  A's {TARPITS} tarpit webhooks queued: {loaded_ms:8.1f} ({max(loaded) * 1000:.1f})  "
          f"ratio {loaded_ms / idle_ms:.2f}; added {loaded_ms - idle_ms:+.1f} ms")
    print(f"  A's tries the tarpit took meanwhile: {held} (subscription_sends_per_owner bounds them at once)")


if __name__ == "__main__":
    main()
