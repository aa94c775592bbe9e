"""Ten streams per twin and several twins written at once, on both stream logs: every record lands once, in
its stream, with gap-free offsets (the group commit shares fsyncs, never entries)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from helpers import Engine, admin_token, make_app
from streams_fixtures import drop_streams, stream_backend, stream_settings  # noqa: F401
from twinengine.api import create_app
from twinengine.runtime import Runtime

STREAMS = {f"s{i}": {"fields": {"time": {"type": "timestamp"}, "value": {"type": "integer"}}} for i in range(10)}


@pytest.fixture
def engine(tmp_path: Path, stream_backend: str, drop_streams: list[Any]) -> Iterator[Engine]:  # noqa: F811
    settings = stream_settings(tmp_path / "data", stream_backend)
    runtime = Runtime.from_settings(settings)
    drop_streams.append(runtime)
    with TestClient(create_app(runtime=runtime)) as http:
        yield Engine(runtime=runtime, app=http.app, http=http,  # type: ignore[arg-type]
                     admin_token=admin_token(settings))
    runtime.close()


def test_ten_streams_on_each_of_three_twins_at_once(engine: Engine, tmp_path: Path) -> None:
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="multi", manifest={"streams": STREAMS}))
    uma = engine.as_role("uma", "user")
    twins = [uma.create_twin("multi@1.0.0", f"site-{n}", {"station": f"S{n}"}).name for n in range(3)]
    errors: list[BaseException] = []

    def produce(twin: str, stream: str) -> None:
        try:
            for batch in range(5):
                rows = [{"time": f"2026-03-01T00:{batch:02d}:{i:02d}Z", "value": batch * 10 + i} for i in range(10)]
                uma.streams.append(twin, stream, rows, producer=f"{twin}-{stream}", seq=batch * 10)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=produce, args=(t, s)) for t in twins for s in STREAMS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for twin in twins:
        listed = {s.name: s.end_offset for s in uma.streams.list(twin)}
        assert listed == dict.fromkeys(STREAMS, 50)
        page = uma.streams.read(twin, "s7", limit=100)
        assert [r["_offset"] for r in page.items] == list(range(50))
        assert sorted(r["value"] for r in page.items) == list(range(50))
