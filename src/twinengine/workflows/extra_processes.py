"""Standard openEO processes openeo-processes-dask lacks (``e``, ``climatological_normal``, ``anomaly``,
``apply_neighborhood``) or implements in a way the engine cannot run (``aggregate_spatial``), written on
xarray, xvec and shapely and staying lazy on Dask."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from twinengine.errors import ProcessParameterInvalid
from twinengine.workflows import dates

__all__ = ["IMPLEMENTATIONS", "anomaly", "apply_neighborhood", "climatological_normal", "e", "lonlat_polygons",
           "period_labels"]


def e() -> float:
    return math.e


def _time_dim(data: xr.DataArray) -> str:
    for name in ("t", "time"):
        if name in data.dims:
            return name
    raise ProcessParameterInvalid(f"data has no temporal dimension (it has {list(data.dims)})")


_SEASON = {12: "djf", 1: "djf", 2: "djf", 3: "mam", 4: "mam", 5: "mam", 6: "jja", 7: "jja", 8: "jja",
           9: "son", 10: "son", 11: "son"}


def period_labels(times: Any, period: str) -> np.ndarray:
    """The label of each timestamp within a period, as the specification names them (``01``, ``djf``...)."""
    index = xr.DataArray(np.asarray(times, dtype="datetime64[ns]")).to_index()
    if period == "hour":
        labels = [f"{t.hour:02d}" for t in index]
    elif period == "day":
        labels = [f"{min(t.dayofyear, 365):03d}" for t in index]
    elif period == "week":
        labels = [f"{t.isocalendar()[1]:02d}" for t in index]
    elif period == "dekad":
        labels = [f"{(t.month - 1) * 3 + (0 if t.day <= 10 else 1 if t.day <= 20 else 2) + 1:02d}" for t in index]
    elif period == "month":
        labels = [f"{t.month:02d}" for t in index]
    elif period == "season":
        labels = [_SEASON[t.month] for t in index]
    elif period == "tropical-season":
        labels = ["ndjfma" if t.month in (11, 12, 1, 2, 3, 4) else "mjjaso" for t in index]
    elif period == "year":
        labels = [f"{t.year:04d}" for t in index]
    elif period == "decade":
        labels = [f"{t.year - t.year % 10:04d}" for t in index]
    elif period == "decade-ad":
        labels = [f"{t.year - (t.year - 1) % 10:04d}" for t in index]
    elif period in ("climatology-period", "single-period"):
        labels = [period] * len(index)
    else:
        raise ProcessParameterInvalid(f"period {period!r} is not one the specification defines")
    return np.asarray(labels)


def climatological_normal(data: xr.DataArray, period: str, climatology_period: Any = None) -> xr.DataArray:
    """The mean of each period (month, season...) over the years of the climatology period."""
    dim = _time_dim(data)
    years = [int(str(getattr(y, "root", y))[:4]) for y in (climatology_period or [1981, 2010])]
    if len(years) != 2 or years[0] > years[1]:
        raise ProcessParameterInvalid("climatology_period must be [first year, last year]")
    start, end = np.datetime64(f"{years[0]:04d}-01-01"), np.datetime64(f"{years[1] + 1:04d}-01-01")
    times = data[dim].values
    within = data.isel({dim: np.flatnonzero((times >= start) & (times < end))})
    if within.sizes[dim] == 0:
        raise ProcessParameterInvalid(f"data has no values within the climatology period {years[0]}-{years[1]}")
    labels = xr.DataArray(period_labels(within[dim].values, period), dims=[dim])
    normals = within.groupby(labels.rename("period")).mean(dim=dim, skipna=True)
    normals = normals.rename({"period": dim})
    order = [d for d in data.dims if d in normals.dims]
    return normals.transpose(*order).assign_attrs(data.attrs)


def anomaly(data: xr.DataArray, normals: xr.DataArray, period: str) -> xr.DataArray:
    """Each value minus the normal of its period; the data keeps its own temporal labels."""
    dim, ndim = _time_dim(data), _time_dim(normals)
    labels = period_labels(data[dim].values, period)
    known = [str(v) for v in normals[ndim].values]
    missing = sorted(set(labels.tolist()) - set(known))
    if missing:
        raise ProcessParameterInvalid(f"normals have no label for the periods {missing[:5]} of the data")
    matched = normals.sel({ndim: xr.DataArray(labels, dims=[dim])}).drop_vars(ndim, errors="ignore")
    matched = matched.assign_coords({dim: data[dim]})
    return (data - matched).transpose(*data.dims).assign_attrs(data.attrs)


def _pixels(items: Any, data: xr.DataArray, what: str) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for raw in items or []:
        item = raw.model_dump() if hasattr(raw, "model_dump") else raw
        if not isinstance(item, dict) or "dimension" not in item:
            raise ProcessParameterInvalid(f"{what}: each entry needs dimension and value")
        dim, value, unit = str(item["dimension"]), item.get("value"), item.get("unit") or "px"
        if dim not in data.dims:
            raise ProcessParameterInvalid(f"{what}: the cube has no dimension {dim!r} (it has {list(data.dims)})")
        if value is None:
            out[dim] = None
            continue
        if unit != "px" or not isinstance(value, int | float) or value < 0 or int(value) != value:
            raise ProcessParameterInvalid(f"{what}: only whole pixel counts (unit px) or null are supported "
                                          f"({dim}: {value} {unit})")
        out[dim] = int(value)
    return out


def apply_neighborhood(data: xr.DataArray, process: Callable[..., Any], size: Any, overlap: Any = None,
                       context: Any = None) -> xr.DataArray:
    """Run ``process`` on windows of ``size`` (plus ``overlap``, filled with no-data at the borders) and
    keep each window's core; the windows tile the cube."""
    sizes = _pixels(size, data, "size")
    margins = {d: v or 0 for d, v in _pixels(overlap, data, "overlap").items()}
    steps = {d: (v if v else data.sizes[d]) for d, v in sizes.items()}
    padded = data.pad({d: (m, m) for d, m in margins.items() if m}, mode="constant", constant_values=np.nan) \
        if any(margins.values()) else data
    dims = list(steps)
    starts = [range(0, data.sizes[d], steps[d]) for d in dims]
    tiles: list[xr.DataArray] = []
    for corner in np.array(np.meshgrid(*starts, indexing="ij")).reshape(len(dims), -1).T:
        window = {d: slice(int(c), int(c) + steps[d] + 2 * margins.get(d, 0))
                  for d, c in zip(dims, corner, strict=True)}
        result = process(padded.isel(window), positional_parameters={"data": 0},
                         named_parameters={"context": context})
        if not isinstance(result, xr.DataArray):
            raise ProcessParameterInvalid("apply_neighborhood: the process must return a data cube")
        core = {d: slice(margins.get(d, 0), result.sizes[d] - margins.get(d, 0)) for d in dims if d in result.dims}
        tiles.append(result.isel(core))
    for dim in reversed(dims):  # stitch the tiles back together, one dimension at a time
        groups: dict[tuple[Any, ...], list[xr.DataArray]] = {}
        for tile in tiles:
            key = tuple(tile[d].values[0] for d in dims if d != dim and d in tile.dims)
            groups.setdefault(key, []).append(tile)
        tiles = [xr.concat(group, dim=dim) for group in groups.values()]
    (out,) = tiles
    return out.transpose(*data.dims).assign_attrs(data.attrs)


