"""Two engines as on two hosts: each ``twin serve`` with a data dir of its own, sharing only the PostgreSQL store,
the NATS stream log and the issuer's key folder (which an operator copies to each host, as for any shared signing
key). An app published through one runs on the other; gauge readings sent to either become state once each; the
leader running functions on arrival is killed with -9 while readings keep coming, and the other engine takes the
loops over with no reading lost and none applied twice."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from helpers import RIVER_REACH, admin_token, free_port, serve_engine
from streams_fixtures import eventually, gauge, require_nats
from twinengine.client import Client
from twinengine.config import Settings

# ci_only: two twin serve engines on PostgreSQL and NATS, one killed -9
# the store itself, its concurrency, or engines in several processes: both stores
pytestmark = [pytest.mark.every_store, pytest.mark.ci_only]

READINGS = 120
BATCH = 5


@pytest.fixture
def database(own_database: str) -> str:
    return own_database.replace("postgresql://", "postgresql+psycopg://", 1)


def primary(port: int) -> bool:
    try:
        return bool(httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json().get("primary"))
    except httpx.HTTPError:
        return False


@pytest.mark.sandbox
@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(420)
def test_two_hosts_lose_and_repeat_no_reading_when_the_leader_is_killed(database: str, tmp_path: Path) -> None:
    nats = require_nats()
    env = {"TWIN_DATABASE_URL": database, "TWIN_STREAM_BACKEND": "nats", "TWIN_NATS_URL": nats,
           "TWIN_ENGINES_SHARE_STORE": "true"}
    hosts = [tmp_path / "host-a", tmp_path / "host-b"]
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    with serve_engine(hosts[0], ports[0], **env) as first:
        shutil.copytree(hosts[0] / "keys", hosts[1] / "keys")  # the operator's one step: the issuer's keys
        with serve_engine(hosts[1], ports[1], **env) as second:
            processes = [first, second]
            token = admin_token(Settings(data_dir=hosts[0], database_url=database))
            with Client(urls[0], token) as admin:
                dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
            Client(urls[0], dev).publish_app(RIVER_REACH)  # published through one engine ...
            with Client(urls[1], user) as uma:  # ... a twin of it made through the other
                uma.create_twin("river-reach@0.1.0", "gauged", {"station": "RR-01"})

            leaders = eventually(lambda: [i for i in (0, 1) if primary(ports[i])], timeout=60)
            assert len(leaders) == 1, leaders
            leader, follower = leaders[0], 1 - leaders[0]
            assert not primary(ports[follower])

            def levels() -> int:
                with Client(urls[follower], user) as reader:
                    return len(reader.history("gauged", "level", limit=1000).items)

            # The first readings, sent to both engines in turn.
            for n, first_reading in enumerate(range(0, 40, BATCH)):
                with Client(urls[n % 2], user) as once:
                    once.streams.append("gauged", "gauges", [gauge(i) for i in range(first_reading,
                                                                                     first_reading + BATCH)])
            eventually(lambda: levels() == 40, timeout=90)

            # Readings keep arriving at the follower while the leader is killed.
            sent: list[int] = []

            def send() -> None:
                for first_reading in range(40, READINGS, BATCH):
                    with Client(urls[follower], user) as once:
                        once.streams.append("gauged", "gauges", [gauge(i) for i in range(first_reading,
                                                                                         first_reading + BATCH)])
                    sent.append(first_reading)
                    time.sleep(0.1)

            sender = threading.Thread(target=send)
            sender.start()
            time.sleep(0.5)
            processes[leader].send_signal(signal.SIGKILL)
            processes[leader].wait()
            sender.join(timeout=120)
            assert len(sent) == (READINGS - 40) // BATCH  # every batch acknowledged by the surviving engine
            eventually(lambda: primary(ports[follower]), timeout=60)
            eventually(lambda: levels() >= READINGS, timeout=120)  # none lost
            time.sleep(3)  # a reading applied twice would show by now
            assert levels() == READINGS  # none repeated
