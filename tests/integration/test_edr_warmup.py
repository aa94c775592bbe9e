"""The EDR listing is opened in the background once the server answers: when ``/health`` stops naming it as
warming, each collection's document is already built from its open file, so the first ``GET /edr/collections``
a person sends opens nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from access_data import write_collections
from streams_fixtures import eventually
from twinengine.access.listing import _documents
from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime


def test_the_listing_is_warm_after_start_and_health_says_until_when(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")  # warm_routes on, as under ``twin serve``
    written = write_collections(settings.data_dir / "collections")
    runtime = Runtime.from_settings(settings)
    token = runtime.start()
    assert token is not None
    app = create_app(runtime=runtime)
    try:
        with InProcessServer(app) as server, Client(server.url, token) as client:
            warmup = next(w for w in app.state.warmups if w.name == "edr")

            def warm() -> Any:
                health = client.health()
                return health if "warming" not in health else None

            health = eventually(warm, timeout=120)
            assert health["status"] == "ok" and not warmup.warming
            opened = {key[0] for key in _documents(runtime.access)._docs}  # before any request of ours
            assert opened >= set(written) and warmup.opened >= len(written)
            listed = client._request("GET", "/edr/collections").json()["collections"]
            assert {c["id"] for c in listed} >= set(written)
            assert all(c["links"][0]["href"].startswith(server.url) for c in listed)  # the request's address
    finally:
        runtime.close()


def test_health_names_what_still_warms(tmp_path: Path) -> None:
    """While the warm-up runs, ``/health`` answers (the engine serves) and says what is not warm yet."""
    settings = Settings(data_dir=tmp_path / "data")
    runtime = Runtime.from_settings(settings)
    token = runtime.start()
    assert token is not None
    app = create_app(runtime=runtime)
    try:
        with InProcessServer(app) as server, Client(server.url, token) as client:
            warmup = next(w for w in app.state.warmups if w.name == "edr")
            assert all(w.wait(60) for w in app.state.warmups)  # the routes' too
            warmup.done.clear()  # as if it were still opening files
            assert client.health()["warming"] == ["edr"]
            warmup.done.set()
            assert "warming" not in client.health()
    finally:
        runtime.close()
