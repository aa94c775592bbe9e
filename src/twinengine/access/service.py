"""Data access for DT users: EDR metadata and queries over the runtime's collections.

``DataAccess`` holds what outlives a request: a chunk reader per (dataset handle, variable), the bounded
cache of decoded chunks they share, and a small thread pool whose threads help requests with their chunk
reads (each request's own thread reads too, see ``reads``).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import shapely
import xarray as xr
from shapely.geometry.base import BaseGeometry

from twinengine.access import points, queries
from twinengine.access.chunks import BlockReader, ChunkCache, reader_for
from twinengine.access.extract import Extraction, Planner, instance_id
from twinengine.access.grid import GridAxes
from twinengine.access.query import Query, ZFilter
from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.collections import CollectionSource
from twinengine.errors import InvalidParameterValue, NotFound

__all__ = ["DataAccess", "Query", "collection_ids", "locations_of", "readable_collection", "run_query"]

QUERY_TYPES = ("position", "radius", "area", "cube", "trajectory", "corridor", "locations", "instances")
CRS_ALIASES = {"crs84", "ogc:crs84", "epsg:4326", "http://www.opengis.net/def/crs/ogc/1.3/crs84",
               "http://www.opengis.net/def/crs/epsg/0/4326", "urn:ogc:def:crs:ogc:1.3:crs84",
               "urn:ogc:def:crs:epsg::4326"}


class DataAccess:
    """Readers and the decoded-chunk cache for one runtime's collections."""

    def __init__(self, source: CollectionSource, *, max_values: int, cache_bytes: int, workers: int = 4) -> None:
        self.source = source
        self.max_values = max_values
        self.cache = ChunkCache(cache_bytes)
        self.workers = workers
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="twin-chunks")
        self._readers: OrderedDict[tuple[str, int, str], tuple[xr.Dataset, BlockReader]] = OrderedDict()
        self._axes: OrderedDict[tuple[str, int], tuple[xr.Dataset, dict[str, GridAxes | None]]] = OrderedDict()
        self._lock = threading.Lock()

    def reader(self, collection_id: str, ds: xr.Dataset, name: str) -> BlockReader:
        """One reader per dataset handle and variable; a reopened (changed) dataset gets new ones, so its
        cached chunks are never served for the new data."""
        key = (collection_id, id(ds), name)
        with self._lock:
            found = self._readers.get(key)
            if found is not None and found[0] is ds:
                self._readers.move_to_end(key)
                return found[1]
            reader = reader_for(ds, name, key=(collection_id, id(ds), name), cache=self.cache, pool=self.pool,
                                workers=self.workers)
            self._readers[key] = (ds, reader)  # holding ds keeps id(ds) from being reused while cached
            while len(self._readers) > 256:
                self._readers.popitem(last=False)
            return reader

    def planner(self, collection_id: str) -> Planner:
        ds = self.source.open(collection_id)
        return Planner(ds, reader=lambda name: self.reader(collection_id, ds, name), max_values=self.max_values,
                       memo=self.axes_memo(collection_id, ds))

    def axes_memo(self, collection_id: str, ds: xr.Dataset) -> dict[str, GridAxes | None]:
        """The axes found per variable of one dataset handle, kept while the handle is (a reopened dataset
        starts afresh)."""
        key = (collection_id, id(ds))
        with self._lock:
            found = self._axes.get(key)
            if found is not None and found[0] is ds:
                self._axes.move_to_end(key)
                return found[1]
            memo: dict[str, GridAxes | None] = {}
            self._axes[key] = (ds, memo)
            while len(self._axes) > 256:
                self._axes.popitem(last=False)
            return memo

    def z_units(self, collection_id: str) -> str | None:
        """Units of the vertical axis of the collection's gridded parameters, if they have one."""
        planner = self.planner(collection_id)
        names = planner.gridded()
        axes = planner.axes(names[0]) if names else None
        if axes is None or axes.z is None or axes.z not in planner.ds.coords:
            return None
        units = planner.ds[axes.z].attrs.get("units")
        return None if units is None else str(units)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.cache.clear()
        self._readers.clear()
        self._axes.clear()


def check_crs(crs: str | None) -> None:
    if crs is not None and crs.strip().lower() not in CRS_ALIASES:
        raise InvalidParameterValue("crs", f"{crs!r} is not offered; this service answers in CRS84 "
                                           "(longitude, latitude on WGS 84)")


