"""The collection interface: describe and open named gridded datasets."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel, Field

from twinengine.errors import CollectionNotFound, FormatUnavailable, TwinEngineError, UnreadableFile

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["Caller", "CollectionInfo", "CollectionNotFound", "CollectionSource", "VariableInfo", "describe"]

_KNOWN_NAMED = 20  # collection ids a not-found answer names, at most

log = logging.getLogger(__name__)


class VariableInfo(BaseModel):
    """One data variable, with CF attributes where the dataset has them."""

    name: str
    dims: list[str]
    dtype: str
    units: str | None = None
    standard_name: str | None = None
    long_name: str | None = None


class CollectionInfo(BaseModel):
    """What a client needs to know before reading: extent, dimensions, variables."""

    id: str
    title: str
    description: str = ""
    format: str = Field(description="the file format (zarr, netcdf, hdf5, grib, geotiff, csv, parquet, ...)")
    dims: dict[str, int]
    bbox: tuple[float, float, float, float] | None = Field(default=None, description="west, south, east, north")
    time: tuple[datetime, datetime] | None = None
    crs: str = "EPSG:4326"
    variables: dict[str, VariableInfo]
    attrs: dict[str, Any] = Field(default_factory=dict)


class Caller(Protocol):
    """Who asks for collections (an ``auth.Principal``), named by what a source needs of it: collections stay
    below the packages of access control."""

    @property
    def name(self) -> str: ...

    @property
    def is_admin(self) -> bool: ...


class CollectionSource:
    """Where collections come from. Subclasses implement ``ids`` and ``open``; ``info`` has a default."""

    name: ClassVar[str] = "abstract"

    def ids(self) -> list[str]:
        raise NotImplementedError

    def open(self, collection_id: str, *, near: Sequence[str] = ()) -> xr.Dataset:
        """A lazily loaded (dask-backed) dataset; implementations cache handles, so call it freely. ``near``:
        storage endpoints to read from first when a source holds copies on several (a run's site's)."""
        raise NotImplementedError

    def info(self, collection_id: str) -> CollectionInfo:
        return describe(collection_id, self.open(collection_id), fmt=self.name)

    def version(self, collection_id: str) -> str | None:
        """A token that changes when the collection's content changes (None: unknown); caches key on it."""
        return None

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """Within it, this thread's calls see one listing of the source: a listing that asks for every
        collection then pays for the source's index once, not once per collection (nothing to keep here)."""
        return contextlib.nullcontext()

    def readable_ids(self, principal: Caller) -> list[str]:
        """The ids ``principal`` may read: all of them here; a source of users' data narrows them (the lake
        asks ``lake.grants``), so every listing shows only what asking for the collection would give."""
        return self.ids()

    def readable(self, collection_id: str, principal: Caller) -> bool:
        """Whether ``principal`` may read a collection this source lists (every caller here; see
        ``readable_ids``). Sources combined (``ChainedCollections``) answer no for an id none of them lists."""
        return True

    def explain(self, collection_id: str, principal: Caller) -> TwinEngineError | None:
        """Why an id that ``readable`` refused cannot be read, where the answer names only what ``principal``
        may read (a file of its own in no collection format; a format whose library is missing); None when
        there is nothing to say but that no such collection exists for it."""
        return None

    def use(self, collection_id: str, principal: Caller) -> None:
        """Count one use of the collection's data by ``principal`` (an EDR query, a run's ``load_collection``),
        after ``require_readable``: nothing to count here. The lake counts the uses of a copy of another
        participant's data held under an agreement whose policy has a ``count`` (``lake.terms``), and refuses
        once it is spent."""

    def require_readable(self, collection_id: str, principal: Caller) -> None:
        """Refuse a collection ``principal`` may not read exactly as one that does not exist: the same 404 with
        the same words, which name only collections it may read, so an answer never tells that a hidden
        collection is there (every surface asks here: EDR, openEO, a run's ``load_collection``)."""
        if self.readable(collection_id, principal):
            return
        explained = self.explain(collection_id, principal)
        if explained is not None:
            raise explained
        known = self.readable_ids(principal)
        named = ", ".join(known[:_KNOWN_NAMED]) or "none"
        more = f", ... ({len(known)} in all)" if len(known) > _KNOWN_NAMED else ""
        raise CollectionNotFound(f"no collection {collection_id!r} (known: {named}{more})")

    def list(self, principal: Caller | None = None) -> list[CollectionInfo]:
        """Every collection that can be read now (by ``principal``, when given); one whose file cannot be is
        left out (and logged), so a corrupt file does not hide the others. Asking for it by id gives the error
        naming it."""
        out = []
        for cid in self.ids() if principal is None else self.readable_ids(principal):
            try:
                out.append(self.info(cid))
            except (UnreadableFile, FormatUnavailable) as exc:
                log.warning("collection %s is not listed: %s", cid, exc.message)
        return out


_LON = ("lon", "longitude", "x")
_LAT = ("lat", "latitude", "y")
_TIME = ("time", "t")


def _coord(ds: xr.Dataset, names: tuple[str, ...]) -> xr.DataArray | None:
    for name in names:
        if name in ds.coords:
            return ds.coords[name]
    return None


def describe(collection_id: str, ds: xr.Dataset, *, fmt: str) -> CollectionInfo:
    """Extent and variables from coordinates and CF attributes; reads coordinates only, never data."""
    lon, lat, time = _coord(ds, _LON), _coord(ds, _LAT), _coord(ds, _TIME)
    bbox = None
    if lon is not None and lat is not None and lon.size and lat.size:
        bbox = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
    interval = None
    if time is not None and time.size and np.issubdtype(time.dtype, np.datetime64):
        start, end = (np.datetime_as_string(time.values.min(), unit="s"),
                      np.datetime_as_string(time.values.max(), unit="s"))
        interval = (datetime.fromisoformat(f"{start}+00:00"), datetime.fromisoformat(f"{end}+00:00"))
    variables = {
        str(name): VariableInfo(name=str(name), dims=[str(d) for d in var.dims], dtype=str(var.dtype),
                                units=var.attrs.get("units"), standard_name=var.attrs.get("standard_name"),
                                long_name=var.attrs.get("long_name"))
        for name, var in ds.data_vars.items()
    }
    attrs = {k: v for k, v in ds.attrs.items() if isinstance(v, str | int | float | bool)}
    return CollectionInfo(id=collection_id, title=str(ds.attrs.get("title", collection_id)),
                          description=str(ds.attrs.get("summary", ds.attrs.get("description", ""))), format=fmt,
                          dims={str(k): int(v) for k, v in ds.sizes.items()}, bbox=bbox, time=interval,
                          variables=variables, attrs=attrs)
