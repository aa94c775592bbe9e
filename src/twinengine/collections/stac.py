"""Collections as STAC collections with the datacube extension (``cube:dimensions``, ``cube:variables``).

Dimensions carry the names a workflow's ``load_collection`` cube has (``t``, ``bands``, ``y``, ``x``), so an
openEO client's metadata matches the data it gets; the lake's STAC API reuses this.
"""

from __future__ import annotations

from typing import Any

from twinengine.collections.base import CollectionInfo

__all__ = ["DATACUBE_EXTENSION", "stac_collection"]

DATACUBE_EXTENSION = "https://stac-extensions.github.io/datacube/v2.2.0/schema.json"
_NAMES = {"time": "t", "t": "t", "lat": "y", "latitude": "y", "y": "y", "lon": "x", "longitude": "x", "x": "x"}


def stac_collection(info: CollectionInfo, *, base_url: str = "", links: list[dict[str, Any]] | None = None,
                    stac_version: str = "1.0.0") -> dict[str, Any]:
    """A STAC Collection document for ``info``; ``base_url`` prefixes its self/root/parent links."""
    dims: dict[str, Any] = {}
    for name, size in info.dims.items():
        kind = _NAMES.get(name)
        if kind == "t":
            dims["t"] = {"type": "temporal", "extent": [info.time[0].isoformat().replace("+00:00", "Z"),
                                                         info.time[1].isoformat().replace("+00:00", "Z")]
                         if info.time else [None, None], "step": None}
        elif kind in ("x", "y") and info.bbox is not None:
            low, high = (info.bbox[0], info.bbox[2]) if kind == "x" else (info.bbox[1], info.bbox[3])
            step = (high - low) / (size - 1) if size > 1 else None
            dims[kind] = {"type": "spatial", "axis": kind, "extent": [low, high], "step": step,
                          "reference_system": 4326 if info.crs == "EPSG:4326" else info.crs}
        elif kind is None:
            dims[name] = {"type": "other", "extent": [0, size - 1]}
    dims["bands"] = {"type": "bands", "values": list(info.variables)}
    variables = {name: {"dimensions": [_NAMES.get(d, d) for d in var.dims], "type": "data",
                        **({"unit": var.units} if var.units else {}),
                        **({"description": var.long_name} if var.long_name else {})}
                 for name, var in info.variables.items()}
    temporal = ([[info.time[0].isoformat().replace("+00:00", "Z"), info.time[1].isoformat().replace("+00:00", "Z")]]
                if info.time else [[None, None]])
    spatial = [list(info.bbox)] if info.bbox else [[-180.0, -90.0, 180.0, 90.0]]
    self_href = f"{base_url}/collections/{info.id}"
    return {
        "type": "Collection",
        "stac_version": stac_version,
        "stac_extensions": [DATACUBE_EXTENSION],
        "id": info.id,
        "title": info.title,
        "description": info.description or info.title,
        "license": str(info.attrs.get("license", "proprietary")),
        "extent": {"spatial": {"bbox": spatial}, "temporal": {"interval": temporal}},
        "cube:dimensions": dims,
        "cube:variables": variables,
        "summaries": {"eo:bands": [{"name": n, **({"description": v.long_name} if v.long_name else {})}
                                   for n, v in info.variables.items()]},
        "links": (links if links is not None else
                  [{"rel": "self", "href": self_href, "type": "application/json"},
                   {"rel": "root", "href": f"{base_url}/", "type": "application/json"},
                   {"rel": "parent", "href": f"{base_url}/", "type": "application/json"}]),
    }
