"""Collections from a local folder: every file (or zarr store folder) in a format the engine serves as a
collection is the collection named by its stem: ``rain.zarr``, ``rain.nc``, ``rain.grib2``, ``rain.tif``,
``gauges.csv``... (see ``twinengine.formats``).

Handles are opened once and cached (keyed by path and modification time), so repeated reads do not
re-open files; a file replaced on disk is reopened on next use. A file that cannot be read answers with
an error naming it and the reason (``UnreadableFile``, 422); a file in no collection format is named in the
404's message.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from twinengine import formats
from twinengine.collections.base import Caller, CollectionInfo, CollectionNotFound, CollectionSource, describe
from twinengine.errors import FormatUnavailable, TwinEngineError

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["LocalCollections", "collection_files"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ZARR_META = {"zarr.json", ".zmetadata", ".zarray", ".zattrs", ".zgroup"}


def collection_files(root: Path) -> dict[str, tuple[Path, formats.FormatMatch]]:
    """Collection id → (path, format) for the entries of ``root`` in a collection format (readable here or
    not: one whose library is missing is refused with the reason when opened); the first entry in name order
    wins a clash of stems."""
    if not root.is_dir():
        return {}
    found: dict[str, tuple[Path, formats.FormatMatch]] = {}
    for path in sorted(root.iterdir()):
        if path.name.startswith("."):
            continue
        fmt = formats.match(path.name, is_dir=path.is_dir())
        if fmt is None or not _ID.match(fmt.stem) or not fmt.collection:
            continue
        found.setdefault(fmt.stem, (path, fmt))
    return dict(sorted(found.items()))


class LocalCollections(CollectionSource):
    name: ClassVar[str] = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._open: dict[str, tuple[float, xr.Dataset]] = {}
        self._local = threading.local()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """This thread's calls inside see one listing of the folder (read once, not once per collection)."""
        outer = getattr(self._local, "entries", None)
        self._local.entries = outer if outer is not None else collection_files(self.root)
        try:
            yield
        finally:
            self._local.entries = outer

    def _entries(self) -> dict[str, tuple[Path, formats.FormatMatch]]:
        entries: dict[str, tuple[Path, formats.FormatMatch]] | None = getattr(self._local, "entries", None)
        return entries if entries is not None else collection_files(self.root)

    def ids(self) -> list[str]:
        return [cid for cid, (_, fmt) in self._entries().items() if fmt.unavailable is None]

    def _entry(self, collection_id: str) -> tuple[Path, formats.FormatMatch]:
        found = self._entries().get(collection_id) if _ID.match(collection_id) else None
        if found is None:
            known = ", ".join(self.ids()) or "none"
            odd = sorted(p.name for p in self.root.glob(f"{collection_id}.*")) if _ID.match(collection_id) and \
                self.root.is_dir() else []
            if odd:
                raise CollectionNotFound(f"no collection {collection_id!r}: {odd[0]} is in no format the engine serves "
                                         f"as a collection (it serves {', '.join(formats.known_suffixes())})",
                                         details=[{"loc": "file", "msg": odd[0]}])
            raise CollectionNotFound(f"no collection {collection_id!r} (known: {known})")
        path, fmt = found
        if fmt.unavailable is not None:
            raise FormatUnavailable(f"{path.name}: {fmt.unavailable}", details=[{"loc": "file", "msg": path.name}])
        return found

    def explain(self, collection_id: str, principal: Caller) -> TwinEngineError | None:
        """A file of the folder (which every caller may read) by that name that is not served, and why: in no
        collection format, or in one whose library is missing."""
        try:
            self._entry(collection_id)
        except (CollectionNotFound, FormatUnavailable) as exc:
            return exc if exc.details else None
        return None

    def path(self, collection_id: str) -> Path:
        return self._entry(collection_id)[0]

    def open(self, collection_id: str, *, near: Sequence[str] = ()) -> xr.Dataset:
        path, _ = self._entry(collection_id)  # one copy of each file: nothing to choose
        stamp = path.stat().st_mtime
        with self._lock:
            cached = self._open.get(collection_id)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        ds = formats.open_dataset(path)  # outside the lock: a slow file must not hold up the others
        with self._lock:
            self._open[collection_id] = (stamp, ds)
        return ds

    def info(self, collection_id: str) -> CollectionInfo:
        _, fmt = self._entry(collection_id)
        return describe(collection_id, self.open(collection_id), fmt=fmt.format)

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
