"""Lake datasets as collections: a dataset holding a file in a collection format (netCDF, HDF5, GRIB, GeoTIFF,
a zipped zarr store, a CSV or Parquet station table; see ``twinengine.formats``) is the collection
``scope.name``, opened lazily from an available replica (what openEO ``load_collection`` and the EDR API read
through the runtime's collection source). A run reads from a replica on an endpoint near its site when one
holds the file (``near``: staging put one there); otherwise, and for other callers, a replica on local disk
first, then by endpoint name.

Formats that read file objects open a replica on object storage directly; the others (GRIB, GeoTIFF, zipped
zarr) read a local copy, made once per checksum in the cache folder and checked against the file's sha-256.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, ClassVar, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from twinengine import formats
from twinengine.auth.principal import SYSTEM, Principal
from twinengine.collections.base import Caller, CollectionInfo, CollectionNotFound, CollectionSource, describe
from twinengine.errors import DataCorrupted, FormatUnavailable, PermissionDenied, TwinEngineError, UnreadableFile
from twinengine.lake import terms
from twinengine.lake.context import Lake
from twinengine.lake.grants import Readers
from twinengine.lake.models import Attachment, Did, Endpoint, Replica
from twinengine.lake.schemas import DidType, ReplicaState
from twinengine.lake.storage import LocalStorage, StorageBackend
from twinengine.store.engine import Database

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["LakeCollections", "collection_id", "gridded_format"]

# a file's scope, name and checksum with one readable replica's path and endpoint
_ReplicaRow = tuple[str, str, str | None, str, Endpoint]

_COPY_CHUNK = 4 * 1024 * 1024
_IN_BATCH = 500  # file ids per query: well under the bound parameters a statement may have
_DATASET, _FILE = aliased(Did, name="dataset"), aliased(Did, name="file")  # once: an alias per call is garbage


_AVAILABLE = Replica.state == ReplicaState.AVAILABLE
# A token that changes whenever the gridded listing may: identifiers, checksums, attachments and available
# replicas counted and summed (one aggregate query, much cheaper than the listing's join).
_STAMP = select(
    select(func.count(Did.id)).scalar_subquery(),
    select(func.coalesce(func.max(Did.id), 0)).scalar_subquery(),
    select(func.count(Did.sha256)).scalar_subquery(),
    select(func.count(Replica.id)).where(_AVAILABLE).scalar_subquery(),
    select(func.coalesce(func.sum(Replica.id), 0)).where(_AVAILABLE).scalar_subquery(),
    select(func.count()).select_from(Attachment).scalar_subquery(),
    select(func.coalesce(func.sum(Attachment.parent_id * 7919 + Attachment.child_id), 0)).scalar_subquery(),
)


@functools.lru_cache(maxsize=4096)
def gridded_format(name: str) -> str | None:
    """The collection format of a lake file by its name (readable here or not), or None."""
    found = formats.match(PurePosixPath(name).name, is_dir=False)
    return found.format if found is not None and found.collection else None


def collection_id(scope: str, name: str) -> str:
    """``scope.name`` (scopes have no dots, so the first dot splits it back); '/' in names becomes '~'."""
    return f"{scope}.{name.replace('/', '~')}"


class LakeCollections(CollectionSource):
    name: ClassVar[str] = "lake"

    def __init__(self, db: Database, lake: Lake, *, cache_dir: Path | None = None) -> None:
        self.db = db
        self.lake = lake
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        # by (collection id, endpoint read from): (checksum, what was opened or why it cannot be)
        self._open: dict[tuple[str, str], tuple[str, xr.Dataset]] = {}
        self._failed: dict[tuple[str, str], tuple[str, TwinEngineError]] = {}
        self._listed: tuple[tuple[object, ...], dict[str, tuple[int, str]]] | None = None
        self._ids: tuple[dict[str, tuple[int, str]], list[str]] | None = None  # ids() of that listing
        self._local = threading.local()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """This thread's calls inside see one listing of the lake's collections (asked for once)."""
        outer = getattr(self._local, "listing", None)
        outer_replicas = getattr(self._local, "replicas", None)
        self._local.listing = outer if outer is not None else self._gridded()
        try:
            yield
        finally:
            self._local.listing, self._local.replicas = outer, outer_replicas

    def _gridded(self) -> dict[str, tuple[int, str]]:
        """collection id → (file id, file name) for every dataset with a collection file that has a good replica;
        kept until the lake's identifiers, attachments or available replicas change (``_STAMP``)."""
        listing: dict[str, tuple[int, str]] | None = getattr(self._local, "listing", None)
        if listing is not None:
            return listing
        dataset, file = _DATASET, _FILE
        rows: list[tuple[str, str, int, str]] = []
        try:
            with self.db.reading() as session:  # in the caller's unit of work, if it has one (store.guard)
                stamp = tuple(session.execute(_STAMP).one())
                listed = self._listed
                if listed is not None and listed[0] == stamp:
                    return listed[1]
                rows = session.execute(
                    select(dataset.scope, dataset.name, file.id, file.name)
                    .join(Attachment, Attachment.parent_id == dataset.id).join(file, file.id == Attachment.child_id)
                    .join(Replica, Replica.did_id == file.id)
                    .where(dataset.type == DidType.DATASET, Replica.state == ReplicaState.AVAILABLE,
                           file.sha256.is_not(None))
                    .order_by(dataset.scope, dataset.name, file.name)).all()  # type: ignore[assignment]
        except Exception:  # the store is not migrated yet (a runtime not started): no lake collections
            return {}
        found: dict[str, tuple[int, str]] = {}
        for scope, name, file_id, file_name in rows:
            if gridded_format(file_name):
                found.setdefault(collection_id(scope, name), (file_id, file_name))
        self._listed = (stamp, found)
        return found

    def ids(self) -> list[str]:
        """The listed collections in a format this engine reads; worked out once per listing (a listing of
        the EDR collections asks for them once per collection, to find the source that owns it)."""
        listing = self._gridded()
        kept = self._ids
        if kept is not None and kept[0] is listing:
            return list(kept[1])
        ids = [cid for cid, (_, name) in listing.items()
               if (found := formats.match(PurePosixPath(name).name)) is not None and found.unavailable is None]
        self._ids = (listing, ids)
        return list(ids)

    def readable_ids(self, principal: Caller) -> list[str]:
        """The lake's collections whose dataset and file ``principal`` may read (``lake.grants``)."""
        ids = self.ids()
        if not ids:
            return ids
        if not principal.is_admin and not isinstance(principal, Principal):  # nobody the policy knows
            return []
        gridded = self._gridded()
        with self.db.session(readonly=True) as session:  # an admin's too: a copy its terms hold back is left out
            readers = Readers(session, cast(Principal, principal))
            datasets = self._datasets(session, ids)
            file_ids = [gridded[cid][0] for cid in ids if cid in gridded]
            files = {did.id: did for start in range(0, len(file_ids), _IN_BATCH)
                     for did in session.scalars(select(Did).where(Did.id.in_(file_ids[start:start + _IN_BATCH])))}
            return [cid for cid in ids if self._readable(session, readers, cid, gridded, (datasets, files))]

    @staticmethod
    def _datasets(session: Session, ids: list[str]) -> dict[str, Did]:
        """The datasets that collection ids name, by id: asked for in a query per batch, not one each."""
        wanted = {cid: (scope, name.replace("~", "/")) for cid in ids for scope, _, name in [cid.partition(".")]}
        pairs = sorted(set(wanted.values()))
        found: dict[tuple[str, str], Did] = {}
        for start in range(0, len(pairs), _IN_BATCH):
            batch = pairs[start:start + _IN_BATCH]
            for did in session.scalars(select(Did).where(Did.type == DidType.DATASET,
                                                         Did.scope.in_({scope for scope, _ in batch}),
                                                         Did.name.in_({name for _, name in batch}))):
                found[(did.scope, did.name)] = did
        return {cid: found[pair] for cid, pair in wanted.items() if pair in found}

    def readable(self, collection_id: str, principal: Caller) -> bool:
        if principal.is_admin:
            return self._refused_copy(collection_id) is None
        if not isinstance(principal, Principal) or collection_id not in self.ids():  # nobody the policy knows
            return False
        with self.db.session(readonly=True) as session:
            return self._readable(session, Readers(session, principal), collection_id, self._gridded())

    def _refused_copy(self, collection_id: str, principal: Principal | None = None) -> PermissionDenied | None:
        """Why a collection ``principal`` may read (by grants; None: an admin) is a copy of another participant's
        data whose agreement no longer permits its use (``lake.terms``), or None."""
        with self.db.session(readonly=True) as session:
            dataset, file = self._dids_of(session, collection_id)
            readers = None if principal is None else Readers(session, principal)
            for did in (dataset, file):
                if did is None or (readers is not None and not readers(did)):
                    continue
                reason = terms.refusal(did, session=session)
                if reason is not None:
                    return PermissionDenied(reason, details=[{"loc": "collection_id", "msg": "the agreement's "
                                                              "terms do not permit this use"}])
        return None

    def use(self, collection_id: str, principal: Caller) -> None:
        """One use of a collection that is a copy held under terms: counted per agreement, refused once the
        terms no longer permit it (``lake.terms``). The engine's own reads (``SYSTEM``) are no use of a copy."""
        if principal is SYSTEM:
            return
        with self.db.session(readonly=True) as session:
            dataset, file = self._dids_of(session, collection_id)
            terms.require_use(self.db, *(did for did in (dataset, file) if did is not None))

    def _dids_of(self, session: Session, collection_id: str) -> tuple[Did | None, Did | None]:
        """The lake dataset behind a collection and the file it is served from (either None where missing)."""
        found = self._gridded().get(collection_id)
        scope, _, name = collection_id.partition(".")
        dataset = session.scalar(select(Did).where(Did.scope == scope, Did.name == name.replace("~", "/"),
                                                   Did.type == DidType.DATASET))
        return dataset, None if found is None else session.get(Did, found[0])

    def explain(self, collection_id: str, principal: Caller) -> TwinEngineError | None:
        """For a dataset ``principal`` may read that is not served: its files it may read are in no collection
        format, or the first one's format needs a library that is missing. Nothing about one it may not read."""
        if not isinstance(principal, Principal):
            return None
        if collection_id in self.ids():
            try:
                return self._refused_copy(collection_id, principal)
            except Exception:  # the store is not migrated yet
                return None
        scope, _, name = collection_id.partition(".")
        if not name:
            return None
        try:
            with self.db.session(readonly=True) as session:
                readers = Readers(session, principal)
                dataset = session.scalar(select(Did).where(Did.scope == scope, Did.name == name.replace("~", "/"),
                                                           Did.type == DidType.DATASET))
                if dataset is None or not readers(dataset):
                    return None
                files = [f.did for f in readers.only(session.scalars(
                    select(Did).join(Attachment, Attachment.child_id == Did.id)
                    .where(Attachment.parent_id == dataset.id, Did.type == DidType.FILE).order_by(Did.name)))]
        except Exception:  # the store is not migrated yet
            return None
        gridded = [f for f in files if gridded_format(f.partition(":")[2])]
        if files and not gridded:
            shown = files[:5]
            return CollectionNotFound(f"no collection {collection_id!r}: its files ({', '.join(shown)}) are in no "
                                      "format the engine serves as a collection (it serves "
                                      f"{', '.join(formats.known_suffixes())})",
                                      details=[{"loc": "file", "msg": shown[0]}])
        found = formats.match(PurePosixPath(gridded[0]).name) if gridded else None
        if found is not None and found.unavailable is not None:
            return FormatUnavailable(f"{gridded[0]}: {found.unavailable}", details=[{"loc": "file", "msg": gridded[0]}])
        return None

    @staticmethod
    def _readable(session: Session, readers: Readers, collection_id: str, gridded: dict[str, tuple[int, str]],
                  known: tuple[dict[str, Did], dict[int, Did]] | None = None) -> bool:
        """``known``: the datasets (by collection id) and files (by id) a listing asked for together."""
        scope, _, name = collection_id.partition(".")
        dataset = known[0].get(collection_id) if known is not None else session.scalar(
            select(Did).where(Did.scope == scope, Did.name == name.replace("~", "/"), Did.type == DidType.DATASET))
        found = gridded.get(collection_id)
        file = None if found is None else known[1].get(found[0]) if known is not None else session.get(Did, found[0])
        return (dataset is not None and readers(dataset) and terms.refusal(dataset, session=session) is None
                and (file is None or (readers(file) and terms.refusal(file, session=session) is None)))

    def _locate(self, collection_id: str) -> tuple[int, str]:
        found = self._gridded().get(collection_id)
        if found is None:
            files = self._files_of(collection_id)
            if files:
                raise CollectionNotFound(f"no collection {collection_id!r}: its files ({', '.join(files)}) are in no "
                                         "format the engine serves as a collection (it serves "
                                         f"{', '.join(formats.known_suffixes())})",
                                         details=[{"loc": "file", "msg": files[0]}])
            raise CollectionNotFound(f"no gridded lake dataset {collection_id!r}")
        return found

    def _files_of(self, collection_id: str) -> list[str]:
        """The file DIDs of the dataset a collection id names (none when it names no dataset)."""
        scope, _, name = collection_id.partition(".")
        if not name:
            return []
        dataset, file = _DATASET, _FILE
        try:
            with self.db.session(readonly=True) as session:
                rows = session.execute(
                    select(file.scope, file.name).join(Attachment, Attachment.child_id == file.id)
                    .join(dataset, dataset.id == Attachment.parent_id)
                    .where(dataset.scope == scope, dataset.name == name.replace("~", "/"),
                           dataset.type == DidType.DATASET, file.type == DidType.FILE)
                    .order_by(file.name).limit(5)).all()
        except Exception:  # the store is not migrated yet
            return []
        return [f"{s}:{n}" for s, n in rows]

    def open(self, collection_id: str, *, near: Sequence[str] = ()) -> xr.Dataset:
        """``near``: endpoint names to read from first, in that order (a run's site's: see the module)."""
        file_id, _ = self._locate(collection_id)
        rank = {name: i for i, name in enumerate(near)}
        choices = sorted(self._replicas(file_id),
                         key=lambda r: (rank.get(r[4].name, len(rank)), r[4].protocol != "file", r[4].name))
        if not choices:
            raise CollectionNotFound(f"{collection_id}: no readable replica right now")
        scope, file_name, sha256, path, endpoint = choices[0]
        backend, stamp, key = self.lake.backend(endpoint), sha256 or "", (collection_id, endpoint.name)
        label, name = f"{scope}:{file_name}", PurePosixPath(file_name).name
        with self._lock:
            cached = self._open.get(key)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            failed = self._failed.get(key)
            if failed is not None and failed[0] == stamp and stamp:  # the same bytes fail the same way
                raise failed[1]
        try:
            ds = self._read(backend, path, name=name, label=label, sha256=stamp)
        except (FormatUnavailable, UnreadableFile) as exc:
            with self._lock:
                self._failed[key] = (stamp, exc)
            raise
        with self._lock:
            self._open[key] = (stamp, ds)
            self._failed.pop(key, None)
        return ds

    def _replicas(self, file_id: int) -> list[_ReplicaRow]:
        """The file (scope, name, checksum) with each readable replica (path, endpoint). Within a snapshot,
        those of every listed file are asked for at the first open, in one query, not one query each."""
        listing: dict[str, tuple[int, str]] | None = getattr(self._local, "listing", None)
        if listing is None:
            return self._replicas_of([file_id]).get(file_id, [])
        found: dict[int, list[_ReplicaRow]] | None = getattr(self._local, "replicas", None)
        if found is None or file_id not in found:
            found = self._local.replicas = self._replicas_of(sorted({f for f, _ in listing.values()} | {file_id}))
        return found.get(file_id, [])

    def _replicas_of(self, file_ids: list[int]) -> dict[int, list[_ReplicaRow]]:
        out: dict[int, list[_ReplicaRow]] = {file_id: [] for file_id in file_ids}
        with self.db.session(readonly=True) as session:
            for start in range(0, len(file_ids), _IN_BATCH):
                for r in session.execute(
                        select(Did.id, Did.scope, Did.name, Did.sha256, Replica.path, Endpoint)
                        .join(Replica, Replica.did_id == Did.id).join(Endpoint, Endpoint.id == Replica.endpoint_id)
                        .where(Did.id.in_(file_ids[start:start + _IN_BATCH]), Replica.state == ReplicaState.AVAILABLE,
                               Endpoint.read.is_(True))):
                    out[r[0]].append((r[1], r[2], r[3], r[4], r[5]))
        return out

    def _read(self, backend: StorageBackend, path: str, *, name: str, label: str, sha256: str) -> xr.Dataset:
        found = formats.resolve(name, label=label, is_dir=False)
        if found.unavailable is not None:
            raise FormatUnavailable(f"{label}: {found.unavailable}")
        if isinstance(backend, LocalStorage):
            return formats.open_dataset(backend.root / path, label=label)
        handle = backend.open_file(path)
        ds = formats.open_fileobj(handle, name, label=label)
        if ds is not None:
            return ds
        handle.close()
        return formats.open_dataset(self._local_copy(backend, path, suffix=found.suffix, sha256=sha256), label=label)

    def _local_copy(self, backend: StorageBackend, path: str, *, suffix: str, sha256: str) -> Path:
        """A local copy of a replica for formats that read paths only: made once per checksum, verified."""
        import tempfile

        folder = self.cache_dir or Path(tempfile.gettempdir()) / "twinengine-lake-cache"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{sha256}{suffix}"
        if target.is_file():
            return target
        part = folder / f".{sha256}.{os.getpid()}.{threading.get_ident()}.part"
        digest = hashlib.sha256()
        with backend.open_file(path) as source, open(part, "wb") as out:
            while chunk := source.read(_COPY_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            part.unlink(missing_ok=True)
            raise DataCorrupted(f"{path}: the replica's bytes no longer match its sha-256")
        part.replace(target)
        return target

    def info(self, collection_id: str) -> CollectionInfo:
        fmt = gridded_format(self._locate(collection_id)[1]) or "unknown"
        return describe(collection_id, self.open(collection_id), fmt=fmt)

    def close(self) -> None:
        with self._lock:
            for _, ds in self._open.values():
                ds.close()
            self._open.clear()
