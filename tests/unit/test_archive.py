"""App archives: canonical packing, and unpacking untrusted bytes without escaping or exploding."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from helpers import RIVER_REACH, make_app
from twinengine.catalog.archive import pack, unpack
from twinengine.errors import InvalidInput, PayloadTooLarge


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_info(name: str, size: int = 1) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def test_packing_is_deterministic_and_skips_caches(tmp_path: Path) -> None:
    folder = make_app(tmp_path)
    first = pack(folder)
    (folder / "test_app" / "__pycache__").mkdir()
    (folder / "test_app" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    os.utime(folder / "twinapp.yaml", (1, 1))  # a different mtime must not change the bytes
    assert pack(folder) == first
    (folder / "test_app" / "extra.py").write_text("X = 1\n")
    assert pack(folder) != first


def test_round_trip(tmp_path: Path) -> None:
    names = unpack(pack(RIVER_REACH), tmp_path, max_unpacked_bytes=10**7)
    assert "twinapp.yaml" in names and "river_reach/simulator.py" in names
    assert (tmp_path / "twinapp.yaml").read_bytes() == (RIVER_REACH / "twinapp.yaml").read_bytes()


@pytest.mark.parametrize("name", ["../evil.py", "/etc/passwd", "a/../../b", "a\\b"])
def test_paths_leaving_the_root_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInput, match="entry"):
        unpack(tar_gz([(file_info(name), b"x")]), tmp_path / "out", max_unpacked_bytes=1000)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE])
def test_links_and_devices_are_refused(tmp_path: Path, kind: bytes) -> None:
    info = tarfile.TarInfo("link")
    info.type = kind
    info.linkname = "/etc/passwd"
    with pytest.raises(InvalidInput, match="not a plain file"):
        unpack(tar_gz([(info, None)]), tmp_path, max_unpacked_bytes=1000)


def test_a_gzip_bomb_is_stopped_early(tmp_path: Path) -> None:
    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))
    assert len(bomb) < 100_000
    with pytest.raises(PayloadTooLarge):
        unpack(bomb, tmp_path, max_unpacked_bytes=1024 * 1024)


@pytest.mark.parametrize("data", [b"", b"not an archive", gzip.compress(b"not a tar", mtime=0)],
                         ids=["empty", "text", "gzip-not-tar"])
def test_garbage_is_invalid_input(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(InvalidInput, match="archive"):
        unpack(data, tmp_path, max_unpacked_bytes=1000)


def test_truncated_archive(tmp_path: Path) -> None:
    data = pack(RIVER_REACH)
    with pytest.raises(InvalidInput):
        unpack(data[: len(data) // 2], tmp_path, max_unpacked_bytes=10**7)


def test_symlinks_in_a_folder_are_refused(tmp_path: Path) -> None:
    folder = make_app(tmp_path)
    (folder / "link").symlink_to("/etc/passwd")
    with pytest.raises(InvalidInput, match="symbolic links"):
        pack(folder)


def _tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_mode & 0o7777, p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def test_pythons_without_extraction_filters_unpack_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian 12's Python (3.11.2) has no ``tarfile`` extraction filters (3.11.4 brought them): the engine's own
    extraction of checked members gives the same files and modes (setuid and group/other write never kept)."""
    script = file_info("pkg/run.sh", 3)
    script.mode = 0o4777  # setuid, world-writable: neither survives
    data = tar_gz([(file_info("pkg/a/b.txt", 2), b"hi"), (script, b"#!\n"), (file_info("top.yaml", 3), b"x: 1")])
    unpack(data, tmp_path / "with", max_unpacked_bytes=1000)
    with_filters = _tree(tmp_path / "with")
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    names = unpack(data, tmp_path / "without", max_unpacked_bytes=1000)
    assert sorted(names) == ["pkg/a/b.txt", "pkg/run.sh", "top.yaml"]
    without = _tree(tmp_path / "without")
    assert without["pkg/run.sh"] == (0o755, b"#!\n") and without["pkg/a/b.txt"] == (0o644, b"hi")
    if hasattr(tarfile.TarFile, "extraction_filter"):  # this Python has the filters: both ways agree
        assert {k: v for k, v in without.items() if v[1] is not None} == {
            k: v for k, v in with_filters.items() if v[1] is not None}
    app = pack(make_app(tmp_path / "app"))
    unpack(app, tmp_path / "app-out", max_unpacked_bytes=10_000_000)
    assert (tmp_path / "app-out" / "twinapp.yaml").is_file()
    link = tarfile.TarInfo("pkg/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(InvalidInput, match="not a plain file"):
        unpack(tar_gz([(link, None)]), tmp_path / "hostile", max_unpacked_bytes=1000)
