"""Collections from a local folder: every ``NAME.zarr`` store and ``NAME.nc`` file is the collection NAME.

Handles are opened once and cached (keyed by path and modification time), so repeated reads do not
re-open files; a file replaced on disk is reopened on next use.
"""

from __future__ import annotations

import hashlib
import re
import threading
import warnings
from pathlib import Path
from typing import ClassVar

import xarray as xr

from twinengine.collections.base import CollectionInfo, CollectionNotFound, CollectionSource, describe

__all__ = ["LocalCollections"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ZARR_META = {"zarr.json", ".zmetadata", ".zarray", ".zattrs", ".zgroup"}
_SUFFIXES = {".zarr": "zarr", ".nc": "netcdf", ".nc4": "netcdf"}


def _open_zarr(path: Path) -> xr.Dataset:
    """Consolidated metadata is one read instead of one per array; use it when the store has it.

    Zarr 3 warns that consolidated metadata is outside its format specification on every read; that is
    a notice about portability, not about this store, so it is filtered here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part",
                                category=UserWarning)
        ds: xr.Dataset
        try:
            ds = xr.open_zarr(path, chunks={}, consolidated=True)
        except (KeyError, ValueError, FileNotFoundError):
            ds = xr.open_zarr(path, chunks={}, consolidated=False)
        return ds


class LocalCollections(CollectionSource):
    name: ClassVar[str] = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._open: dict[str, tuple[float, xr.Dataset]] = {}

    def _paths(self) -> dict[str, Path]:
        if not self.root.is_dir():
            return {}
        found: dict[str, Path] = {}
        for path in sorted(self.root.iterdir()):
            if path.suffix in _SUFFIXES and _ID.match(path.stem):
                found.setdefault(path.stem, path)
        return dict(sorted(found.items()))

    def ids(self) -> list[str]:
        return list(self._paths())

    def path(self, collection_id: str) -> Path:
        path = self._paths().get(collection_id) if _ID.match(collection_id) else None
        if path is None:
            known = ", ".join(self.ids()) or "none"
            raise CollectionNotFound(f"no collection {collection_id!r} (known: {known})")
        return path

    def open(self, collection_id: str) -> xr.Dataset:
        path = self.path(collection_id)
        stamp = path.stat().st_mtime
        with self._lock:
            cached = self._open.get(collection_id)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            ds: xr.Dataset
            if _SUFFIXES[path.suffix] == "zarr":
                ds = _open_zarr(path)
            else:
                ds = xr.open_dataset(path, chunks={}, engine="h5netcdf")
            self._open[collection_id] = (stamp, ds)
            return ds

    def info(self, collection_id: str) -> CollectionInfo:
        return describe(collection_id, self.open(collection_id), fmt=_SUFFIXES[self.path(collection_id).suffix])

    def version(self, collection_id: str) -> str | None:
        """Modification times and sizes of the file, or of a zarr store's metadata documents."""
        path = self.path(collection_id)
        parts = [path] if path.is_file() else [path, *sorted(p for p in path.rglob("*") if p.name in _ZARR_META)]
        stamps = [f"{p.relative_to(path.parent)}:{p.stat().st_mtime_ns}:{p.stat().st_size}" for p in parts]
        return hashlib.sha256("|".join(stamps).encode()).hexdigest()[:16]

    def close(self) -> None:
        with self._lock:
            for _, ds in self._open.values():
                ds.close()
            self._open.clear()
