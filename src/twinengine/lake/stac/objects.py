"""Lake rows as STAC objects (through pystac): containers are collections, datasets are items, files are
assets with ``file:size``, ``file:checksum`` (multihash) and, per extra replica, an ``alternate`` href.
Items with a gridded file carry the datacube extension (``cube:dimensions``, ``cube:variables``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

import pystac
from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.collections.base import CollectionInfo
from twinengine.lake.checksums import multihash_sha256
from twinengine.lake.models import Attachment, Did, Endpoint, Replica
from twinengine.lake.schemas import ReplicaState
from twinengine.types import JSONDict

__all__ = ["ALTERNATE_EXT", "DATACUBE_EXT", "FILE_EXT", "Links", "collection_dict", "item_dicts"]

FILE_EXT = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
ALTERNATE_EXT = "https://stac-extensions.github.io/alternate-assets/v1.2.0/schema.json"
DATACUBE_EXT = "https://stac-extensions.github.io/datacube/v2.2.0/schema.json"
GEOJSON = "application/geo+json"

CubeOf = Callable[[Did], CollectionInfo | None]


class Links:
    """Absolute hrefs under the server's base URL (``http://host:port``)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    @property
    def root(self) -> str:
        return f"{self.base}/stac/"

    def stac(self, path: str) -> str:
        return f"{self.base}/stac/{path.lstrip('/')}"

    def collection(self, cid: str) -> str:
        return self.stac(f"collections/{quote(cid, safe='')}")

    def item(self, cid: str, iid: str) -> str:
        return f"{self.collection(cid)}/items/{quote(iid, safe='')}"

    def content(self, did: str, endpoint: str | None = None) -> str:
        href = f"{self.base}/api/v1/lake/dids/{quote(did, safe=':/')}/content"
        return f"{href}?endpoint={quote(endpoint, safe='')}" if endpoint else href


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _scalars(meta: dict[str, Any]) -> dict[str, Any]:
    skip = {"properties", "source", "cube"}
    return {k: v for k, v in meta.items() if k not in skip and isinstance(v, str | int | float | bool | list)}


def _cube(info: CollectionInfo) -> tuple[JSONDict, JSONDict]:
    """The datacube extension's dimensions and variables from a collection description."""
    dims: JSONDict = {}
    for name, size in info.dims.items():
        lname = name.lower()
        if lname in ("lon", "longitude", "x") and info.bbox:
            dims[name] = {"type": "spatial", "axis": "x", "extent": [info.bbox[0], info.bbox[2]],
                          "reference_system": 4326}
        elif lname in ("lat", "latitude", "y") and info.bbox:
            dims[name] = {"type": "spatial", "axis": "y", "extent": [info.bbox[1], info.bbox[3]],
                          "reference_system": 4326}
        elif lname in ("time", "t") and info.time:
            dims[name] = {"type": "temporal", "extent": [_iso(info.time[0]), _iso(info.time[1])]}
        else:
            dims[name] = {"type": "other", "extent": [0, size - 1], "description": f"{size} steps"}
    variables: JSONDict = {
        v.name: {k: val for k, val in {"dimensions": v.dims, "type": "data", "unit": v.units,
                                       "description": v.long_name or v.standard_name}.items() if val is not None}
        for v in info.variables.values()}
    return dims, variables


def _files_of(session: Session, dataset_ids: Sequence[int]) -> dict[int, list[tuple[Did, list[str]]]]:
    """dataset id → [(file, [names of endpoints with an AVAILABLE replica])]."""
    if not dataset_ids:  # no round trip for an empty page
        return {}
    rows = session.execute(select(Attachment.parent_id, Did).join(Did, Did.id == Attachment.child_id)
                           .where(Attachment.parent_id.in_(dataset_ids), Did.sha256.is_not(None))
                           .order_by(Did.name)).all()
    file_ids = [d.id for _, d in rows]
    where: dict[int, list[str]] = defaultdict(list)
    if file_ids:
        for did_id, name in session.execute(
                select(Replica.did_id, Endpoint.name).join(Endpoint, Endpoint.id == Replica.endpoint_id)
                .where(Replica.did_id.in_(file_ids), Replica.state == ReplicaState.AVAILABLE,
                       Endpoint.read.is_(True)).order_by(Endpoint.protocol != "file", Endpoint.name)):
            where[did_id].append(name)
    out: dict[int, list[tuple[Did, list[str]]]] = defaultdict(list)
    for parent_id, file in rows:
        out[parent_id].append((file, where.get(file.id, [])))
    return out


