"""Fixtures shared by the stream tests: the stream backends (local segments always; NATS JetStream when a
server answers, required in CI), and small helpers for gauge records."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from helpers import Engine, admin_token, copy_sqlite, migrated_template, unavailable
from twinengine.config import Settings

NATS_URL = os.environ.get("TWIN_TEST_NATS_URL", "nats://127.0.0.1:4222")
MQTT_URL = os.environ.get("TWIN_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
STREAM_BACKENDS = [b for b in os.environ.get("TWIN_TEST_STREAM_BACKENDS", "local,nats").split(",") if b]
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def answers(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def require_nats() -> str:
    if not answers(NATS_URL, 4222):
        unavailable("nats", f"no NATS server answers at {NATS_URL}")
    return NATS_URL


def require_mqtt() -> str:
    if not answers(MQTT_URL, 1883):
        unavailable("mosquitto", f"no MQTT broker answers at {MQTT_URL}")
    return MQTT_URL


@pytest.fixture(params=STREAM_BACKENDS)
def stream_backend(request: pytest.FixtureRequest) -> str:
    if request.param == "nats":
        require_nats()
    return str(request.param)


def stream_settings(data_dir: Path, backend: str, database_url: str | None = None, **extra: Any) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, stream_backend=backend, nats_url=NATS_URL,
                    **extra)


def gauge(i: int, *, level: float | None = None, station: str = "RR-01", minutes: int = 15) -> dict[str, Any]:
    return {"time": (T0 + timedelta(minutes=minutes * i)).isoformat().replace("+00:00", "Z"), "station": station,
            "rain": round(0.1 * (i % 7), 3), "level": level if level is not None else round(1.0 + 0.01 * i, 4)}


def faulty_gauges() -> list[dict[str, Any]]:
    """20 quarter-hours of readings: a spike at 4, a level stuck from 8 to 13, readings 15 and 16 never sent,
    an impossible level at 19."""
    levels = [round(1.0 + 0.01 * i, 4) for i in range(20)]
    levels[4] += 3.0
    levels[8:14] = [1.08] * 6
    levels[19] = 99.0
    return [gauge(i, level=levels[i]) for i in range(20) if i not in (15, 16)]


# The flags river-reach's checks give faulty_gauges(), by offset.
EXPECTED = {4: ("bad", "spike:level"), 13: ("suspect", "flatline:level"), 15: ("suspect", "gap"),
            17: ("bad", "range:level,spike:level")}  # by offset (readings 15, 16 missing)


def eventually(check: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.05) -> Any:
    """Poll until ``check`` returns something truthy; fail with its last value otherwise. The timeout is
    generous: CI's machines, loaded with three test workers, take several times as long as an idle one, and
    the wait only costs time when the check fails."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


@pytest.fixture
def drop_streams() -> Iterator[list[Any]]:
    """Runtimes registered here have the streams of their twins dropped after the test (NATS is shared)."""
    runtimes: list[Any] = []
    yield runtimes
    from twinengine.twins.models import Twin

    for runtime in runtimes:
        if runtime.settings.stream_backend != "nats":
            continue
        try:
            with runtime.db.session(readonly=True) as session:
                ids = {t for (t,) in session.query(Twin.id).all()}
            for key in runtime.streams.log.list_keys():
                if key.partition("/")[0] in ids:
                    runtime.streams.log.drop(key)
        except Exception:
            pass
        finally:
            runtime.close()


def start_engine(settings: Settings, drop: list[Any]) -> tuple[Any, Any]:
    """A runtime (closed by ``drop_streams``) and a TestClient over its API, not yet entered."""
    from starlette.testclient import TestClient

    from twinengine.api import create_app
    from twinengine.runtime import Runtime

    store = settings.data_dir / "twin.db"
    if settings.database_url is None and not store.exists():  # SQLite: start from the migrated copy
        copy_sqlite(migrated_template(), store)
    runtime = Runtime.from_settings(settings)
    drop.append(runtime)
    return runtime, TestClient(create_app(runtime=runtime))


@contextmanager
def stream_engine(settings: Settings, drop: list[Any]) -> Iterator[Engine]:
    """A started engine with the stream settings given, its daemons running, an admin token at hand."""
    runtime, http = start_engine(settings, drop)
    try:
        with http:
            yield Engine(runtime=runtime, app=http.app, http=http,  # type: ignore[arg-type]
                         admin_token=admin_token(settings))
    finally:
        runtime.close()