def run_query(access: DataAccess, *, principal: Principal, collection_id: str, query: Query,
              deferred: bool = False) -> Extraction:
    """Plan, check the size, then read: the one path every EDR query type and feature request takes.
    ``deferred``: grid answers (area, cube, radius) come back planned, size-checked and allocated, their
    reads left to ``Extraction.complete`` or to the jobs ``pending`` queues (an encoder can then write
    while they run)."""
    extraction = _plan(access, principal=principal, collection_id=collection_id, query=query)
    return extraction if deferred else extraction.complete()


def readable_collection(access: DataAccess, *, principal: Principal, collection_id: str) -> None:
    """Refuse unless ``principal`` may read the collection: ``collection.read``, then its source's own answer
    (the lake's datasets follow their twin's, run's or owner's grants). One it may not read answers exactly as
    an unknown one (``CollectionSource.require_readable``), on every EDR route, before anything is opened."""
    require(principal, "collection.read", target=collection_id)
    access.source.require_readable(collection_id, principal)


def collection_ids(access: DataAccess, *, principal: Principal) -> list[str]:
    """The collections ``principal`` may read (what the EDR listing and the portal's map show)."""
    require(principal, "collection.read")
    return access.source.readable_ids(principal)


def _plan(access: DataAccess, *, principal: Principal, collection_id: str, query: Query) -> Extraction:
    readable_collection(access, principal=principal, collection_id=collection_id)  # a spent copy: refused here
    extraction = _planned(access, collection_id, query)
    # each query answered is a use (a copy's count is kept: lake.terms), counted once its parameters are known
    # to be good: one refused for its own parameters read no data and used nothing
    access.source.use(collection_id, principal)
    return extraction


def _planned(access: DataAccess, collection_id: str, query: Query) -> Extraction:
    planner = access.planner(collection_id)
    stations = points.stations_of(planner.ds) if not planner.gridded() else None
    if stations is not None:
        return points.plan(planner.ds, stations, query, max_values=access.max_values)
    ctx = planner.context(parameters=query.parameters, datetime=query.datetime, z=query.z, instance=query.instance)
    if query.kind == "position":
        assert query.geometry is not None
        return queries.position(ctx, query.geometry, method=query.method)
    if query.kind == "radius":
        assert query.geometry is not None and query.within_km is not None
        return queries.radius(ctx, query.geometry, query.within_km)
    if query.kind == "area":
        assert query.geometry is not None
        return queries.area(ctx, query.geometry)
    if query.kind == "cube":
        assert query.bbox is not None
        if len(query.bbox) == 6:
            ctx.zi = Planner._z(ctx.axes, ZFilter(lo=query.bbox[4], hi=query.bbox[5], text="bbox z"))
        return queries.cube(ctx, query.bbox)
    if query.kind == "trajectory":
        assert query.geometry is not None
        return queries.trajectory(ctx, query.geometry)
    if query.kind == "corridor":
        assert query.geometry is not None and query.width_km is not None
        return queries.corridor(ctx, query.geometry, query.width_km, query.height)
    raise InvalidParameterValue("query", f"unknown query type {query.kind!r}")


def locations_of(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Named stations of a collection, from its ``edr:locations`` attribute (a GeoJSON FeatureCollection of
    Points with ids, as a JSON object or string)."""
    raw = ds.attrs.get("edr:locations")
    if raw is None:
        return {}
    data = json.loads(raw) if isinstance(raw, str) else raw
    out = {}
    for feature in data.get("features", []):
        fid = str(feature.get("id") or feature.get("properties", {}).get("id", ""))
        geometry = feature.get("geometry") or {}
        if fid and geometry.get("type") == "Point":
            out[fid] = feature
    return out


def location_geometry(access: DataAccess, *, principal: Principal, collection_id: str,
                      location_id: str) -> BaseGeometry:
    readable_collection(access, principal=principal, collection_id=collection_id)
    found = locations_of(access.source.open(collection_id)).get(location_id)
    if found is None:
        raise NotFound(f"collection {collection_id!r} has no location {location_id!r}")
    x, y = found["geometry"]["coordinates"][:2]
    return shapely.Point(float(x), float(y))


def instance_ids(ds: xr.Dataset) -> list[str]:
    planner = Planner(ds, reader=lambda name: None, max_values=0)  # type: ignore[arg-type,return-value]
    names = planner.gridded()
    if not names:
        return []
    from twinengine.access.grid import axes_of

    axes = axes_of(ds, names[0])
    if axes.instances is None:
        return []
    return [instance_id(v) for v in np.asarray(axes.instances)]
