"""App archives: a canonical gzip'd tar of the app folder, and a safe way to unpack untrusted ones.

Packing is deterministic (sorted entries, zeroed times and owners, fixed modes), so the same files give
the same bytes and the same sha256: that is what makes re-publishing identical content a no-op.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import shutil
import stat
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from twinengine.errors import InvalidInput, PayloadTooLarge

__all__ = ["MAX_MEMBERS", "pack", "unpack"]

MAX_MEMBERS = 10_000
_SKIP_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache",
              ".ipynb_checkpoints", "node_modules"}
_SKIP_FILES = {".DS_Store"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


def _files(root: Path) -> list[Path]:
    found: list[Path] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in _SKIP_DIRS for part in rel.parts):
            continue
        if path.is_symlink():
            raise InvalidInput(f"{rel.as_posix()}: symbolic links are not allowed in an app folder")
        if path.is_file() and path.name not in _SKIP_FILES and not path.name.endswith(_SKIP_SUFFIXES):
            found.append(path)
    return found


def pack(root: Path, *, compress: bool = True) -> bytes:
    """Pack the folder at ``root`` into canonical ``.tar.gz`` bytes (a plain ``.tar`` when not ``compress``:
    model weights gain little from gzip and cost its time)."""
    buffer = io.BytesIO()
    with contextlib.ExitStack() as stack:
        target: Any = buffer
        if compress:
            target = stack.enter_context(gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=6))
        tar = stack.enter_context(tarfile.open(fileobj=target, mode="w", format=tarfile.PAX_FORMAT))
        for path in _files(root):
            rel = path.relative_to(root).as_posix()
            data = path.read_bytes()
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _check_name(name: str) -> str | None:
    if not name or "\x00" in name or "\\" in name:
        return "has an empty name or forbidden characters"
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith("/"):
        return "is an absolute path"
    if any(part == ".." for part in pure.parts):
        return "escapes the archive root with '..'"
    if len(pure.parts) > 32 or len(name) > 1024:
        return "is nested too deeply or named too long"
    return None


def _gunzip(data: bytes, *, limit: int) -> bytes:
    """Decompress with a ceiling, so a small gzip bomb cannot expand into gigabytes."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        raw = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"archive: not a gzip-compressed tar file ({exc})") from None
    if len(raw) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"archive: unpacks to more than {limit} bytes")
    if not inflater.eof:
        raise InvalidInput("archive: the gzip stream is truncated")
    return raw


def unpack(data: bytes, dest: Path, *, max_unpacked_bytes: int, compressed: bool = True) -> list[str]:
    """Unpack untrusted archive bytes (``.tar.gz``, or a plain ``.tar`` when not ``compressed``) into ``dest``;
    refuse anything but plain files and folders inside it.

    Checks run on all headers before a single byte is written, so a bad archive leaves nothing behind.
    """
    # headers and padding on top of the files
    raw = _gunzip(data, limit=max_unpacked_bytes + 64 * 1024) if compressed else data
    try:
        tar = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")  # noqa: SIM115 (closed below)
        members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        inside = " inside the gzip stream" if compressed else ""
        raise InvalidInput(f"archive: not a tar file{inside} ({exc})") from None
    with tar:
        if len(members) > MAX_MEMBERS:
            raise InvalidInput(f"archive: {len(members)} entries, more than the {MAX_MEMBERS} allowed")
        total = 0
        names: list[str] = []
        for member in members:
            reason = _check_name(member.name)
            if reason:
                raise InvalidInput(f"archive: entry {member.name!r} {reason}")
            if not (member.isfile() or member.isdir()):
                raise InvalidInput(f"archive: entry {member.name!r} is not a plain file or folder "
                                   "(links and devices are refused)")
            total += member.size
            if total > max_unpacked_bytes:
                raise PayloadTooLarge(f"archive: unpacks to more than {max_unpacked_bytes} bytes")
            if member.isfile():
                names.append(PurePosixPath(member.name).as_posix())
        try:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:
                _extract_plain(tar, members, dest)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InvalidInput(f"archive: cannot be unpacked ({exc})") from None
    return names


def _extract_plain(tar: tarfile.TarFile, members: list[tarfile.TarInfo], dest: Path) -> None:
    """What ``filter="data"`` does for members already checked to be plain files and folders with safe names,
    for Pythons without extraction filters (before 3.11.4; Debian 12's is 3.11.2): folders made, files written,
    no owner, times or mode bits kept but the owner's execute bit (files 0644 or 0755)."""
    root = dest.resolve()
    for member in members:
        target = (dest / member.name).resolve()
        if target != root and root not in target.parents:  # ``_check_name`` refused these already
            raise InvalidInput(f"archive: entry {member.name!r} leaves the folder it is unpacked into")
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        if source is None:
            raise InvalidInput(f"archive: entry {member.name!r} cannot be read")
        with source, open(target, "wb") as out:
            shutil.copyfileobj(source, out)
        target.chmod(0o755 if member.mode & 0o100 else 0o644)
