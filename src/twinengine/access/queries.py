"""The EDR query types over a resolved ``Context``: position, radius, area, cube, trajectory, corridor."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from twinengine.access.extract import Context, Coverage, Extraction, nearest_indices
from twinengine.access.geometry import circle_bounds, corridor_mask, polygon_mask, radius_mask, sample_path
from twinengine.access.grid import index_range
from twinengine.errors import InvalidParameterValue

__all__ = ["area", "corridor", "cube", "position", "radius", "trajectory"]


def _x_window(ctx: Context, minx: float, maxx: float, field: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the longitudes in [minx, maxx] (across the dataset's seam if need be), in the query's
    order, and those longitudes in the query's convention."""
    xs = ctx.axes.xs
    if maxx - minx >= 360.0:
        offset = np.mod(xs - minx, 360.0)
    else:
        offset = np.mod(xs - minx, 360.0)
        offset = np.where(offset <= (maxx - minx) + 1e-9, offset, np.nan)
    found = np.flatnonzero(~np.isnan(offset))
    if found.size == 0:
        raise InvalidParameterValue(field, f"no grid column between longitudes {minx:g} and {maxx:g} (grid spacing "
                                           f"{ctx.axes.dx:g}°)")
    order = found[np.argsort(offset[found], kind="stable")]
    return order, minx + offset[order]


def _y_window(ctx: Context, miny: float, maxy: float, field: str) -> slice:
    yi = index_range(ctx.axes.ys, miny, maxy)
    if yi.stop <= yi.start:
        raise InvalidParameterValue(field, f"no grid row between latitudes {miny:g} and {maxy:g} (grid spacing "
                                           f"{ctx.axes.dy:g}°)")
    return yi


def _extent(ctx: Context) -> tuple[float, float, float, float, bool]:
    """The grid's cell-edge extent (x in the dataset's convention) and whether it wraps around the globe."""
    xs, ys, dx, dy = ctx.axes.xs, ctx.axes.ys, ctx.axes.dx, ctx.axes.dy
    x0, x1 = float(np.nanmin(xs)) - dx / 2, float(np.nanmax(xs)) + dx / 2
    return x0, float(np.nanmin(ys)) - dy / 2, x1, float(np.nanmax(ys)) + dy / 2, x1 - x0 >= 360.0 - 1e-9


def _outside(ctx: Context, what: str) -> InvalidParameterValue:
    x0, y0, x1, y1, _ = _extent(ctx)
    if ctx.axes.lon_360:
        x0, x1 = (x0 - 360.0 if x0 > 180.0 else x0), (x1 - 360.0 if x1 > 180.0 else x1)
    return InvalidParameterValue("coords", f"{what} is outside the collection's extent (longitude {x0:g}..{x1:g}, "
                                           f"latitude {y0:g}..{y1:g}, cell edges)")


def _check_points(ctx: Context, coords: np.ndarray) -> None:
    """A point farther than half a cell beyond the grid has no nearest cell worth answering with."""
    x0, y0, x1, y1, global_x = _extent(ctx)
    for (rx, qy), qx in zip(coords[:, :2], ctx.axes.wrap_x(coords[:, 0]), strict=True):
        inside_x = global_x or any(x0 - 1e-9 <= v <= x1 + 1e-9 for v in (qx, qx - 360.0, qx + 360.0))
        if not (inside_x and y0 - 1e-9 <= qy <= y1 + 1e-9):
            raise _outside(ctx, f"POINT({rx:g} {qy:g})")


def _check_box(ctx: Context, minx: float, miny: float, maxx: float, maxy: float, what: str) -> None:
    """A query box that misses the grid's extent altogether is the caller's mistake, said as such."""
    x0, y0, x1, y1, global_x = _extent(ctx)
    qx0 = float(ctx.axes.wrap_x(minx))
    width = maxx - minx
    meets_x = global_x or width >= 360.0 or (x0 - qx0) % 360.0 <= width + 1e-9 or (qx0 - x0) % 360.0 <= x1 - x0
    if not (meets_x and miny <= y1 + 1e-9 and maxy >= y0 - 1e-9):
        raise _outside(ctx, f"the {what}")


def _grid(ctx: Context, minx: float, miny: float, maxx: float, maxy: float, *, field: str, what: str,
          mask_of: Any = None) -> Extraction:
    xi, xq = _x_window(ctx, minx, maxx, field)
    yi = _y_window(ctx, miny, maxy, field)
    ys = ctx.axes.ys[yi]
    mask = None if mask_of is None else mask_of(xq, ys)
    if mask is not None and not mask.any():
        raise InvalidParameterValue(field, f"the {what} contains no grid cell centre (grid spacing "
                                           f"{ctx.axes.dx:g}° x {ctx.axes.dy:g}°)")
    ctx.check_size(len(xi) * len(ys), what=f"this {what}")
    ranges, pending = ctx.grid_reads(yi, _as_index(xi), mask=mask)
    axes = ctx.axis_values(yi, xi)
    axes["x"] = xq
    names = tuple(r for r in ("t", "z", "y", "x") if r in axes)
    return Extraction([Coverage("Grid", axes, names, ranges)], ctx.parameters(), "Grid", stats=ctx.stats,
                      pending=pending)


