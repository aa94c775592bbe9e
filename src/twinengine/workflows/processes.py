"""The engine's own processes: read datasets the engine knows, keep results, run UDFs, write twin state.

Each is registered with an openEO-style spec; they find their run through ``context.current()``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from twinengine.errors import ProcessParameterInvalid
from twinengine.workflows import formats
from twinengine.workflows.context import current
from twinengine.workflows.extents import cube_extent
from twinengine.workflows.registry import ProcessEntry, ProcessRegistry, standard_processes
from twinengine.workflows.udf import run_udf_process

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["build_registry", "check_reads", "collection_fingerprint", "to_cube"]

_RENAME = {"time": "t", "lat": "y", "latitude": "y", "lon": "x", "longitude": "x", "band": "bands"}
_CUBE = {"type": "object", "subtype": "datacube"}
_BBOX = {"type": "object", "subtype": "bounding-box"}
_INTERVAL = {"type": "array", "subtype": "temporal-interval", "minItems": 2, "maxItems": 2}


def to_cube(ds: xr.Dataset, bands: list[str] | None = None) -> xr.DataArray:
    """A collection as an openEO raster cube: dimensions t, bands, y, x (CF names renamed), CRS attached."""
    names = list(ds.data_vars)
    if bands:
        missing = [b for b in bands if b not in names]
        if missing:
            raise ProcessParameterInvalid(f"bands {missing} are not in the collection (it has {names})")
        names = list(bands)
    ds = ds[names]
    ds = ds.rename({k: v for k, v in _RENAME.items() if k in ds.dims or k in ds.coords})
    cube = ds.to_dataarray(dim="bands")
    order = [d for d in ("t", "bands", "y", "x") if d in cube.dims]
    cube = cube.transpose(*order, *[d for d in cube.dims if d not in order])
    if "x" in cube.dims and "y" in cube.dims:
        import rioxarray  # noqa: F401

        cube = cube.rio.write_crs(ds.attrs.get("crs", "EPSG:4326"))
    return cube


def _between(coord: xr.DataArray, low: Any, high: Any, *, inclusive_high: bool) -> slice:
    values = coord.values
    descending = values.size > 1 and values[0] > values[-1]
    if not inclusive_high and high is not None and np.issubdtype(values.dtype, np.datetime64):
        high = np.datetime64(high) - np.timedelta64(1, "ns")
    return slice(high, low) if descending else slice(low, high)


def _as_time(value: Any) -> np.datetime64 | None:
    if value is None:
        return None
    raw = getattr(value, "root", value)
    if isinstance(raw, datetime):
        raw = raw.replace(tzinfo=None) if raw.tzinfo is None else raw.astimezone().replace(tzinfo=None)
    return np.datetime64(raw if not isinstance(raw, str) else raw.replace("Z", ""), "ns")


def _polygons(extent: dict[str, Any]) -> Any:
    """The one (multi)polygon a GeoJSON ``spatial_extent`` names (``extra_processes.lonlat_polygons``)."""
    import shapely

    from twinengine.workflows.extra_processes import lonlat_polygons

    return shapely.union_all(lonlat_polygons(extent, field="spatial_extent"))


def _within(cube: xr.DataArray, extent: dict[str, Any]) -> xr.DataArray:
    """The cells whose centre lies in the polygons (their bounds selected, the cells between them masked)."""
    import xarray as xr

    from twinengine.access.geometry import polygon_mask

    area = _polygons(extent)
    west, south, east, north = area.bounds
    cube = cube.sel(x=_between(cube["x"], west, east, inclusive_high=True),
                    y=_between(cube["y"], south, north, inclusive_high=True))
    inside = polygon_mask(area, cube["x"].values, cube["y"].values)
    return cube.where(xr.DataArray(inside, dims=("y", "x"), coords={"y": cube["y"], "x": cube["x"]}))


def _filter(cube: xr.DataArray, spatial_extent: Any, temporal_extent: Any) -> xr.DataArray:
    if spatial_extent is not None:
        raw = spatial_extent.model_dump() if hasattr(spatial_extent, "model_dump") else spatial_extent
        if not isinstance(raw, dict):
            raise ProcessParameterInvalid("spatial_extent is a bounding box or GeoJSON")
        if "type" in raw and "west" not in raw:
            cube = _within(cube, raw)
        else:
            west, east, south, north = (raw.get(k) for k in ("west", "east", "south", "north"))
            if None in (west, east, south, north):
                raise ProcessParameterInvalid("spatial_extent needs west, south, east and north, or is GeoJSON")
            if not all(isinstance(v, int | float) and math.isfinite(v) for v in (west, east, south, north)):
                raise ProcessParameterInvalid("spatial_extent: west, south, east and north must be finite numbers")
            cube = cube.sel(x=_between(cube["x"], west, east, inclusive_high=True),
                            y=_between(cube["y"], south, north, inclusive_high=True))
    if temporal_extent is not None and "t" in cube.dims:
        items = getattr(temporal_extent, "root", temporal_extent)
        start, end = _as_time(items[0]), _as_time(items[1])
        cube = cube.sel(t=_between(cube["t"], start, end, inclusive_high=False))
    return cube


def collection_fingerprint(collection_id: str) -> str | None:
    """The collection's version token, or None where its source keeps none (never the text "None")."""
    ctx = current()
    version = getattr(ctx.collections, "version", None)
    found = version(collection_id) if callable(version) else None
    return None if found is None else str(found)


