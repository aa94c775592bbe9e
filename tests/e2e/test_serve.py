"""``twin serve`` as a real process: loopback by default, first-start admin token, acknowledged writes
that survive a kill -9 (on SQLite and on PostgreSQL), and Ctrl-C heard whatever signal state it inherited."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import RIVER_REACH, admin_token, free_port, serve_engine
from twinengine.client import Client
from twinengine.config import Settings

pytestmark = pytest.mark.every_store  # the store itself, its concurrency, or engines in several processes: both stores


@contextmanager
def serve(settings: Settings, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``twin serve`` on the settings' data dir and database, its output captured (the admin banner)."""
    env = {"TWIN_DATABASE_URL": settings.database_url} if settings.database_url else {}
    with serve_engine(settings.data_dir, port, capture=True, **env) as process:
        yield process


@pytest.mark.sandbox
@pytest.mark.slow
@pytest.mark.ci_only(backend="postgresql")  # a real twin serve on the PostgreSQL server, killed -9
def test_acknowledged_writes_survive_kill_9(settings: Settings) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serve(settings, port) as process:
        token = admin_token(settings)
        with Client(url, token) as admin:
            dev = admin.create_token("ada", "developer").token
            user = admin.create_token("uma", "user").token
        Client(url, dev).publish_app(RIVER_REACH)
        acknowledged = []
        with Client(url, user) as uma:
            uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
            for i in range(25):
                acknowledged.append(uma.report("reach", level=float(i)).revision)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=20)
        assert process.stdout is not None
        banner = process.stdout.read().decode()
    printed = re.search(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", banner)
    assert "first start" in banner and printed is not None  # the one-time admin token was printed
    assert not (settings.data_dir / "admin.token").exists()  # and kept nowhere
    with serve(settings, port) as process, Client(url, user) as uma, Client(url, printed.group(0)) as first:
        assert next(t.identity for t in first.list_tokens()) == "admin"  # the printed token works
        state = uma.get_state("reach")
        assert state.revision == 25 and state.reported["level"].value == 24.0
        assert [r.revision for r in uma.revisions("reach", order="asc", limit=100).items] == acknowledged
        assert uma.history("reach", "level", limit=100).items[-1].value == 24.0
    assert process.stdout is not None
    assert "first start" not in process.stdout.read().decode()  # printed once, not on every start


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses listening on ``port``, read from the kernel's socket table (LISTEN = state 0A)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def test_serve_binds_to_loopback_by_default(tmp_path: Path) -> None:
    port = free_port()
    with serve(Settings(data_dir=tmp_path / "data"), port):
        assert listening_addresses(port) == {"127.0.0.1"}


def _as_a_background_job() -> None:
    """What a script's ``&`` or a thread with the signal blocked hands a child: SIGINT ignored and blocked."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def test_serve_stops_on_ctrl_c_also_when_started_with_sigint_ignored_and_blocked(tmp_path: Path) -> None:
    port = free_port()
    with serve_engine(tmp_path / "data", port, capture=True, preexec=_as_a_background_job) as process:
        with Client(f"http://127.0.0.1:{port}") as probe:
            assert probe.health()["status"] == "ok"
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)  # it served on, deaf to Ctrl-C, before
        assert code != -signal.SIGKILL
        assert process.stdout is not None
        assert "Shutting down" in process.stdout.read().decode(), "no graceful shutdown"