def _as_index(index: np.ndarray) -> np.ndarray | slice:
    if index.size and int(index[-1]) - int(index[0]) == index.size - 1:
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


def cube(ctx: Context, bbox: tuple[float, ...]) -> Extraction:
    return _grid(ctx, bbox[0], bbox[1], bbox[2], bbox[3], field="bbox", what="cube")


def area(ctx: Context, polygon: BaseGeometry) -> Extraction:
    minx, miny, maxx, maxy = polygon.bounds
    _check_box(ctx, minx, miny, maxx, maxy, "polygon")
    return _grid(ctx, minx, miny, maxx, maxy, field="coords", what="polygon",
                 mask_of=lambda xs, ys: polygon_mask(polygon, xs, ys))


def radius(ctx: Context, centres: BaseGeometry, within_km: float) -> Extraction:
    points = shapely.get_coordinates(centres)
    boxes = np.array([circle_bounds(float(x), float(y), within_km) for x, y in points])
    minx, miny = boxes[:, 0].min(), boxes[:, 1].min()
    maxx, maxy = boxes[:, 2].max(), boxes[:, 3].max()
    _check_box(ctx, float(minx), float(miny), float(maxx), float(maxy), "radius")
    return _grid(ctx, float(minx), float(miny), float(maxx), float(maxy), field="within", what="radius",
                 mask_of=lambda xs, ys: radius_mask(points, within_km, xs, ys))


def _profile_or_series(ctx: Context, axes: dict[str, np.ndarray], ranges: dict[str, np.ndarray]) -> list[Coverage]:
    """One point's values (t?, z?) as Point, PointSeries, VerticalProfile, or VerticalProfiles per time."""
    nt, nz = len(axes.get("t", [0])), len(axes.get("z", [0]))
    if nz > 1 and nt > 1:
        return [Coverage("VerticalProfile", {**axes, "t": axes["t"][k:k + 1]}, ("z",),
                         {n: v[k] for n, v in ranges.items()}) for k in range(nt)]
    flat = {n: v.reshape(-1) for n, v in ranges.items()}
    if nz > 1:
        return [Coverage("VerticalProfile", axes, ("z",), flat)]
    if "t" in axes and nt > 1:
        return [Coverage("PointSeries", axes, ("t",), flat)]
    return [Coverage("Point", axes, (), flat)]


def position(ctx: Context, points: BaseGeometry, *, method: str = "nearest") -> Extraction:
    coords = shapely.get_coordinates(points)
    _check_points(ctx, coords)
    xs_q = ctx.axes.wrap_x(coords[:, 0])
    ys_q = coords[:, 1]
    ctx.check_size(len(coords), what="this position query")
    per_point: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = []
    cells: list[tuple[int, int]] = []  # (row, column) of every cell a value comes from
    for qx, qy, rx in zip(xs_q, ys_q, coords[:, 0], strict=True):
        if method == "nearest":
            i = int(nearest_indices(ctx.axes.xs, np.array([qx]))[0])
            j = int(nearest_indices(ctx.axes.ys, np.array([qy]))[0])
            ranges = {n: v[..., 0, 0] for n, v in ctx.read_grid(np.array([j]), np.array([i])).items()}
            axes = ctx.axis_values(np.array([j]), np.array([i]))
            cells.append((j, i))
        else:
            ranges, around = _bilinear(ctx, float(qx), float(qy))
            axes = ctx.axis_values(np.array([0]), np.array([0]))
            axes["x"], axes["y"] = np.array([rx]), np.array([qy])
            cells += around
        per_point.append((axes, ranges))
    params = ctx.parameters()
    rows, columns = (np.array(index, dtype=int) for index in zip(*cells, strict=True))
    sources = np.column_stack([ctx.axes.xs[columns], ctx.axes.ys[rows]])
    if len(per_point) == 1:
        coverages = _profile_or_series(ctx, *per_point[0])
        return Extraction(coverages, params, coverages[0].domain_type, collection=len(coverages) > 1,
                          stats=ctx.stats, sources=sources)
    if ctx.nz > 1:  # several points with profiles: one coverage per point (and time)
        coverages = [c for axes, ranges in per_point for c in _profile_or_series(ctx, axes, ranges)]
        return Extraction(coverages, params, coverages[0].domain_type, collection=True, stats=ctx.stats,
                          sources=sources)
    # MultiPoint(Series): a composite (x, y) axis, one column per distinct location
    seen: dict[tuple[float, float], int] = {}
    for k, (axes, _) in enumerate(per_point):
        seen.setdefault((float(axes["x"][0]), float(axes["y"][0])), k)
    keep = list(seen.values())
    composite = {"x": np.array([per_point[k][0]["x"][0] for k in keep]),
                 "y": np.array([per_point[k][0]["y"][0] for k in keep])}
    first = per_point[0][0]
    shared: dict[str, np.ndarray] = {r: first[r] for r in ("t", "z") if r in first}
    stacked = {n: np.stack([per_point[k][1][n].reshape(-1) for k in keep], axis=-1) for n in ctx.names}
    if "t" in shared and len(shared["t"]) > 1:
        cov = Coverage("MultiPointSeries", shared, ("t", "composite"), stacked, composite=composite)
    else:
        cov = Coverage("MultiPoint", shared, ("composite",), {n: v.reshape(-1) for n, v in stacked.items()},
                       composite=composite)
    return Extraction([cov], params, cov.domain_type, stats=ctx.stats, sources=sources)


