"""Run the engine's app under uvicorn in a background thread, on a free loopback port."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

__all__ = ["InProcessServer"]


class InProcessServer:
    """``with InProcessServer(app) as server: Client(server.url, ...)``: real HTTP, no process to manage."""

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 30.0) -> None:
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
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
