"""The byte paths under the lake's uploads and transfers: recycled read buffers, checksums that hand buffers
back only when both digests are done, and the local kernel copy (copy_file_range, sendfile and plain-read
fallbacks) whose read-back is what gets verified."""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

import pytest

from twinengine.errors import StorageUnavailable
from twinengine.lake.checksums import Hasher
from twinengine.lake.storage import local
from twinengine.lake.storage.buffers import BufferPool, pooled_chunks
from twinengine.lake.storage.local import LocalStorage


def digests(data: bytes) -> tuple[int, str, str]:
    return len(data), f"{zlib.adler32(data) & 0xFFFFFFFF:08x}", hashlib.sha256(data).hexdigest()


def test_a_pool_recycles_only_what_was_released(tmp_path: Path) -> None:
    pool = BufferPool(1000)
    first = pool.take()
    assert pool.take() is not first  # still in use: a fresh one, never the same memory twice
    pool.release(memoryview(first)[:10])  # a slice gives back the whole buffer
    assert pool.take() is first
    pool.release(b"not from this pool")
    pool.release(bytearray(10))  # another size: ignored
    assert len(pool.take()) == 1000

    data = os.urandom(4500)
    (tmp_path / "f.bin").write_bytes(data)
    kept = []
    for view in pooled_chunks(tmp_path / "f.bin", pool):
        kept.append(bytes(view))  # copied out, then released: the next chunk may reuse the buffer
        pool.release(view)
    assert b"".join(kept) == data and [len(k) for k in kept] == [1000, 1000, 1000, 1000, 500]


@pytest.mark.parametrize("chunk", [100, 300 * 1024])  # summed inline, and adler32 on its own thread
def test_a_hasher_releases_a_chunk_after_both_digests(chunk: int) -> None:
    data = os.urandom(chunk * 5 + 7)
    released: list[memoryview] = []
    seen_at_release: list[bytes] = []

    def release(view: bytes | memoryview) -> None:
        assert isinstance(view, memoryview)
        seen_at_release.append(bytes(view))
        released.append(view)

    hasher = Hasher(release=release)
    for start in range(0, len(data), chunk):
        hasher.update(memoryview(bytearray(data[start:start + chunk])))
    got = hasher.result()
    assert (got.bytes, got.adler32, got.sha256) == digests(data)
    assert b"".join(seen_at_release) == data  # every chunk, in order, intact when handed back


@pytest.mark.parametrize("mode", ["copy_file_range", "sendfile", "read and write"])
def test_a_local_copy_is_read_back_and_committed_only_by_the_caller(tmp_path: Path, mode: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if mode == "copy_file_range" and not local._COPY_FILE_RANGE:
        pytest.skip("this kernel/Python has no copy_file_range")
    if mode != "copy_file_range":
        monkeypatch.setattr(local, "_COPY_FILE_RANGE", False)
    if mode == "read and write":
        monkeypatch.setattr(local, "_SENDFILE", False)
    source, dest = LocalStorage(str(tmp_path / "a"), {}, None), LocalStorage(str(tmp_path / "b"), {}, None)
    (tmp_path / "a" / "s").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    data = os.urandom(3 * 65536 + 123)
    (tmp_path / "a" / "s" / "f.bin").write_bytes(data)
    pool = BufferPool(65536)
    hasher = Hasher(release=pool.release)
    writer = dest.copy_in(source, "s/f.bin", size_hint=len(data), pool=pool, consume=hasher.update)
    got = hasher.result()
    assert (got.bytes, got.adler32, got.sha256) == digests(data)
    assert dest.size("s/f.bin") is None  # nothing visible until the caller commits
    writer.commit()
    assert (tmp_path / "b" / "s" / "f.bin").read_bytes() == data
    assert not list((tmp_path / "b" / local.INCOMING).iterdir())


def test_a_failed_local_copy_leaves_nothing(tmp_path: Path) -> None:
    source, dest = LocalStorage(str(tmp_path / "a"), {}, None), LocalStorage(str(tmp_path / "b"), {}, None)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(StorageUnavailable, match="missing"):
        dest.copy_in(source, "s/none.bin", size_hint=None, pool=BufferPool(4096), consume=lambda view: None)
    (tmp_path / "a" / "f.bin").write_bytes(os.urandom(50_000))

    def refuse(view: memoryview) -> None:
        raise RuntimeError("the consumer gives up half way")

    with pytest.raises(RuntimeError):
        dest.copy_in(source, "f.bin", size_hint=None, pool=BufferPool(4096), consume=refuse)
    assert dest.size("f.bin") is None and not list((tmp_path / "b" / local.INCOMING).iterdir())