def _bilinear(ctx: Context, qx: float, qy: float) -> tuple[dict[str, np.ndarray], list[tuple[int, int]]]:
    """Bilinear interpolation between the four grid points around (qx, qy) (NaN if any of them is), and those
    points' (row, column)."""
    def bracket(coord: np.ndarray, value: float, field: str) -> tuple[int, int, float]:
        lo_c, hi_c = float(coord.min()), float(coord.max())
        if not lo_c <= value <= hi_c:
            raise InvalidParameterValue("coords", f"{field} {value:g} is outside the grid ({lo_c:g}..{hi_c:g}); "
                                                  "interpolation needs grid points on both sides")
        ascending = coord[-1] >= coord[0]
        ordered = coord if ascending else coord[::-1]
        k = int(np.clip(np.searchsorted(ordered, value), 1, ordered.size - 1)) if ordered.size > 1 else 0
        a, b = (k - 1, k) if ordered.size > 1 else (0, 0)
        w = 0.0 if ordered[b] == ordered[a] else (value - ordered[a]) / (ordered[b] - ordered[a])
        if not ascending:
            a, b = coord.size - 1 - a, coord.size - 1 - b
        return a, b, float(w)

    i0, i1, wx = bracket(ctx.axes.xs, qx, "longitude")
    j0, j1, wy = bracket(ctx.axes.ys, qy, "latitude")
    out = {}
    for name, v in ctx.read_grid(np.array(sorted({j0, j1})), np.array(sorted({i0, i1}))).items():
        jj = [0, 0] if j0 == j1 else ([0, 1] if j0 < j1 else [1, 0])
        ii = [0, 0] if i0 == i1 else ([0, 1] if i0 < i1 else [1, 0])
        top = v[..., jj[0], ii[0]] * (1 - wx) + v[..., jj[0], ii[1]] * wx
        bottom = v[..., jj[1], ii[0]] * (1 - wx) + v[..., jj[1], ii[1]] * wx
        out[name] = top * (1 - wy) + bottom * wy
    return out, [(j, i) for j in {j0, j1} for i in {i0, i1}]


def _line(line: BaseGeometry) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    xy = shapely.get_coordinates(line)
    z = shapely.get_coordinates(line, include_z=True)[:, 2] if shapely.has_z(line) else None
    m = shapely.get_coordinates(line, include_m=True)[:, -1] if shapely.has_m(line) else None
    return xy, z, m


def _m_times(ctx: Context, m: np.ndarray) -> np.ndarray:
    if ctx.t_values is None:
        raise InvalidParameterValue("coords", "the line has M (time) values but this collection has no time axis")
    times = (np.asarray(m, dtype="float64") * 1e9).astype("int64").astype("datetime64[ns]")
    first, last = ctx.t_values.min(), ctx.t_values.max()
    if times.min() < first or times.max() > last:
        raise InvalidParameterValue("coords", "M values (Unix seconds) fall outside the collection's time extent "
                                              f"{np.datetime_as_string(first, unit='s')}Z/"
                                              f"{np.datetime_as_string(last, unit='s')}Z")
    return times


