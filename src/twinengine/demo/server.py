"""Run the engine's app under uvicorn in a background thread, on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from twinengine.api.edge import edge_config
from twinengine.config import Settings

__all__ = ["InProcessServer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now: for an engine that must know its own address before it is served (its
    did:web in the data space)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class InProcessServer:
    """``with InProcessServer(app) as server: Client(server.url, ...)``: real HTTP, no process to manage, the
    same edge limits as ``twin serve`` (from the settings of the app's runtime)."""

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 30.0) -> None:
        runtime = getattr(app.state, "runtime", None)
        settings = runtime.settings if runtime is not None else Settings()
        self._server = uvicorn.Server(edge_config(app, settings, host=host, port=port, log_level="warning",
                                                  lifespan="on", access_log=False))
        self._thread = threading.Thread(target=self._server.run, name="twinengine-server", daemon=True)
        self._host = host
        self._timeout = startup_timeout
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def __enter__(self) -> InProcessServer:
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-process engine did not start")
            time.sleep(0.02)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = int(sockets[0].getsockname()[1])
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
