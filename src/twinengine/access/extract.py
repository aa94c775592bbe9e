"""Feature extraction from a gridded dataset: position, radius, area, cube, trajectory and corridor.

Every query is planned on coordinates alone (indices, masks, the answer's size), checked against the
size limit, and only then read through the chunk readers, which touch exactly the chunks it needs.
The result is a format-neutral ``Extraction`` that the CoverageJSON, GeoJSON and netCDF encoders share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
import xarray as xr
from shapely.geometry.base import BaseGeometry

from twinengine.access import statistics
from twinengine.access.chunks import BlockReader, ReadStats
from twinengine.access.grid import GridAxes, axes_of, index_range, nearest_index
from twinengine.access.query import TimeFilter, ZFilter
from twinengine.access.reads import Reads
from twinengine.errors import InvalidParameterValue, ResponseTooLarge

__all__ = ["Context", "Coverage", "Extraction", "ParameterInfo", "Planner", "nearest_indices"]

ROLES = ("t", "z", "y", "x")
_JSON_BYTES_PER_VALUE = 11  # a float32 written as JSON, with its comma: how big a refused answer would be


@dataclass(frozen=True)
class ParameterInfo:
    """A data variable as EDR and CoverageJSON describe it."""

    name: str
    units: str | None
    standard_name: str | None
    long_name: str | None
    dtype: str
    statistic: str | None = None  # an UncertML statistic URI (access/statistics.py)
    quantile: float | None = None  # the level, for a quantile
    base: str | None = None  # the parameter this one is a statistic of


def parameter_info(ds: xr.Dataset, name: str) -> ParameterInfo:
    """A data variable's description, with the statistic it holds and of which variable."""
    attrs = dict(ds[name].attrs)
    measure = statistics.statistic(attrs)
    base = statistics.base_of(ds, name) if measure is not None else None
    if base is None and measure is None and statistics.ancillaries(ds, name):
        measure = statistics.MEAN  # the value a group of statistics qualifies
    return ParameterInfo(name=name, units=attrs.get("units"), standard_name=attrs.get("standard_name"),
                         long_name=attrs.get("long_name"), dtype=str(ds[name].dtype), statistic=measure,
                         quantile=statistics.quantile_level(attrs) if measure == statistics.QUANTILE else None,
                         base=base)


@dataclass
class Coverage:
    """One coverage: regular axes (x, y, z, t), or a composite axis of tuples, and one array per parameter."""

    domain_type: str
    axes: dict[str, np.ndarray]
    axis_names: tuple[str, ...]
    ranges: dict[str, np.ndarray]
    composite: dict[str, np.ndarray] | None = None


Progress = Callable[[str, int], None]  # (parameter, leading entries along t now final)
PendingReads = Callable[[Progress | None, Reads], None]  # queues an answer's reads as jobs on ``Reads``


@dataclass
class Extraction:
    """A query's answer. A grid query planned with ``deferred`` reads only when ``complete`` is called, or
    when the jobs its ``pending`` callable queues (given a ``Progress`` and a ``Reads``) run: its range arrays
    exist but are being filled."""

    coverages: list[Coverage]
    parameters: dict[str, ParameterInfo]
    domain_type: str
    collection: bool = False
    stats: ReadStats = field(default_factory=ReadStats)
    pending: PendingReads | None = None
    # (k, 2) longitude and latitude of the cells or stations the values come from, where those may lie outside
    # the area asked (the nearest cell or station to a point, the four cells interpolated, the cells along a
    # path); None where they lie inside it by construction (a cube's, an area's, a radius's, a corridor's cells
    # are those whose centres lie in it)
    sources: np.ndarray | None = None

    @property
    def values(self) -> int:
        return sum(int(a.size) for c in self.coverages for a in c.ranges.values())

    def complete(self) -> Extraction:
        """Do the reads still pending (if any); the ranges then hold every value."""
        pending, self.pending = self.pending, None
        if pending is not None:
            _finish(pending)
        return self


def sources_area(extraction: Extraction) -> BaseGeometry | None:
    """Where ``extraction``'s values come from, where that may lie outside the area asked: its ``sources`` as
    one MultiPoint, longitude in -180..180 (what a policy's ``spatialCoordinates`` judges beside the area
    asked: the cell nearest a point may have its centre outside it); None where they lie inside it."""
    if extraction.sources is None or not len(extraction.sources):
        return None
    longitudes = (extraction.sources[:, 0] + 180.0) % 360.0 - 180.0
    return shapely.multipoints(np.column_stack([longitudes, extraction.sources[:, 1]]))