def _may_read(collection_id: str, *, check: bool = True, count: bool = True) -> None:
    """Refuse a collection the run's owner may not read as an unknown one (the lake's datasets follow their
    grants), and count the read as a use (a copy's count is kept: ``lake.terms``)."""
    ctx = current()
    refuse = getattr(ctx.collections, "require_readable", None)
    if check and callable(refuse):
        refuse(collection_id, ctx.principal)
    use = getattr(ctx.collections, "use", None)
    if count and callable(use):
        use(collection_id, ctx.principal)


def load_collection(id: str, spatial_extent: Any = None, temporal_extent: Any = None,
                    bands: list[str] | None = None, properties: Any = None) -> xr.DataArray:
    ctx = current()
    _may_read(id)
    ds = ctx.collections.open(id, near=ctx.near)
    cube = _filter(to_cube(ds, bands), spatial_extent, temporal_extent)
    ctx.inputs.append({"collection": id, "version": collection_fingerprint(id), "node": ctx.node,
                       "shape": {str(k): int(v) for k, v in cube.sizes.items()}})
    ctx.log("info", f"load_collection {id}: {dict(cube.sizes)}")
    return cube


_STAC_COLLECTION = re.compile(r"/collections/([^/?#]+)")


def load_stac(url: str, spatial_extent: Any = None, temporal_extent: Any = None, bands: list[str] | None = None,
              properties: Any = None) -> xr.DataArray:
    """A STAC collection the engine serves (``.../collections/{id}``) or a collection id the engine knows."""
    match = _STAC_COLLECTION.search(url)
    collection_id = match.group(1) if match else url
    ctx = current()
    readable = getattr(ctx.collections, "readable", None)  # one the run's owner may not read is not known to it
    if collection_id not in ctx.collections.ids() or (callable(readable) and not readable(collection_id,
                                                                                          ctx.principal)):
        raise ProcessParameterInvalid(f"url {url!r} is not a STAC collection this engine knows")
    return load_collection(collection_id, spatial_extent, temporal_extent, bands, properties)


