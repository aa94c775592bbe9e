"""Kill -9 ``twin serve`` in the middle of an upload and in the middle of transfers: after a restart no replica
is AVAILABLE with wrong bytes, the reaper removes every leftover temp file and reservation, and the rule
converges. The server runs its own judge, conveyor and reaper (as ``twin serve`` does by default)."""

from __future__ import annotations

import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from helpers import admin_token, free_port
from helpers import serve_engine as serve
from twinengine.client import Client
from twinengine.errors import DidNotFound

pytestmark = pytest.mark.ci_only  # kill -9 of a real engine during uploads and transfers

ENV = {"TWIN_LAKE_STALE_AFTER": "PT4S", "TWIN_LAKE_TRANSFER_BACKOFF": "PT1S", "TWIN_LAKE_TOMBSTONE_GRACE": "PT0S"}


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=20)


def _until(check: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("condition not reached in time")


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".incoming" in p.parts]


@pytest.mark.slow
def test_kill_during_upload_and_transfers(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    files = {f"crash:part-{i}.bin": secrets.token_bytes(12 * 1024 * 1024) for i in range(8)}
    with serve(data_dir, port, **ENV) as process:
        token = admin_token(data_dir)
        admin = Client(url, token)
        for name in ("a", "b"):
            admin.lake.add_endpoint(name, "file", str(tmp_path / name), attributes={"tier": "1"})
        admin.lake.add_dataset("crash:set")
        for did, data in files.items():
            path = tmp_path / "src.bin"
            path.write_bytes(data)
            admin.lake.upload(path, did, endpoint="a", dataset="crash:set")

        # An upload that never finishes: 8 MiB is sent, then it trickles on (alive, so the reaper must leave its
        # temp file alone: one silent for longer than TWIN_LAKE_STALE_AFTER is abandoned and may be removed
        # before the kill, however long the rule takes on a slow machine), until the server dies under it.
        sent = []
        release = threading.Event()

        def body() -> Iterator[bytes]:
            for _ in range(8):
                sent.append(1)
                yield secrets.token_bytes(1024 * 1024)
            for _ in range(800):  # at most 8 + 25 MiB of the 64 MiB announced: it never completes
                if release.wait(0.25):
                    return
                yield secrets.token_bytes(32 * 1024)  # 1 MiB in 8 s: slower than the stale bound of 4 s

        def slow_upload() -> None:
            with suppress(Exception):  # it fails one way or another: the server died under it
                httpx.post(f"{url}/api/v1/lake/uploads", params={"did": "crash:half.bin", "endpoint": "a"},
                           content=body(), headers={"Authorization": f"Bearer {token}",
                                                    "Content-Length": str(64 * 1024 * 1024)}, timeout=600)

        uploader = threading.Thread(target=slow_upload, daemon=True)
        uploader.start()
        _until(lambda: len(sent) >= 8 and _leftovers(tmp_path / "a"))
        rule = admin.lake.add_rule("crash:set", copies=2, endpoints="tier=1")
        _until(lambda: any(t.state == "DONE" for t in admin.lake.transfers(rule_id=rule.id)), timeout=60)
        time.sleep(5)  # beyond TWIN_LAKE_STALE_AFTER: a sender still trickling keeps its temp file, however slow
        _kill(process)  # mid-upload, and (most likely) mid-transfer
        release.set()
        uploader.join(timeout=30)
        admin.close()
    assert _leftovers(tmp_path / "a")  # the interrupted upload left its temp file behind

    with serve(data_dir, port, **ENV):
        admin = Client(url, token)
        final = _until(lambda: (r := admin.lake.rule(rule.id)).state == "OK" and r)
        assert final.locks_ok == 2 * len(files)
        for did, data in files.items():
            replicas = admin.lake.get(did).replicas
            assert sorted((r.endpoint, r.state) for r in replicas) == [("a", "AVAILABLE"), ("b", "AVAILABLE")]
            for replica in replicas:
                assert (tmp_path / replica.endpoint / replica.path).read_bytes() == data
        assert admin.lake.verify(did="crash:set").ok == 2 * len(files)

        def dropped() -> bool:  # never registered: its reservation is dropped once stale (TWIN_LAKE_STALE_AFTER)
            try:
                admin.lake.get("crash:half.bin")
            except DidNotFound:
                return True
            return False

        _until(dropped)
        _until(lambda: not _leftovers(tmp_path / "a") and not _leftovers(tmp_path / "b"))
        admin.close()
