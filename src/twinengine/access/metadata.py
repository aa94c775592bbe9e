"""EDR metadata documents: landing page, conformance, collections and their extents and data queries."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from twinengine.access.covjson import MEDIA_TYPE, _parameter
from twinengine.access.extract import Planner, parameter_info
from twinengine.access.grid import axes_of
from twinengine.access.points import POINT_QUERIES, Stations, stations_of
from twinengine.access.service import instance_ids, locations_of

__all__ = ["CONFORMANCE", "collection_document", "landing_page"]

_EDR = "http://www.opengis.net/spec/ogcapi-edr-1"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/oas30",
    *[f"{_EDR}/{version}/conf/{cls}" for version in ("1.0", "1.1")
      for cls in ("core", "collections", "json", "oas30", "covjson", "geojson", "position", "radius", "area",
                  "cube", "trajectory", "corridor", "locations", "instances")],
]
CRS84_WKT = ('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
             'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433],AXIS["Longitude",EAST],'
             'AXIS["Latitude",NORTH]]')
TRS = 'TIMECRS["DateTime",TDATUM["Gregorian Calendar"],CS[TemporalDateTime,1],AXIS["Time (T)",future]]'
FORMATS = ["CoverageJSON", "GeoJSON", "NetCDF"]


def _formats(query_type: str) -> list[str]:
    return [*FORMATS, "PNG"] if query_type == "cube" else FORMATS  # a cube draws one time step (f=png)


_QUERIES = {
    "position": "Values at a point (WKT POINT or MULTIPOINT) over time and levels",
    "radius": "Values within a distance of a point",
    "area": "Values inside a polygon (WKT POLYGON or MULTIPOLYGON), masked",
    "cube": "Values inside a bounding box (bbox, optional z)",
    "trajectory": "Values along a path (WKT LINESTRING, with Z and/or M)",
    "corridor": "Values within a width (and height) around a path",
}


def _link(href: str, rel: str, type_: str = "application/json", title: str | None = None) -> dict[str, Any]:
    link = {"href": href, "rel": rel, "type": type_}
    if title:
        link["title"] = title
    return link


def landing_page(base: str) -> dict[str, Any]:
    return {
        "title": "twinengine data access (OGC API - EDR)",
        "description": "Feature extraction from the engine's gridded collections, as CoverageJSON, GeoJSON or "
                       "netCDF; Polytope-style feature requests at /collections/{id}/features.",
        "links": [_link(f"{base}/", "self", title="this document"),
                  _link(f"{base}/api", "service-desc", "application/vnd.oai.openapi+json;version=3.0",
                        "the API definition"),
                  _link(f"{base}/conformance", "conformance", title="conformance classes"),
                  _link(f"{base}/collections", "data", title="collections")],
    }


def _iso(t: Any) -> str:
    return str(np.datetime_as_string(np.datetime64(t, "s"), unit="s")) + "Z"


def collection_document(collection_id: str, ds: xr.Dataset, base: str, *, title: str,
                        description: str) -> dict[str, Any]:
    here = f"{base}/collections/{collection_id}"
    planner = Planner(ds, reader=lambda name: None, max_values=0)  # type: ignore[arg-type,return-value]
    names = planner.gridded()
    doc: dict[str, Any] = {"id": collection_id, "title": title, "description": description,
                           "links": [_link(here, "self"), _link(f"{base}/collections", "collection")]}
    if not names:
        stations = stations_of(ds)
        return _point_document(doc, ds, stations, here) if stations is not None else doc
    axes = axes_of(ds, names[0])
    extent: dict[str, Any] = {"spatial": {"bbox": [list(axes.bbox())], "crs": CRS84_WKT}}
    ts = axes.ts
    if ts is None and axes.instances is not None and axes.steps is not None:
        ts = np.array([axes.instances.min() + axes.steps.min(), axes.instances.max() + axes.steps.max()])
    if ts is not None and ts.size:
        temporal: dict[str, Any] = {"interval": [[_iso(ts.min()), _iso(ts.max())]], "trs": TRS}
        if ts.size <= 1000:
            temporal["values"] = [_iso(t) for t in ts]
        else:
            step = np.diff(ts)
            if step.size and (step == step[0]).all():
                seconds = int(step[0] / np.timedelta64(1, "s"))
                temporal["values"] = [f"R{ts.size}/{_iso(ts[0])}/PT{seconds}S"]
        extent["temporal"] = temporal
    if axes.zs is not None:
        extent["vertical"] = {"interval": [[str(float(axes.zs.min())), str(float(axes.zs.max()))]],
                              "values": [str(float(z)) for z in axes.zs], "vrs": "level"}
    doc["extent"] = extent
    query_types = list(_QUERIES)
    if locations_of(ds):
        query_types.append("locations")
    instances = instance_ids(ds)
    if instances:
        query_types.append("instances")
        doc["links"].append(_link(f"{here}/instances", "data", title="instances (forecast runs)"))
    doc["data_queries"] = {q: _query_link(here, q) for q in query_types}
    for q in _QUERIES:
        doc["links"].append(_link(f"{here}/{q}", "data", MEDIA_TYPE, _QUERIES[q]))
    _describe_parameters(doc, ds, names)
    return doc


def _query_link(here: str, q: str) -> dict[str, Any]:
    return {"link": {"href": f"{here}/{q}", "rel": "data", "templated": False,
                     "variables": {"title": _QUERIES.get(q, q), "query_type": q, "output_formats": _formats(q),
                                   "default_output_format": "CoverageJSON",
                                   "crs_details": [{"crs": "CRS84", "wkt": CRS84_WKT}],
                                   **({"within_units": ["km", "m", "mi", "nmi"]} if q == "radius" else {}),
                                   **({"width_units": ["km", "m", "mi", "nmi"]} if q == "corridor" else {})}}}


def _describe_parameters(doc: dict[str, Any], ds: xr.Dataset, names: list[str]) -> None:
    doc["crs"] = ["CRS84"]
    doc["output_formats"] = FORMATS
    doc["parameter_names"] = {}
    for name in names:
        info = parameter_info(ds, name)
        entry = _parameter(info, parameter_info(ds, info.base) if info.base else None)
        entry["id"] = name
        entry["data-type"] = "float" if ds[name].dtype.kind == "f" else "integer"
        doc["parameter_names"][name] = entry


def _point_document(doc: dict[str, Any], ds: xr.Dataset, stations: Stations, here: str) -> dict[str, Any]:
    """A point collection (stations): its stations' extent and the queries that apply to points."""
    extent: dict[str, Any] = {"spatial": {"bbox": [list(stations.bbox())], "crs": CRS84_WKT}}
    if stations.ts is not None and stations.ts.size:
        ts = stations.ts
        temporal: dict[str, Any] = {"interval": [[_iso(ts.min()), _iso(ts.max())]], "trs": TRS}
        if ts.size <= 1000:
            temporal["values"] = [_iso(t) for t in ts]
        extent["temporal"] = temporal
    doc["extent"] = extent
    doc["data_queries"] = {q: _query_link(here, q) for q in (*POINT_QUERIES, "locations")}
    for q in POINT_QUERIES:
        doc["links"].append(_link(f"{here}/{q}", "data", MEDIA_TYPE, _QUERIES[q]))
    doc["links"].append(_link(f"{here}/locations", "data", "application/geo+json", "stations"))
    _describe_parameters(doc, ds, stations.parameters)
    return doc
