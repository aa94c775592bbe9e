"""``twin serve``'s two probes: ``/health`` says the engine is alive, ``/health/ready`` that it is ready, that is
migrated, started and warm (every group of routes imported, every warm-up run). Readiness answers 503 until
then, naming what it waits for, and 200 from then on; requests sent while the engine starts and warms wait
for what they need and are answered, none refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2 as httpx

from helpers import admin_token, free_port, need_modules, stop_process
from streams_fixtures import eventually
from twinengine.bootstrap import local_store
from twinengine.config import Settings

EARLY = ("/api/v1/twins", "/api/v1/me", "/api/v1/apps", "/edr/collections", "/stac/collections", "/openapi.json")


@contextmanager
def held_tracking_server() -> Iterator[tuple[str, threading.Event, threading.Event]]:
    """A stand-in for an MLflow tracking server that answers only once the test lets it go: a served engine's
    last warm-up opens MLflow's registry, so holding its answer holds the engine warming, for as long as the
    test looks. (A real tracking server cannot be held; MLflow's own client sends the requests, answered as
    an empty registry answers.) Yields its URL, the event set when it was first asked, and the release."""
    asked, release = threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            asked.set()
            release.wait(300)
            body = json.dumps({}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked, release
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def _ask(url: str, path: str, headers: dict[str, str]) -> httpx.Response:
    """One GET, sent as soon as the server listens (before that, the connection is refused: asked again)."""
    while True:
        try:
            return httpx.get(url + path, headers=headers, timeout=300)
        except httpx.ConnectError:
            time.sleep(0.02)


def test_ready_only_once_warm_while_requests_meanwhile_are_answered(tmp_path: Path) -> None:
    need_modules("ml", "mlflow", hint="pip install -e '.[ml]'")
    settings = Settings(data_dir=tmp_path / "data")
    with local_store(settings):
        pass  # migrated, so that a token can be issued before the engine starts
    auth = {"Authorization": f"Bearer {admin_token(settings)}"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with held_tracking_server() as (tracking, asked, release):
        env = {**os.environ, "TWIN_DATA_DIR": str(settings.data_dir), "TWIN_MLFLOW_URI": tracking}
        process = subprocess.Popen([sys.executable, "-m", "twinengine.cli.main", "serve", "--port", str(port)],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seen: list[int] = []  # every readiness answer, from the first to the first 200 after the release
        polling = threading.Event()

        def poll_readiness() -> None:
            while not polling.is_set():
                seen.append(_ask(url, "/health/ready", {}).status_code)
                time.sleep(0.02)

        poller = threading.Thread(target=poll_readiness, daemon=True)
        try:
            with ThreadPoolExecutor(len(EARLY)) as pool:
                early = {path: pool.submit(_ask, url, path, auth) for path in EARLY}  # sent while it starts
                poller.start()
                assert asked.wait(300)  # every other warm-up has run; MLflow's registry is held
                ready = httpx.get(f"{url}/health/ready", timeout=60)
                assert ready.status_code == 503 and ready.json()["waiting_for"] == ["models"]
                alive = httpx.get(f"{url}/health", timeout=60)
                assert alive.status_code == 200 and alive.json()["warming"] == ["models"]
                for path, answer in early.items():
                    assert answer.result(timeout=300).status_code == 200, path
                assert "/api/v1/twins" in early["/openapi.json"].result().json()["paths"]  # every group in
                assert 200 not in seen
            release.set()
            eventually(lambda: 200 in seen, timeout=120)
            polling.set()
            poller.join(60)
            first = seen.index(200)
            assert set(seen[:first]) == {503} and set(seen[first:]) == {200}  # never ready, then ready for good
            assert "warming" not in httpx.get(f"{url}/health", timeout=60).json()
        finally:
            polling.set()
            release.set()
            stop_process(process)