def geojson_shapes(geometries: Any, *, field: str = "geometries") -> tuple[list[Any], str]:
    """GeoJSON (geometry, feature or collection; a CRS member as in the library) → shapely shapes and CRS;
    refusals name ``field``, the parameter it came in."""
    import shapely.geometry

    value = geometries.model_dump() if hasattr(geometries, "model_dump") else geometries
    if not isinstance(value, dict) or "type" not in value:
        raise ProcessParameterInvalid(f"{field} must be GeoJSON (a geometry, a feature or a feature collection)")
    crs = "EPSG:4326"
    named = (value.get("crs") or {}).get("properties", {}).get("name") if isinstance(value.get("crs"), dict) else None
    crs = str(named or crs)
    if value["type"] == "FeatureCollection":
        items = [f.get("geometry") for f in value.get("features") or []]
    elif value["type"] == "Feature":
        items = [value.get("geometry")]
    elif value["type"] == "GeometryCollection":
        items = list(value.get("geometries") or [])
    else:
        items = [value]
    try:
        shapes = [shapely.geometry.shape(item) for item in items if item]
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        raise ProcessParameterInvalid(f"{field}: not valid GeoJSON ({exc})") from None
    if not shapes:
        raise ProcessParameterInvalid(f"{field}: no geometry given")
    return shapes, crs


_LONLAT = ("EPSG:4326", "OGC:CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84")


