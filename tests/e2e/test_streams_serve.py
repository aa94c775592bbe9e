"""``twin serve`` killed with SIGKILL during sustained ingestion, on both stream logs: after a restart every
acknowledged record is there exactly once (the producer resends what was not acknowledged; its sequence
numbers drop what had been appended already)."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from helpers import RIVER_REACH, admin_token, free_port, serve_engine
from streams_fixtures import drop_streams, gauge, stream_backend, stream_settings  # noqa: F401
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.errors import EngineUnavailable, TwinEngineError
from twinengine.runtime import Runtime

pytestmark = pytest.mark.ci_only  # kill -9 of a real twin serve during ingestion, on each stream log

BATCH = 250


@contextmanager
def serve(settings: Settings, port: int) -> Iterator[subprocess.Popen[bytes]]:
    with serve_engine(settings.data_dir, port, TWIN_STREAM_BACKEND=settings.stream_backend,
                      TWIN_NATS_URL=settings.nats_url) as process:
        yield process


class Producer(threading.Thread):
    """Sends numbered batches as fast as the engine acknowledges them, until told to stop or refused."""

    def __init__(self, url: str, token: str, start: int = 0, until: int | None = None) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.next, self.until = url, token, start, until
        self.acknowledged: set[int] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        with Client(self.url, self.token, timeout=10) as client:
            while not self.stop.is_set() and (self.until is None or self.next < self.until):
                seqs = range(self.next, self.next + BATCH)
                try:
                    client.streams.append("reach", "gauges", [gauge(s, level=float(s)) for s in seqs],
                                          producer="gauge-rr01", seq=self.next)
                except (EngineUnavailable, TwinEngineError):
                    return
                self.acknowledged.update(seqs)
                self.next += BATCH


@pytest.mark.sandbox
@pytest.mark.slow
def test_kill_9_during_ingestion_keeps_every_acknowledged_record_once(
        tmp_path: Path, stream_backend: str, drop_streams: list[Any]) -> None:  # noqa: F811
    settings = stream_settings(tmp_path / "data", stream_backend)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serve(settings, port) as process:
        with Client(url, admin_token(settings)) as admin:
            dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
        Client(url, dev).publish_app(RIVER_REACH)
        with Client(url, user) as uma:
            uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
        producer = Producer(url, user)
        producer.start()
        deadline = time.monotonic() + 30
        while len(producer.acknowledged) < 20 * BATCH and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)  # mid-stream: batches in flight are lost or half-written
        process.wait(timeout=20)
        producer.join(timeout=30)
    acknowledged = producer.acknowledged
    assert len(acknowledged) >= 20 * BATCH
    with serve(settings, port):
        resend = Producer(url, user, start=producer.next, until=producer.next + 4 * BATCH)
        resend.next = max(acknowledged) + 1  # the producer resends from its first unacknowledged number
        resend.next -= BATCH  # ...and, not sure of its last ack, one batch more: these must be dropped
        resend.run()
        with Client(url, user) as uma:
            table = uma.streams.read_arrow("reach", "gauges", limit=100_000)
    levels = Counter(int(v) for v in table.column("level").to_pylist())
    assert set(acknowledged) <= set(levels)  # nothing acknowledged was lost
    assert max(levels.values()) == 1  # and nothing is there twice
    assert table.column("_offset").to_pylist() == list(range(table.num_rows))  # offsets stay gap-free
    runtime = Runtime.from_settings(settings)
    drop_streams.append(runtime)
