"""Inputs as references with checksums: a collection the run loaded is named by its id and version token, and
by the SHA-256 of its files where the engine can read them (a local file, or a zarr store's files in order),
computed when the crate is made. It is never copied into the crate, however large. A collection whose version
token is no longer the one the run recorded has changed since: the crate says so and names no checksum for it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from twinengine.crates.record import Input

__all__ = ["collection_input", "tree_sha256"]

BLOCK = 1 << 20


def tree_sha256(path: Path) -> tuple[str, int]:
    """SHA-256 of a file, or of a folder's files (each one's relative path and bytes, in sorted order); and the
    bytes read."""
    digest = hashlib.sha256()
    size = 0
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            while block := handle.read(BLOCK):
                digest.update(block)
                size += len(block)
    return digest.hexdigest(), size


def _local_path(collections: Any, collection_id: str) -> Path | None:
    """The file or folder of a collection a local source keeps (a chain of sources is searched in order)."""
    for source in [*getattr(collections, "sources", []), collections]:
        path_of = getattr(source, "path", None)
        ids = getattr(source, "ids", None)
        if callable(path_of) and callable(ids) and collection_id in ids():
            try:
                path = path_of(collection_id)
            except Exception:  # a source that cannot say: no checksum
                return None
            return path if isinstance(path, Path) and path.exists() else None
    return None


def _version_now(collections: Any, collection_id: str) -> str | None:
    version = getattr(collections, "version", None)
    try:
        found = version(collection_id) if callable(version) else None
    except Exception:
        return None
    return None if found is None else str(found)


def collection_input(collections: Any, collection_id: str, version: str | None) -> Input:
    found = Input(id=collection_id, kind="collection", name=collection_id, version=version)
    if collections is None:
        found.description = "a collection of the engine (not copied into the crate)"
        return found
    now = _version_now(collections, collection_id)
    if version is not None and now is not None and now != version:
        found.description = (f"collection {collection_id}: changed since the run (version {version} then, {now} "
                             "now); not copied into the crate")
        found.properties["changed"] = True
        return found
    path = _local_path(collections, collection_id)
    if path is not None:
        found.sha256, found.size = tree_sha256(path)
        found.description = f"collection {collection_id} ({found.size} bytes; a reference, not copied into the crate)"
    else:
        found.description = f"collection {collection_id} (a reference, not copied into the crate)"
    return found