def lonlat_polygons(value: Any, *, field: str) -> list[Any]:
    """The (multi)polygons GeoJSON in longitude and latitude names (a Polygon or MultiPolygon, a Feature with
    one, or a FeatureCollection of such Features), empty ones left out, as openEO's ``load_collection`` and
    ``apply_polygon`` say; each refusal names ``field``."""
    import shapely

    shapes, crs = geojson_shapes(value, field=field)
    if crs.upper() not in _LONLAT:
        raise ProcessParameterInvalid(f"{field}: coordinates in {crs} are not served; send longitude, latitude")
    polygons = []
    for polygon in shapes:
        if polygon.geom_type not in ("Polygon", "MultiPolygon"):
            raise ProcessParameterInvalid(f"{field}: a GeoJSON extent is a Polygon or MultiPolygon, a Feature with "
                                          "one, or a FeatureCollection of such Features")
        if polygon.is_empty:
            continue
        if not polygon.is_valid:
            raise ProcessParameterInvalid(f"{field}: the polygon is not valid: {shapely.is_valid_reason(polygon)}")
        polygons.append(polygon)
    if not polygons:
        raise ProcessParameterInvalid(f"{field}: the GeoJSON holds no polygon that is not empty")
    return polygons


def aggregate_spatial(data: xr.DataArray, geometries: Any, reducer: Callable[..., Any],
                      target_dimension: str | None = None, context: Any = None) -> xr.DataArray:
    """The reducer over the pixels in each geometry (xvec's zonal statistics), one geometry after the other
    in the engine: the reducer runs here on lazy arrays, so the graph it builds holds only Dask and numpy
    functions and computes on any executor. (The library hands the reducer to joblib worker processes,
    which cannot pickle a process graph's callback.)"""
    import geopandas as gpd  # type: ignore[import-untyped]

    shapes, crs = geojson_shapes(geometries)
    x_dim, y_dim = data.openeo.x_dim, data.openeo.y_dim
    frame = gpd.GeoSeries(shapes, crs=crs)
    if data.rio.crs is not None:
        frame = frame.to_crs(data.rio.crs)

    def reduce(values: Any, axis: Any = None, **_: Any) -> Any:
        return reducer(values, axis=axis, positional_parameters={"data": 0},
                       named_parameters={"context": context})

    zonal: xr.DataArray = data.xvec.zonal_stats(list(frame.values), x_coords=x_dim, y_coords=y_dim,
                                                method="iterate", stats=reduce, n_jobs=1)
    return zonal


def apply_polygon(data: xr.DataArray, geometries: Any, process: Callable[..., Any], mask_value: Any = None,
                  context: Any = None) -> xr.DataArray:
    """``process`` on each polygon's sub cube (the cells whose centre lies in it, the others of its bounding box
    no-data), its answer kept on those cells; cells in no polygon are ``mask_value`` (null: no-data). A cell in
    two polygons is refused (the specification's ``GeometriesOverlap``). The library's version applied the
    process to each pixel of the union of the polygons, so a process over the sub cube (its mean, a window)
    saw one pixel at a time, and it named the parameter ``polygons``."""
    from twinengine.access.geometry import polygon_mask

    if not {"x", "y"} <= set(data.dims):
        raise ProcessParameterInvalid(f"data has no spatial dimensions x and y (it has {list(data.dims)})")
    xs, ys = data["x"].values, data["y"].values
    masks = [polygon_mask(shape, xs, ys) for shape in lonlat_polygons(geometries, field="geometries")]
    if (np.sum(masks, axis=0) > 1).any():
        raise ProcessParameterInvalid("geometries: GeometriesOverlap: geometries are not allowed to overlap, so that "
                                      "no pixel is processed twice")
    fill = np.nan if mask_value is None else mask_value
    out = xr.full_like(data, fill, dtype=np.result_type(data.dtype, np.asarray(fill).dtype))
    for mask in masks:
        rows, cols = np.nonzero(mask)
        if rows.size == 0:
            continue  # a polygon between the cell centres holds no pixel
        window = {"y": slice(int(rows.min()), int(rows.max()) + 1), "x": slice(int(cols.min()), int(cols.max()) + 1)}
        inside = xr.DataArray(mask[window["y"], window["x"]], dims=("y", "x"),
                              coords={"y": data["y"][window["y"]], "x": data["x"][window["x"]]})
        sub = data.isel(window)
        result = process(sub.where(inside), positional_parameters={"data": 0}, named_parameters={"context": context})
        if not isinstance(result, xr.DataArray) or dict(result.sizes) != dict(sub.sizes):
            raise ProcessParameterInvalid("apply_polygon: the process must return a data cube of its input's "
                                          "dimensions and sizes")
        keep = xr.DataArray(mask, dims=("y", "x"), coords={"y": data["y"], "x": data["x"]})
        out = result.reindex_like(data).where(keep, out)
    answer: xr.DataArray = out.transpose(*data.dims).assign_attrs(data.attrs)
    return answer


IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {
    "aggregate_spatial": aggregate_spatial, "e": e, "climatological_normal": climatological_normal, "anomaly": anomaly,
    "apply_neighborhood": apply_neighborhood, "date_shift": dates.date_shift, "date_between": dates.date_between,
    "apply_polygon": apply_polygon,
}