def save_result(data: Any, format: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compute ``data`` through the run's executor and keep it in the result store; returns what was kept."""
    import xarray as xr
    ctx = current()
    fmt = formats.find_format(str(format))
    if isinstance(data, xr.DataArray | xr.Dataset):
        (data,) = ctx.compute(data)
    folder = ctx.results.scratch(ctx.run_id)
    stem = hashlib.sha256(f"{ctx.node}-{len(ctx.assets)}".encode()).hexdigest()[:12]
    path = formats.write(data, fmt, folder, stem, limit=ctx.result_room(), budget=ctx.max_result_bytes)
    asset = ctx.results.keep(ctx.run_id, path, name=ctx.asset_name(fmt.extension), media_type=fmt.media_type,
                             fmt=fmt.name)
    extent = cube_extent(data)
    if extent:
        asset = dataclasses.replace(asset, extent=extent)
    ctx.assets.append(asset)
    ctx.log("info", f"save_result: kept {asset.name} ({asset.size} bytes, sha256 {asset.sha256[:12]}…)")
    return {"saved": True, "run": ctx.run_id, "assets": [asset.to_dict()]}


def run_udf(data: Any, udf: str, runtime: str, version: str | None = None, context: Any = None) -> Any:
    import xarray as xr
    ctx = current()
    if runtime.lower() != "python":
        raise ProcessParameterInvalid(f"run_udf: runtime {runtime!r} is not supported (use Python)")
    if isinstance(data, xr.DataArray | xr.Dataset):
        (data,) = ctx.compute(data)
    return run_udf_process(data, udf, context, timeout=ctx.udf_timeout, memory_bytes=ctx.udf_memory_bytes)


def _plain(value: Any) -> Any:
    import xarray as xr
    if isinstance(value, xr.DataArray):
        if value.size != 1:
            raise ProcessParameterInvalid(f"update_twin_state: a value is a cube of shape {value.shape}; reduce "
                                          "it to one number first")
        (value,) = current().compute(value)
        return _plain(value.values.item())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.item() if value.ndim == 0 else value.tolist()
    if hasattr(value, "compute") and hasattr(value, "dask"):  # a dask array
        (value,) = current().compute(value)
        return _plain(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _write(loc: str, value: Any, prop: Any) -> Any:
    """One value for update_twin_state: ``{"value": 2.1, "uncertainty": {"std": 0.3}}`` carries its uncertainty
    to a property that declares it (docs/quality.md); anything else is the value itself."""
    from twinengine.errors import ValidationFailed
    from twinengine.twins.validation import write_of

    try:
        return write_of(loc, _typed(value, prop), prop)
    except ValidationFailed as exc:
        raise ProcessParameterInvalid(f"update_twin_state: {exc.problems[0]}") from None


def _typed(value: Any, prop: Any) -> Any:
    """Logic processes on cubes answer 1.0/0.0 (NaN-able masks); a boolean property takes them as booleans."""
    if prop is not None and prop.type.value == "boolean" and isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    return value


def update_twin_state(reported: dict[str, Any] | None = None, desired: dict[str, Any] | None = None,
                      twin: str | None = None, message: str | None = None) -> int:
    """Write one revision of the run's twin (or ``twin``), as the run's owner; returns the revision."""
    from twinengine.catalog.state_keys import base_of
    from twinengine.quality.pedigree import input_quality, value_quality
    from twinengine.twins import service as twins
    from twinengine.workflows.initial_state import hindcast_from
    from twinengine.workflows.models import WorkflowRun

    ctx = current()
    ref = twin or ctx.twin
    if ref is None:
        raise ProcessParameterInvalid("update_twin_state: this run has no twin; pass twin")
    if ctx.db is None:
        raise ProcessParameterInvalid("update_twin_state: no store in this context")
    with ctx.db.session() as session:
        run = session.get(WorkflowRun, ctx.run_id)
        past = hindcast_from(run.options if run is not None else None)
        if past is not None:  # a hindcast: its forecast is past, the twin's state now is not its to write
            ctx.log("info", f"update_twin_state: not written, the run started from the twin's state as of "
                            f"revision {past.get('revision')} (a hindcast writes no state)")
            return int(past.get("revision") or 0)
        declared = twins.manifest_for(session, twins.get_twin(session, principal=ctx.principal, ref=ref)).state
        rep = {k: _write(f"reported.{k}", _plain(v), declared.get(base_of(k))) for k, v in (reported or {}).items()}
        des = {k: _write(f"desired.{k}", _plain(v), declared.get(base_of(k))) for k, v in (desired or {}).items()}
        row, revision = twins.write_state(session, principal=ctx.principal, ref=ref, reported=rep, desired=des,
                                          message=message or f"workflow run {ctx.run_id}",
                                          quality=value_quality(input_quality(ctx.inputs), ctx.run_id))
    ctx.state_writes.append({"twin": row.id, "revision": revision.revision})
    ctx.note_state(row.id, revision.changes)
    ctx.log("info", f"update_twin_state: twin {row.name} revision {revision.revision}")
    return revision.revision


def _spec(pid: str, summary: str, params: list[tuple[str, Any, bool, str]], returns: Any) -> dict[str, Any]:
    return {"id": pid, "summary": summary, "description": summary, "categories": ["engine"],
            "parameters": [{"name": n, "schema": s, "optional": opt, "description": d} | ({"default": None}
                           if opt else {}) for n, s, opt, d in params],
            "returns": {"description": summary, "schema": returns}}


def _official(pid: str) -> dict[str, Any]:
    """The specification's own description of a process the engine implements itself: clients and the official
    test suite compare it word for word. What the engine serves of it is said where openEO asks: the formats at
    ``/file_formats``, the UDF runtime at ``/udf_runtimes``, the collections at ``/collections``."""
    import copy

    from twinengine.workflows.standard import official_spec

    spec = official_spec(pid)
    if spec is None:
        raise LookupError(f"{pid} is not in the vendored openEO processes specification")
    return copy.deepcopy(spec)


_ANY: dict[str, Any] = {}
ENGINE_SPECS: list[tuple[dict[str, Any], Any, bool]] = [
    (_official("load_collection"), load_collection, True),
    (_spec("load_stac", "Load a STAC collection the engine serves",
           [("url", {"type": "string"}, False, "URL of .../collections/{id}"),
            ("spatial_extent", [_BBOX, {"type": "null"}], True, "bounding box"),
            ("temporal_extent", [_INTERVAL, {"type": "null"}], True, "[start, end)"),
            ("bands", [{"type": "array", "items": {"type": "string"}}, {"type": "null"}], True, "Variables"),
            ("properties", [{"type": "object"}, {"type": "null"}], True, "Ignored")], _CUBE), load_stac, True),
    (_official("save_result"), save_result, True),
    (_official("run_udf"), run_udf, True),
    (_spec("update_twin_state", "Write reported and/or desired values of a twin's state (one revision)",
           [("reported", [{"type": "object"}, {"type": "null"}], True, "Property → value"),
            ("desired", [{"type": "object"}, {"type": "null"}], True, "Property → value"),
            ("twin", [{"type": "string"}, {"type": "null"}], True, "Default: the run's twin"),
            ("message", [{"type": "string"}, {"type": "null"}], True, "Revision message")],
           {"type": "integer"}), update_twin_state, False),
]


def build_registry(apps: Any = None) -> ProcessRegistry:
    """Standard processes (openeo-processes-dask) plus the engine's, which take precedence."""
    from twinengine.workflows.forecast_processes import FORECAST_SPECS
    from twinengine.workflows.fusion_processes import FUSION_SPECS
    from twinengine.workflows.relation_processes import RELATION_SPECS
    from twinengine.workflows.stream_processes import STREAM_SPECS

    registry = ProcessRegistry(standard_processes(), apps=apps)
    for spec, func, cacheable in [*ENGINE_SPECS, *STREAM_SPECS, *FUSION_SPECS, *FORECAST_SPECS, *RELATION_SPECS]:
        registry.register(spec, func, cacheable=cacheable)
    return registry


_LOADS = ("load_collection", "load_stac")


def _named(value: Any, scope: dict[str, Any]) -> Any:
    """``value`` with a ``from_parameter`` replaced by ``scope``'s value (a missing one stays a reference)."""
    if isinstance(value, dict) and isinstance(value.get("from_parameter"), str) and value["from_parameter"] in scope:
        return scope[value["from_parameter"]]
    return value


def _loads_in(body: Any, scope: dict[str, Any]) -> list[str] | None:
    """The collections the ``load_collection``/``load_stac`` nodes anywhere in ``body`` (callbacks included)
    read, their ids taken from ``scope`` where a parameter gives them; None when one cannot be named."""
    found: list[str] = []
    stack: list[Any] = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("process_id") in _LOADS and item.get("namespace") is None:
                arguments = item.get("arguments") or {}
                ref = _named(arguments.get("id", arguments.get("url")), scope)
                if not isinstance(ref, str):
                    return None
                match = _STAC_COLLECTION.search(ref) if item["process_id"] == "load_stac" else None
                found.append(match.group(1) if match else ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def check_reads(nodes: list[tuple[ProcessEntry, Any]], parameters: dict[str, Any], *, count: bool) -> bool:
    """The collections ``nodes`` (each an entry and its node) read, as if each were loaded now: ``count``
    False, checked for the run's owner (before the run reads its cache: a result cached by one user is no way
    around another's grants, a revoked grant or a copy's terms); True, counted as uses (those a cache hit
    left out). False when one cannot be named (a user-defined process given it by another node): the run
    then reads nothing from its cache."""
    names: list[str] = []
    for entry, node in nodes:
        body = {"process_id": node.process_id, "namespace": node.namespace, "arguments": node.arguments}
        found = _loads_in(body, parameters)
        if found is not None and entry.process is not None:  # a user-defined process: the loads of its graph
            scope = {str(p.get("name")): p.get("default") for p in entry.process.get("parameters") or []
                     if isinstance(p, dict) and "default" in p}
            scope.update({k: _named(v, parameters) for k, v in node.arguments.items()})
            inner = _loads_in(entry.process.get("process_graph"), scope)
            found = None if inner is None else found + inner
        if found is None:
            return False
        names.extend(found)
    for name in dict.fromkeys(names):
        _may_read(name, check=not count, count=count)
    return True


def fingerprint(entry: ProcessEntry, arguments: dict[str, Any]) -> str | None:
    """What else a node's result depends on: the version of the collection it loads."""
    if entry.namespace is None and entry.id in ("load_collection", "load_stac"):
        ref = arguments.get("id", arguments.get("url"))
        if isinstance(ref, str):
            match = _STAC_COLLECTION.search(ref)
            return collection_fingerprint(match.group(1) if match else ref)
    return None
