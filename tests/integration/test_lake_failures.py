"""Storage that fails: a full disk (a real 2 MiB tmpfs) and an endpoint whose folder vanished give clear
errors, leave nothing half-written, and a rule that cannot be served says STUCK with the reason."""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from helpers import Engine
from lake_fixtures import converge
from twinengine.auth.principal import SYSTEM
from twinengine.client import Client
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


def sixty_byte_files(user: Client, folder: Path, count: int, *, endpoint: str) -> None:
    """Dataset ``q:set`` with ``count`` files of 60 bytes uploaded to ``endpoint`` (quotas are counted in them)."""
    user.lake.add_dataset("q:set")
    for i in range(count):
        data = folder / f"f{i}.bin"
        data.write_bytes(bytes([i]) * 60)
        user.lake.upload(data, f"q:f{i}.bin", endpoint=endpoint, dataset="q:set")


def test_copies_go_where_a_quota_has_room(engine: Engine, tmp_path: Path) -> None:
    """A rule that may choose among endpoints places its copies where the quota has room; copies refused by a
    full endpoint's quota are placed again elsewhere at the next pass, and the rule settles OK."""
    engine.runtime.lake.tuning = dataclasses.replace(engine.runtime.lake.tuning, transfer_attempts=1,
                                                     stuck_retry=timedelta(0))  # stuck rules: each pass
    provider, user = engine.as_role("pat", "provider"), engine.as_role("uma", "user")
    provider.lake.add_endpoint("origin", "file", str(tmp_path / "origin"), attributes={"tier": "0"})
    provider.lake.add_endpoint("small", "file", str(tmp_path / "small"), attributes={"tier": "1"}, quota_bytes=100)
    provider.lake.add_endpoint("big", "file", str(tmp_path / "big"), attributes={"tier": "1"})
    sixty_byte_files(user, tmp_path, 8, endpoint="origin")
    rule = user.lake.add_rule("q:set", copies=1, endpoints="tier=1")
    converge(engine.runtime)

    settled = user.lake.rule(rule.id)
    assert settled.state == "OK" and settled.locks_ok == 8 and settled.locks_stuck == 0, settled
    small, big = provider.lake.endpoint("small"), provider.lake.endpoint("big")
    assert small.used_bytes <= 100 and small.replicas + big.replicas == 8
    assert sum(1 for p in (tmp_path / "small").rglob("*") if p.is_file()) == small.replicas


def test_transfers_are_held_to_the_destination_quota(engine: Engine, tmp_path: Path) -> None:
    """A rule's copies count against an endpoint's quota as uploads do: what does not fit is refused before a
    byte is written, and the rule says STUCK naming the quota."""
    engine.runtime.lake.tuning = dataclasses.replace(engine.runtime.lake.tuning, transfer_attempts=1)
    provider, user = engine.as_role("pat", "provider"), engine.as_role("uma", "user")
    provider.lake.add_endpoint("roomy", "file", str(tmp_path / "roomy"), attributes={"tier": "1"})
    provider.lake.add_endpoint("small", "file", str(tmp_path / "small"), attributes={"tier": "1"}, quota_bytes=100)
    sixty_byte_files(user, tmp_path, 3, endpoint="roomy")
    rule = user.lake.add_rule("q:set", copies=2, endpoints="tier=1")
    converge(engine.runtime)

    small = provider.lake.endpoint("small")
    assert small.used_bytes == 60 and small.replicas == 1  # one of three fits in 100 bytes
    assert sum(1 for p in (tmp_path / "small").rglob("*") if p.is_file()) == 1  # nothing of the others written
    stuck = user.lake.rule(rule.id)
    assert stuck.state == "STUCK" and stuck.locks_ok == 4 and stuck.locks_stuck == 2
    assert stuck.last_error is not None and "quota of 100" in stuck.last_error

    provider.lake.set_endpoint("small", quota_bytes=1000)  # room made: the judge looks again at its next pass
    converge(engine.runtime)
    assert user.lake.rule(rule.id).state == "OK"
    assert provider.lake.endpoint("small").used_bytes == 180
