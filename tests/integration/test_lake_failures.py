"""Storage that fails: a full disk (a real 2 MiB tmpfs) and an endpoint whose folder vanished give clear
errors, leave nothing half-written, and a rule that cannot be served says STUCK with the reason."""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import Engine
from lake_fixtures import converge
from twinengine.auth.principal import SYSTEM
from twinengine.errors import StorageFull, StorageUnavailable
from twinengine.lake import upload


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB file system (tmpfs), so ENOSPC comes from the kernel, not from a mock."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_a_clear_507_and_leaves_nothing(engine: Engine, tiny_disk: Path, tmp_path: Path) -> None:
    engine.as_role("pat", "provider").lake.add_endpoint("tiny", "file", str(tiny_disk / "lake"))
    user = engine.as_role("uma", "user")
    big = tmp_path / "big.bin"
    big.write_bytes(secrets.token_bytes(3 * 1024 * 1024))
    with pytest.raises(StorageFull, match="bytes free"):  # the declared size does not fit: refused up front
        user.lake.upload(big, "full:declared.bin", endpoint="tiny")

    def chunks() -> Iterator[bytes]:  # no size declared: the kernel says ENOSPC half way
        for _ in range(6):
            yield secrets.token_bytes(512 * 1024)

    with pytest.raises(StorageFull, match="no space left"):
        upload(engine.runtime.db, engine.runtime.lake, principal=SYSTEM, did="full:streamed.bin", endpoint="tiny",
               chunks=chunks())
    leftovers = [p for p in (tiny_disk / "lake").rglob("*") if p.is_file()]
    assert leftovers == []
    assert user.lake.dids(scope="full").total == 0
    assert engine.as_role("pat", "provider").lake.endpoint("tiny").replicas == 0


def test_a_vanished_endpoint_is_a_clear_503_and_rules_say_stuck(engine: Engine, tmp_path: Path) -> None:
    engine.runtime.lake.tuning = dataclasses.replace(engine.runtime.lake.tuning, transfer_attempts=1)
    provider, user = engine.as_role("pat", "provider"), engine.as_role("uma", "user")
    for name in ("here", "gone"):
        provider.lake.add_endpoint(name, "file", str(tmp_path / name), attributes={"tier": "1"})
    data = tmp_path / "f.bin"
    data.write_bytes(os.urandom(4096))
    user.lake.upload(data, "v:f.bin", endpoint="gone")
    shutil.rmtree(tmp_path / "gone")  # unmounted, deleted, the disk died

    with pytest.raises(StorageUnavailable, match="gone"):
        user.lake.download("v:f.bin", tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    with pytest.raises(StorageUnavailable, match="does not exist"):
        user.lake.upload(data, "v:g.bin", endpoint="gone")
    checked = provider.lake.verify(endpoint="gone")
    assert [(b.did, b.state) for b in checked.bad] == [("v:f.bin", "UNAVAILABLE")]

    rule = user.lake.add_rule("v:f.bin", copies=2, endpoints="tier=1")
    converge(engine.runtime)
    stuck = user.lake.rule(rule.id)
    assert stuck.state == "STUCK" and "no available replica" in (stuck.last_error or "")