def _finish(pending: PendingReads) -> None:
    """Queue the reads and do them, this thread taking jobs beside the pool's helpers."""
    reads = Reads()
    pending(None, reads)
    reads.finish()


def nearest_indices(coord: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Vectorised ``nearest_index`` for a sorted coordinate."""
    if coord.size == 1:
        return np.zeros(values.shape, dtype=np.int64)
    ascending = coord[-1] >= coord[0]
    ordered = coord if ascending else coord[::-1]
    i = np.clip(np.searchsorted(ordered, values), 1, ordered.size - 1)
    left = np.abs(values - ordered[i - 1]) <= np.abs(ordered[i] - values)
    j = np.where(left, i - 1, i)
    return np.asarray(j if ascending else coord.size - 1 - j, dtype=np.int64)


def _iso(t: np.datetime64) -> str:
    return str(np.datetime_as_string(t, unit="s")) + "Z"


@dataclass
class Context:
    """A query's parameters resolved against the dataset: variables, axes, time/z/instance indices."""

    ds: xr.Dataset
    names: list[str]
    axes: GridAxes
    dims: tuple[str, ...]
    roles: dict[str, str]  # dim -> role (t, z, y, x) or "fixed:<index>"
    t_values: np.ndarray | None
    ti: np.ndarray | None
    zi: np.ndarray | None
    reader: Callable[[str], BlockReader]
    max_values: int
    stats: ReadStats = field(default_factory=ReadStats)

    @property
    def nt(self) -> int:
        return 1 if self.ti is None else len(self.ti)

    @property
    def nz(self) -> int:
        return 1 if self.zi is None else len(self.zi)

    def check_size(self, cells: int, *, what: str, per_time: bool = True) -> None:
        total = cells * (self.nt * self.nz if per_time else 1) * len(self.names)
        if total > self.max_values:
            raise ResponseTooLarge(
                f"{what} would answer {total:,} values (about {total * _JSON_BYTES_PER_VALUE / 1e6:,.0f} MB as "
                f"CoverageJSON); the limit is {self.max_values:,} values: narrow the area, the time range "
                f"(datetime), the levels (z) or the parameters (parameter-name)",
                details=[{"loc": "size", "msg": f"{total} values", "values": total, "limit": self.max_values,
                          "estimated_bytes": total * _JSON_BYTES_PER_VALUE}])

    def parameters(self) -> dict[str, ParameterInfo]:
        out = {}
        for name in self.names:
            out[name] = parameter_info(self.ds, name)
        return out

    def axis_values(self, yi: Any, xi: Any) -> dict[str, np.ndarray]:
        axes: dict[str, np.ndarray] = {"x": self.axes.xs[xi], "y": self.axes.ys[yi]}
        if self.ti is not None and self.t_values is not None:
            axes["t"] = self.t_values[self.ti]
        if self.zi is not None and self.axes.zs is not None:
            axes["z"] = self.axes.zs[self.zi]
        return axes

    def _selection(self, by_role: dict[str, Any]) -> tuple[Any, ...]:
        sel: list[Any] = []
        for dim in self.dims:
            role = self.roles[dim]
            if role.startswith("fixed:"):
                sel.append(np.array([int(role[6:])]))
            elif role == "t":
                sel.append(by_role.get("t", self.ti))
            elif role == "z":
                sel.append(by_role.get("z", self.zi))
            else:
                sel.append(by_role[role])
        return tuple(sel)

    def _canonical(self, data: np.ndarray) -> np.ndarray:
        """Drop fixed dimensions and order the rest t, z, y, x."""
        fixed = tuple(i for i, d in enumerate(self.dims) if self.roles[d].startswith("fixed:"))
        data = data.squeeze(axis=fixed) if fixed else data
        kept = [self.roles[d] for d in self.dims if not self.roles[d].startswith("fixed:")]
        order = [kept.index(r) for r in ROLES if r in kept]
        return np.transpose(data, order)

    def _layout(self) -> list[int]:
        """Memory order for grids: t, z, then x before y, the order CoverageJSON writes them in, so the
        encoder needs no transposed copy."""
        rank = {"t": 1, "z": 2, "x": 3, "y": 4}
        return sorted(range(len(self.dims)), key=lambda i: rank.get(self.roles[self.dims[i]], 0))

    def read_grid(self, yi: Any, xi: Any, *, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Arrays (t?, z?, y, x) for the outer product of the selections; masked-out cells are NaN and
        chunks without any selected cell are not read."""
        ranges, pending = self.grid_reads(yi, xi, mask=mask)
        _finish(pending)
        return ranges

    def grid_reads(self, yi: Any, xi: Any, *, mask: np.ndarray | None = None
                   ) -> tuple[dict[str, np.ndarray], PendingReads]:
        """``read_grid`` in two steps: the answer's arrays, allocated now, and what queues the reads that fill
        them, parameter after parameter, telling ``progress`` as leading time steps become final (when t is
        the variable's first dimension; otherwise once, at the end of each parameter)."""
        sel = self._selection({"y": yi, "x": xi})
        plans = []
        for name in self.names:
            reader = self.reader(name)
            keep = None if mask is None else _keep_blocks(reader, self.dims, self.roles, sel, mask)
            out = reader.allocate(sel, layout=self._layout(), fill=None if keep is None else np.nan)
            plans.append((name, reader, keep, out, self._canonical(out)))
        streams = self.roles[self.dims[0]] == "t"

        def fill(progress: Progress | None, reads: Reads) -> None:
            for name, reader, keep, out, data in plans:
                masked = [0]

                def advance(rows: int, name: str = name, data: np.ndarray = data, masked: list[int] = masked) -> None:
                    if mask is not None:
                        np.copyto(data[masked[0]:rows], np.nan, where=~mask)
                        masked[0] = rows
                    if progress is not None:
                        progress(name, rows)

                def at_end(rows: int, out: np.ndarray = out, data: np.ndarray = data,
                           advance: Callable[[int], None] = advance) -> None:
                    if rows == out.shape[0]:  # t is not the variable's first dimension: only the end is final
                        advance(len(data) if data.ndim else 1)

                reader.read(sel, keep=keep, out=out, progress=advance if streams else at_end, stats=self.stats,
                            reads=reads)

        return {name: data for name, _, _, _, data in plans}, fill

    def read_points(self, index: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Pointwise reads: ``index`` maps roles to broadcastable integer arrays."""
        out = {}
        for name in self.names:
            reader = self.reader(name)
            parts = []
            for dim in self.dims:
                role = self.roles[dim]
                parts.append(np.array(int(role[6:])) if role.startswith("fixed:") else index[role])
            out[name] = reader.read_points(parts, stats=self.stats)
        return out


def _keep_blocks(reader: BlockReader, dims: tuple[str, ...], roles: dict[str, str], sel: tuple[Any, ...],
                 mask: np.ndarray) -> Callable[[tuple[int, ...]], bool]:
    """Which chunks hold at least one selected cell of ``mask`` (y, x over the selection)."""
    yd, xd = dims.index(next(d for d in dims if roles[d] == "y")), dims.index(next(d for d in dims if roles[d] == "x"))

    def ids(index: Any, n: int) -> np.ndarray:
        return np.arange(n)[index] if isinstance(index, slice) else np.asarray(index)

    ys, xs = ids(sel[yd], reader.shape[yd]), ids(sel[xd], reader.shape[xd])
    by, bx = ys // reader.chunks[yd], xs // reader.chunks[xd]
    wanted = set()
    rows, cols = np.nonzero(mask)
    for b in np.unique(np.stack([by[rows], bx[cols]], axis=1), axis=0) if rows.size else []:
        wanted.add((int(b[0]), int(b[1])))
    return lambda block: (block[yd], block[xd]) in wanted


class Planner:
    """Resolves the parameters every query shares (parameter names, datetime, z, instance) into a Context."""

    def __init__(self, ds: xr.Dataset, *, reader: Callable[[str], BlockReader], max_values: int,
                 memo: dict[str, GridAxes | None] | None = None) -> None:
        self.ds = ds
        self.reader = reader
        self.max_values = max_values
        # Axes per variable (None: not gridded); shared between the requests on one dataset handle, since
        # finding them reads every coordinate and its attributes.
        self.memo: dict[str, GridAxes | None] = {} if memo is None else memo

    def axes(self, name: str) -> GridAxes | None:
        if name not in self.memo:
            try:
                found: GridAxes | None = axes_of(self.ds, name)
            except Exception:
                found = None
            var = self.ds[name]
            self.memo[name] = found if found is not None and found.x in var.dims and found.y in var.dims else None
        return self.memo[name]

    def gridded(self) -> list[str]:
        return [str(name) for name in self.ds.data_vars if self.axes(str(name)) is not None]

    def context(self, *, parameters: list[str] | None, datetime: TimeFilter | None, z: ZFilter | None,
                instance: str | None = None) -> Context:
        known = self.gridded()
        if not known:
            raise InvalidParameterValue("collection", "this collection has no gridded parameters")
        names = statistics.with_statistics(self.ds, parameters) if parameters else known
        for name in names:
            if name not in known:
                raise InvalidParameterValue("parameter-name", f"unknown parameter {name!r}; this collection has "
                                                              f"{', '.join(known)}")
        dims = tuple(str(d) for d in self.ds[names[0]].dims)
        for name in names[1:]:
            if tuple(str(d) for d in self.ds[name].dims) != dims:
                raise InvalidParameterValue("parameter-name", f"{names[0]!r} and {name!r} lie on different grids "
                                                              "(dimensions); ask for them separately")
        axes = self.axes(names[0])
        assert axes is not None
        roles: dict[str, str] = {axes.x: "x", axes.y: "y"}
        t_dim, t_values = axes.t, axes.ts
        if axes.instance is not None and axes.instances is not None:
            k = self._instance(axes, instance)
            roles[axes.instance] = f"fixed:{k}"
            if t_dim is None and axes.step is not None and axes.steps is not None:
                t_dim = axes.step
                t_values = (axes.instances[k] + axes.steps).astype("datetime64[ns]")
        elif instance is not None:
            raise InvalidParameterValue("instanceId", "this collection has no instances (forecast runs)")
        if t_dim is not None:
            roles[t_dim] = "t"
        if axes.z is not None:
            roles[axes.z] = "z"
        for dim in dims:
            if dim not in roles:
                if self.ds.sizes[dim] != 1:
                    raise InvalidParameterValue("parameter-name", f"dimension {dim!r} of {names[0]!r} is not one "
                                                                  "EDR can select on (x, y, z, t, instance)")
                roles[dim] = "fixed:0"
        ti = self._time(t_values if t_dim is not None else None, datetime)
        zi = self._z(axes, z)
        return Context(ds=self.ds, names=names, axes=axes, dims=dims, roles=roles, t_values=t_values, ti=ti,
                       zi=zi, reader=self.reader, max_values=self.max_values)

    @staticmethod
    def _instance(axes: GridAxes, instance: str | None) -> int:
        assert axes.instances is not None
        ids = [instance_id(v) for v in axes.instances]
        if instance is None:
            return len(ids) - 1
        if instance not in ids:
            raise InvalidParameterValue("instanceId", f"no instance {instance!r}; instances are {', '.join(ids)}")
        return ids.index(instance)

    @staticmethod
    def _time(values: np.ndarray | None, f: TimeFilter | None) -> np.ndarray | None:
        if values is None:
            if f is not None:
                raise InvalidParameterValue("datetime", "this collection has no time axis")
            return None
        if f is None:
            return np.arange(values.size)
        first, last = values.min(), values.max()
        extent = f"{_iso(first)}/{_iso(last)}"
        if f.instant:
            assert f.start is not None
            if f.start < first or f.start > last:
                raise InvalidParameterValue("datetime", f"{f.text} is outside the collection's time extent {extent}")
            return np.array([int(np.argmin(np.abs(values - f.start)))])
        keep = np.ones(values.shape, dtype=bool)
        if f.start is not None:
            keep &= values >= f.start
        if f.end is not None:
            keep &= values <= f.end
        found = np.flatnonzero(keep)
        if found.size == 0:
            raise InvalidParameterValue("datetime", f"no time step in {f.text}; the collection covers {extent}")
        return found

    @staticmethod
    def _z(axes: GridAxes, f: ZFilter | None) -> np.ndarray | None:
        if axes.z is None or axes.zs is None:
            if f is not None:
                raise InvalidParameterValue("z", "this collection has no vertical axis")
            return None
        zs = axes.zs
        if f is None:
            return np.arange(zs.size)
        lo, hi = float(zs.min()), float(zs.max())
        if f.levels is not None:
            out = []
            for level in f.levels:
                if not lo - 1e-9 <= level <= hi + 1e-9:
                    raise InvalidParameterValue("z", f"level {level:g} is outside the vertical extent {lo:g}..{hi:g}")
                out.append(nearest_index(zs, level))
            return np.array(list(dict.fromkeys(out)))
        assert f.lo is not None and f.hi is not None
        found = np.arange(zs.size)[index_range(zs, f.lo, f.hi)]
        if found.size == 0:
            raise InvalidParameterValue("z", f"no level in {f.text}; levels span {lo:g}..{hi:g}")
        return np.sort(found)


def instance_id(value: Any) -> str:
    """A stable, URL-safe id for an instance coordinate value (a forecast run's reference time)."""
    if isinstance(value, np.datetime64):
        return str(np.datetime_as_string(value, unit="s")).replace(":", "").replace("-", "") + "Z"
    return str(value)
