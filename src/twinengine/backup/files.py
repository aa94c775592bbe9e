"""The engine's folders in a backup: which files go, and copies that are checksummed as they are written.

A SQLite database among the files (the model registry's ``mlflow.db``, say) is copied through SQLite's backup
API, which gives a consistent copy whatever its journal holds; its ``-wal``/``-shm`` files are not copied.
Files are copied up to the size they had when listed: a stream segment being appended to may end in a torn
frame, which the stream log cuts off when it opens the copy (as after a crash), never an acknowledged entry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from twinengine.backup.manifest import FileEntry
from twinengine.config import Settings

__all__ = ["Root", "copy_file", "file_sha256", "list_files", "roots_of", "settle"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_CHUNK = 1 << 20
# Never copied: the store (dumped row by row instead), caches, locks, half-written uploads and builds.
_SKIPPED_NAMES = {"cache", "primary.lock", ".lock", ".incoming"}
_SKIPPED_SUFFIXES = ("-wal", "-shm", "-journal", ".part", ".tmp")


@dataclass(frozen=True)
class Root:
    """One of the engine's folders: ``name`` in the backup, ``path`` on this host."""

    name: str
    path: Path


def roots_of(settings: Settings, *, with_envs: bool) -> tuple[list[Root], list[str]]:
    """The engine's folders, each copied on its own (one inside the data dir is not copied with it, so a
    restore can put it where the restoring engine's settings say), and notes on what a backup leaves out. App
    environments are rebuilt from their locks on first use, so only the locks go unless ``with_envs``."""
    data = settings.data_dir
    roots = [Root("data", data), Root("streams", settings.streams_dir or data / "streams"),
             Root("collections", settings.collections_dir or data / "collections"), Root("envs", settings.envs_root)]
    notes: list[str] = []
    if settings.stream_backend != "local":
        notes.append(f"stream log: {settings.stream_backend} keeps it (back it up with its own tools, e.g. `nats "
                     "stream backup`); the store's rows of the streams are here")
    if settings.mlflow_uri is not None and not settings.mlflow_uri.startswith("sqlite:"):
        notes.append(f"model registry: the MLflow server at {settings.mlflow_uri} keeps it (back it up there)")
    if not with_envs:
        notes.append("app environments: only their locks (each is rebuilt from its lock on first use)")
    return roots, notes


def list_files(roots: list[Root], settings: Settings, *, with_envs: bool) -> Iterator[tuple[Root, Path]]:
    """Every file to copy, root by root (``root``-relative paths)."""
    store = Path(settings.db_url.removeprefix("sqlite:///")).resolve() if settings.db_url.startswith("sqlite") \
        else None
    envs = settings.envs_root.resolve()
    every = {root.path.resolve() for root in roots}
    for root in roots:
        if not root.path.is_dir():
            continue
        own = root.path.resolve()
        for folder, dirs, files in os.walk(root.path):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_NAMES and not d.startswith(".build-")
                             and (here / d).resolve() not in every - {own}
                             and (with_envs or not _an_environment(here / d, envs)))
            for name in sorted(files):
                path = here / name
                if name in _SKIPPED_NAMES or name.endswith(_SKIPPED_SUFFIXES) or path.is_symlink():
                    continue
                if store is not None and path.resolve() == store:
                    continue
                yield root, path.relative_to(root.path)


def _an_environment(folder: Path, envs: Path) -> bool:
    """A built app environment (a folder of the environments' root beside ``by-app``/``by-requires``)."""
    return folder.resolve().parent == envs and folder.name not in ("by-app", "by-requires")


def copy_file(source: Path, target: Path, root: str, relative: Path,
              advance: Callable[[int], None] = lambda _: None, *, live: bool = True) -> FileEntry:
    """Copy one file, returning its entry with the copy's checksum. From a ``live`` folder (an engine's, not a
    backup's), a SQLite database is copied through its backup API."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if live and _is_sqlite(source):
        with closing(sqlite3.connect(source, timeout=30)) as src, closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
        with closing(sqlite3.connect(target)) as dst:  # a copy that stands alone: no journal beside it
            dst.execute("PRAGMA journal_mode=DELETE")
        size = target.stat().st_size
        advance(size)
        return FileEntry(root=root, path=relative.as_posix(), bytes=size, sha256=file_sha256(target))
    digest, size = hashlib.sha256(), 0
    with source.open("rb") as src, target.open("wb") as dst:
        limit = os.fstat(src.fileno()).st_size  # as it was when opened: an appended file's copy ends there
        while size < limit:
            chunk = src.read(min(_CHUNK, limit - size))
            if not chunk:
                break
            dst.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            advance(len(chunk))
    shutil.copystat(source, target)  # made durable all at once, before the manifest is written (``settle``)
    return FileEntry(root=root, path=relative.as_posix(), bytes=size, sha256=digest.hexdigest())


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def file_sha256(path: Path, advance: Callable[[int], None] = lambda _: None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            advance(len(chunk))
    return digest.hexdigest()


def settle() -> None:
    """Every file copied so far on disk: one sync of the file systems rather than an fsync per file (a data dir
    holds thousands of small files; the manifest, written after this, is what makes a backup count)."""
    os.sync()
