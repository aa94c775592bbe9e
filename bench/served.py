"""``twin serve`` in a process of its own, for benches that time HTTP as a client on another process sees it.

A server on a thread of the bench's own process shares one interpreter lock with the client that times it:
the client's parsing and the server's work then take turns on it, which a deployed engine never pays,
and which costs a route more the more Python it runs.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from twinengine.client import Client
from twinengine.config import Settings


class TwinServe:
    """``with TwinServe(settings) as url:``: the engine on ``settings``' data folder and database, on a
    loopback port, until the block ends."""

    def __init__(self, settings: Settings, *, start_timeout: float = 300.0) -> None:
        self.settings, self.start_timeout = settings, start_timeout
        self.port = 18000 + random.randint(0, 1999)
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(prefix="twin-serve-", suffix=".log", delete=False)  # noqa: SIM115
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        env = {**os.environ, "TWIN_DATA_DIR": str(self.settings.data_dir)}
        if self.settings.database_url:
            env["TWIN_DATABASE_URL"] = self.settings.database_url
        self._process = subprocess.Popen([sys.executable, "-m", "twinengine.cli.main", "serve", "--port",
                                          str(self.port)], env=env, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + self.start_timeout
        with Client(self.url) as probe:
            while True:
                try:
                    probe.health()
                    return self.url
                except Exception:
                    if self._process.poll() is not None or time.monotonic() > deadline:
                        tail = Path(self._log.name).read_text(errors="replace")[-2000:]
                        self.__exit__(None, None, None)
                        raise RuntimeError(f"twin serve did not start:\n{tail}") from None
                    time.sleep(0.2)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)