def _asset_key(file: Did, dataset: Did) -> str:
    key = (file.meta or {}).get("asset")
    if isinstance(key, str) and key:
        return key
    name = file.name.removeprefix(dataset.name + "/")
    return PurePosixPath(name).name or name


def item_dicts(session: Session, datasets: Sequence[tuple[Did, str]], links: Links,
               cube_of: CubeOf | None = None) -> list[JSONDict]:
    """STAC items for (dataset, collection id) pairs, with assets, in the given order."""
    files = _files_of(session, [d.id for d, _ in datasets])
    out = []
    for dataset, cid in datasets:
        meta = dataset.meta or {}
        props: JSONDict = {**(meta.get("properties") or {}), **_scalars(meta)}
        for key in ("datetime", "start_datetime", "end_datetime"):
            props.pop(key, None)
        start, end = dataset.start_time, dataset.end_time
        when: datetime | None
        if start is None:
            when = dataset.created_at  # an item needs a time; registration time stands in
        elif end is None or end == start:
            when = start
        else:  # a range: its start is the nominal time (STAC allows both; clients sort on datetime)
            when = start
            props.update({"start_datetime": _iso(start), "end_datetime": _iso(end)})
        props.update({"lake:did": dataset.did, "created": _iso(dataset.created_at),
                      "updated": _iso(dataset.updated_at)})
        bbox = ([float(v or 0.0) for v in (dataset.west, dataset.south, dataset.east, dataset.north)]
                if dataset.west is not None else None)
        item = pystac.Item(id=dataset.name, geometry=dataset.geometry, bbox=bbox, datetime=when, properties=props,
                           collection=cid, stac_extensions=[FILE_EXT, ALTERNATE_EXT])
        item.links = []
        for rel, href, kind in (("self", links.item(cid, dataset.name), GEOJSON),
                                ("parent", links.collection(cid), "application/json"),
                                ("collection", links.collection(cid), "application/json"),
                                ("root", links.root, "application/json")):
            item.add_link(pystac.Link(rel, href, media_type=kind))
        cube = None
        for file, endpoints in files.get(dataset.id, []):
            fmeta = file.meta or {}
            extra: JSONDict = {"file:size": file.bytes, "file:checksum": multihash_sha256(file.sha256 or ""),
                               "lake:did": file.did}
            if len(endpoints) > 1:
                extra["alternate"] = {ep: {"href": links.content(file.did, ep), "title": f"replica on {ep}"}
                                      for ep in endpoints[1:]}
            roles = fmeta.get("roles") or ["data"]
            item.add_asset(_asset_key(file, dataset), pystac.Asset(
                href=links.content(file.did, endpoints[0] if endpoints else None), media_type=file.media_type,
                title=fmeta.get("title") or PurePosixPath(file.name).name, roles=list(roles), extra_fields=extra))
            if cube is None and cube_of is not None:
                cube = cube_of(dataset)
        data = item.to_dict(include_self_link=True, transform_hrefs=False)
        if cube is not None:
            dims, variables = _cube(cube)
            data["properties"]["cube:dimensions"] = dims
            data["properties"]["cube:variables"] = variables
            data["stac_extensions"].append(DATACUBE_EXT)
        out.append(data)
    return out


def collection_dict(container: Did, extent: tuple[list[float] | None, datetime | None, datetime | None],
                    links: Links) -> JSONDict:
    meta = container.meta or {}
    bbox, start, end = extent
    collection = pystac.Collection(
        id=container.name, title=meta.get("title") or container.name,
        description=meta.get("description") or f"Lake container {container.did}",
        license=meta.get("license") or "other", keywords=meta.get("keywords") or None,
        extent=pystac.Extent(pystac.SpatialExtent([bbox or [-180.0, -90.0, 180.0, 90.0]]),
                             pystac.TemporalExtent([[start, end]])),
        extra_fields={"lake:did": container.did})
    collection.links = []
    cid = container.name
    for rel, href, kind in (("self", links.collection(cid), "application/json"),
                            ("root", links.root, "application/json"), ("parent", links.root, "application/json"),
                            ("items", f"{links.collection(cid)}/items", GEOJSON),
                            ("http://www.opengis.net/def/rel/ogc/1.0/queryables", f"{links.collection(cid)}/queryables",
                             "application/schema+json")):
        collection.add_link(pystac.Link(rel, href, media_type=kind))
    return collection.to_dict(include_self_link=True, transform_hrefs=False)