def trajectory(ctx: Context, line: BaseGeometry) -> Extraction:
    """Values along the path, sampled at half the grid spacing, one entry per distinct grid cell (and time
    and level) visited. With M, time follows the path; without, one trajectory per selected time."""
    xy, z, m = _line(line)
    samples, where = sample_path(xy, min(ctx.axes.dx, ctx.axes.dy) / 2.0)
    xi = nearest_indices(ctx.axes.xs, ctx.axes.wrap_x(samples[:, 0]))
    yi = nearest_indices(ctx.axes.ys, samples[:, 1])
    columns = [yi, xi]
    if m is not None:
        times = _m_times(ctx, np.interp(where, np.arange(len(m)), m))
        assert ctx.t_values is not None
        columns.append(nearest_indices(ctx.t_values.astype("int64"), times.astype("int64")))
    if z is not None:
        if ctx.axes.zs is None:
            raise InvalidParameterValue("coords", "the line has Z values but this collection has no vertical axis")
        columns.append(nearest_indices(ctx.axes.zs, np.interp(where, np.arange(len(z)), z)))
    elif ctx.nz > 1:
        raise InvalidParameterValue("z", "a trajectory follows one level: give a single z, or a LINESTRINGZ")
    table = np.stack(columns, axis=1)
    _, first = np.unique(table, axis=0, return_index=True)
    table = table[np.sort(first)]
    yi, xi = table[:, 0], table[:, 1]
    n = len(table)
    ctx.check_size(n, what="this trajectory", per_time=m is None)
    index: dict[str, np.ndarray] = {"y": yi, "x": xi}
    composite_base = {"x": ctx.axes.xs[xi], "y": ctx.axes.ys[yi]}
    sources = np.column_stack([composite_base["x"], composite_base["y"]])
    if z is not None:
        zi = table[:, -1]
        index["z"] = zi
        assert ctx.axes.zs is not None
        composite_base["z"] = ctx.axes.zs[zi]
    elif ctx.zi is not None:
        index["z"] = np.full(n, ctx.zi[0])
        assert ctx.axes.zs is not None
        composite_base["z"] = np.full(n, ctx.axes.zs[ctx.zi[0]])
    params = ctx.parameters()
    if m is not None or ctx.t_values is None:
        if m is not None:
            assert ctx.t_values is not None
            index["t"] = table[:, 2]
            times = ctx.t_values[table[:, 2]]
        else:
            times = np.full(n, np.datetime64("NaT"))
        ranges = ctx.read_points(index)
        return Extraction([_trajectory(times, composite_base, ranges)], params, "Trajectory", stats=ctx.stats,
                          sources=sources)
    assert ctx.ti is not None
    index = {k: v[None, :] for k, v in index.items()}
    index["t"] = ctx.ti[:, None]
    ranges = ctx.read_points(index)
    coverages = [_trajectory(np.full(n, ctx.t_values[t]), composite_base, {k: v[row] for k, v in ranges.items()})
                 for row, t in enumerate(ctx.ti)]
    return Extraction(coverages, params, "Trajectory", collection=len(coverages) > 1, stats=ctx.stats,
                      sources=sources)


def _trajectory(times: np.ndarray, base: dict[str, np.ndarray], ranges: dict[str, np.ndarray]) -> Coverage:
    composite = {"t": times, **base}
    return Coverage("Trajectory", {}, ("composite",), ranges, composite=composite)


def corridor(ctx: Context, line: BaseGeometry, width_km: float, height: float | None) -> Extraction:
    """Cells within width/2 of the path (and, with Z and a height, levels within height/2 of it), masked on
    the path's bounding grid; with M, the times the path spans."""
    xy, z, m = _line(line)
    if m is not None:
        times = _m_times(ctx, m)
        assert ctx.t_values is not None
        inside = np.flatnonzero((ctx.t_values >= times.min()) & (ctx.t_values <= times.max()))
        ctx.ti = inside if inside.size else np.array([int(np.argmin(np.abs(ctx.t_values - times.min())))])
    if height is not None:
        if z is None or ctx.axes.zs is None:
            raise InvalidParameterValue("corridor-height", "needs a LINESTRINGZ and a collection with levels")
        found = np.flatnonzero((ctx.axes.zs >= z.min() - height / 2) & (ctx.axes.zs <= z.max() + height / 2))
        if found.size == 0:
            raise InvalidParameterValue("corridor-height", "no level lies within the corridor's height")
        ctx.zi = found
    half_deg = width_km / 2.0 / 111.19
    coslat = max(np.cos(np.radians(min(89.0, float(np.abs(xy[:, 1]).max()) + half_deg))), 1e-3)
    minx, maxx = xy[:, 0].min() - half_deg / coslat, xy[:, 0].max() + half_deg / coslat
    miny, maxy = max(-90.0, xy[:, 1].min() - half_deg), min(90.0, xy[:, 1].max() + half_deg)
    return _grid(ctx, float(minx), float(miny), float(maxx), float(maxy), field="corridor-width", what="corridor",
                 mask_of=lambda xs, ys: corridor_mask(xy, width_km, xs, ys))
