"""``twin admin backup`` while a served engine takes writes, then ``twin admin restore`` into another data dir (and
another store): the restored engine serves the same twins, histories, stream records, lake files and runs,
identical where both have them, and has every write acknowledged before the backup's snapshot.

SQLite to SQLite here; PostgreSQL to another PostgreSQL database (and SQLite to PostgreSQL) in CI.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from helpers import RIVER_REACH, admin_token, free_port, serve_engine
from streams_fixtures import gauge
from twinengine.client import Client
from twinengine.config import Settings

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(600)]

GRAPH = {"process_graph": {"sum": {"process_id": "add", "arguments": {"x": 40, "y": 2}, "result": True}}}


def twin_cli(*args: str, **env: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "twinengine.cli.main", "--json", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


@dataclass
class Acknowledged:
    """Writes the engine acknowledged while the backup ran: (when, what) pairs."""

    revisions: list[tuple[float, int]] = field(default_factory=list)
    records: list[tuple[float, int]] = field(default_factory=list)


def keep_writing(url: str, token: str, stop: threading.Event, acked: Acknowledged) -> None:
    """Report a level and send a gauge reading, again and again, noting when each was acknowledged."""
    with Client(url, token) as uma:
        i = 1000
        while not stop.is_set():
            revision = uma.report("reach", level=round(1.0 + i / 1e4, 4), timestamp=f"2026-03-02T00:{i % 60:02d}:00Z")
            acked.revisions.append((time.time(), revision.revision))
            sent = uma.streams.append("reach", "gauges", [gauge(i)])
            acked.records.append((time.time(), sent.next_offset - 1))
            i += 1


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_registry(data: Path) -> None:
    """The embedded model registry's file, as MLflow keeps it (SQLite in the data dir)."""
    with closing(sqlite3.connect(data / "mlflow.db")) as registry:
        registry.execute("PRAGMA journal_mode=WAL")
        registry.execute("CREATE TABLE model_versions (name TEXT, version INTEGER, source TEXT)")
        registry.executemany("INSERT INTO model_versions VALUES (?, ?, ?)",
                             [("reach-runoff", v, f"mlartifacts/{v}/model") for v in (1, 2)])
        registry.commit()


def registry_rows(data: Path) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(data / "mlflow.db")) as registry:
        return list(registry.execute("SELECT * FROM model_versions ORDER BY version"))


def backup_and_restore(tmp_path: Path, source_env: dict[str, str], target_env: dict[str, str]) -> None:
    source, target, folder = tmp_path / "host-a", tmp_path / "host-b", tmp_path / "backups" / "first"
    port = free_port()
    with serve_engine(source, port, **source_env):
        url = f"http://127.0.0.1:{port}"
        admin = admin_token(Settings(data_dir=source, database_url=source_env.get("TWIN_DATABASE_URL")))
        with Client(url, admin) as root:
            dev, user = root.create_token("ada", "developer").token, root.create_token("uma", "user").token
            Client(url, dev).publish_app(RIVER_REACH)
            root.lake.add_endpoint("home", "file", str(source / "lake" / "home"))
        with Client(url, user) as uma:
            uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01", "area_km2": 95})
            for i in range(20):
                uma.report("reach", level=round(1.0 + i / 100, 3), timestamp=f"2026-03-01T{i:02d}:00:00Z")
            uma.streams.append("reach", "gauges", [gauge(i) for i in range(50)])
            run = uma.workflows.submit(GRAPH)
            finished = uma.workflows.wait(run.id, timeout=120)
            assert finished.status == "finished", finished
        with Client(url, admin) as root:
            payload = source / "gauges.bin"
            payload.write_bytes(os.urandom(1 << 20))
            root.lake.upload(payload, "rivers:gauges.bin", endpoint="home")
        make_registry(source)

        stop, acked = threading.Event(), Acknowledged()
        writer = threading.Thread(target=keep_writing, args=(url, user, stop, acked))
        writer.start()
        try:
            while len(acked.revisions) < 5:  # writes are flowing before the backup starts
                time.sleep(0.05)
            made = twin_cli("admin", "backup", str(folder), "--data-dir", str(source), **source_env)
            done = len(acked.revisions)
            while len(acked.revisions) < done + 3:  # and go on after it
                time.sleep(0.05)
        finally:
            stop.set()
            writer.join(timeout=60)
        snapshot_at = datetime.fromisoformat(made["snapshot_at"]).timestamp()
        assert any(t > snapshot_at for t, _ in acked.revisions), "no write went on while the backup ran"
        with Client(url, user) as uma:
            original_history = uma.revisions("reach", limit=1000).items
            original_records = uma.streams.read("reach", "gauges", limit=10_000).items
            original_run = uma.workflows.get(run.id)
        original_twins = twins(Client(url, admin))
        original_file = root_download(url, admin, tmp_path / "original.bin")

    restored = twin_cli("admin", "restore", str(folder), "--data-dir", str(target), **target_env)
    assert restored["rows"] == sum(t["rows"] for t in json.loads((folder / "manifest.json").read_text())["tables"])
    assert registry_rows(target) == registry_rows(source)
    port = free_port()
    with serve_engine(target, port, **target_env):
        url = f"http://127.0.0.1:{port}"
        with Client(url, user) as uma:  # tokens made before the backup still sign in: the keys came along
            history = uma.revisions("reach", limit=1000).items
            records = uma.streams.read("reach", "gauges", limit=10_000).items
            assert uma.workflows.get(run.id).model_dump() == original_run.model_dump()
        assert twins(Client(url, admin)) == original_twins
        assert file_sha256(root_download(url, admin, tmp_path / "restored.bin")) == file_sha256(original_file)

    # The same history where both have it, and every revision acknowledged before the snapshot.
    by_number = {r.revision: r.model_dump() for r in original_history}
    assert history and all(by_number[r.revision] == r.model_dump() for r in history)
    restored_numbers = {r.revision for r in history}
    assert {n for t, n in acked.revisions if t < snapshot_at} <= restored_numbers
    # The same stream records in the same order, and every one acknowledged before the snapshot.
    assert records == original_records[:len(records)]
    assert max(n for t, n in acked.records if t < snapshot_at) <= records[-1]["_offset"]


def twins(client: Client) -> list[dict[str, Any]]:
    """Every twin as made (what later writes to its state do not change)."""
    keep = ("id", "name", "app", "owner", "parameters", "created_at", "origin_id")
    return [{k: v for k, v in t.model_dump().items() if k in keep} for t in client.list_twins().items]


def root_download(url: str, token: str, dest: Path) -> Path:
    with Client(url, token) as root:
        root.lake.download("rivers:gauges.bin", dest)
    return dest


def test_a_backup_taken_while_writing_restores_on_another_host(tmp_path: Path) -> None:
    backup_and_restore(tmp_path, {}, {})


@pytest.mark.postgres
@pytest.mark.ci_only
def test_a_postgres_engine_restores_into_another_database(tmp_path: Path, own_database: str,
                                                          request: pytest.FixtureRequest) -> None:
    first = own_database.replace("postgresql://", "postgresql+psycopg://", 1)
    second = request.getfixturevalue("second_database")
    backup_and_restore(tmp_path, {"TWIN_DATABASE_URL": first}, {"TWIN_DATABASE_URL": second})


@pytest.fixture
def second_database() -> Any:
    import psycopg

    from pg_fixtures import POSTGRES_ADMIN_URL

    name = f"twin_restored_{os.getpid()}_{int(datetime.now(UTC).timestamp())}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rpartition("/")[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
