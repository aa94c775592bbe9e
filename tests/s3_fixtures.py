"""A standalone S3-compatible server on loopback for the tests that need one: moto's server mode
(``moto_server``, pip-installed with the dev extras), its own process, reached over real HTTP by real s3fs."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers import free_port, stop_process, unavailable

__all__ = ["bucket", "keys", "s3_server"]


@contextmanager
def s3_server() -> Iterator[str]:
    """The server's URL while the block runs."""
    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not Path(exe).exists():
        unavailable("s3", "moto_server (pip install 'moto[server]') is not installed")
    port = free_port()
    process = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    unavailable("s3", f"moto_server did not start on port {port}")
                time.sleep(0.1)
        yield url
    finally:
        stop_process(process, timeout=10)


def bucket(url: str, credential: dict[str, str], prefix: str = "lake") -> str:
    """A fresh bucket on the server."""
    from twinengine.lake.storage import S3Storage

    name = f"{prefix}-{secrets.token_hex(4)}"
    S3Storage(name, {"endpoint_url": url}, credential).fs.mkdir(name)
    return name


def keys(tag: str) -> dict[str, str]:
    return {"kind": "s3", "access_key": f"AK{tag.upper()}", "secret_key": f"secret-{tag}"}
