"""The STAC API's logic: landing page, conformance, collections, items and item search over lake rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from twinengine.auth.policy import allowed, require
from twinengine.auth.principal import Principal
from twinengine.collections.base import CollectionInfo
from twinengine.errors import NotFound
from twinengine.lake.grants import Readers
from twinengine.lake.models import Attachment, Did
from twinengine.lake.schemas import DidType
from twinengine.lake.stac.objects import GEOJSON, Links, collection_dict, item_dicts
from twinengine.lake.stac.search import Search, find_datasets, make_token, refine
from twinengine.types import JSONDict

__all__ = ["CONFORMANCE", "collection", "collections", "conformance", "item", "items", "landing", "queryables",
           "search"]

CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/item-search-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
]
OPENAPI_MEDIA_TYPE = "application/vnd.oai.openapi+json;version=3.0"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
CubeOf = Callable[[Did], CollectionInfo | None]


def _containers(session: Session, readers: Readers) -> dict[str, Did]:
    """STAC collection id (the container's name) → container the caller may read (``lake.grants``); the first
    scope wins a name clash."""
    found: dict[str, Did] = {}
    for row in session.scalars(select(Did).where(Did.type == DidType.CONTAINER).order_by(Did.name, Did.scope)):
        if row.name not in found and readers(row):
            found[row.name] = row
    return found


def _container(session: Session, cid: str, readers: Readers) -> Did:
    row = _containers(session, readers).get(cid)
    if row is None:
        raise NotFound(f"no STAC collection {cid!r}")
    return row


_CHILD = aliased(Did, name="child")  # built once: an alias per request is cyclic garbage to collect


def _extent(session: Session, container: Did, readers: Readers
            ) -> tuple[list[float] | None, datetime | None, datetime | None]:
    """Space and time of the members the caller may read (in SQL for admins, who read them all)."""
    if not readers.principal.is_admin:
        members = readers.only(session.scalars(select(Did).join(Attachment, Attachment.child_id == Did.id)
                                               .where(Attachment.parent_id == container.id)))
        boxes = [m for m in members if m.west is not None]
        box = [min(float(m.west or 0.0) for m in boxes), min(float(m.south or 0.0) for m in boxes),
               max(float(m.east or 0.0) for m in boxes), max(float(m.north or 0.0) for m in boxes)] if boxes else None
        return (box, min((m.start_time for m in members if m.start_time is not None), default=None),
                max((m.end_time for m in members if m.end_time is not None), default=None))
    child = _CHILD
    row = session.execute(select(func.min(child.west), func.min(child.south), func.max(child.east),
                                 func.max(child.north), func.min(child.start_time), func.max(child.end_time))
                          .join(Attachment, Attachment.child_id == child.id)
                          .where(Attachment.parent_id == container.id)).one()
    bbox = [float(v or 0.0) for v in row[:4]] if row[0] is not None else None
    return bbox, row[4], row[5]


def landing(session: Session, *, principal: Principal | None, links: Links) -> JSONDict:
    body: JSONDict = {
        "type": "Catalog", "stac_version": "1.1.0", "id": "twinengine-lake", "title": "twinengine data lake",
        "description": "Datasets of the federated data lake, with checksummed assets and their replicas.",
        "conformsTo": CONFORMANCE,
        "links": [
            {"rel": "self", "href": links.root, "type": "application/json"},
            {"rel": "root", "href": links.root, "type": "application/json"},
            {"rel": "conformance", "href": links.stac("conformance"), "type": "application/json"},
            {"rel": "data", "href": links.stac("collections"), "type": "application/json"},
            {"rel": "search", "href": links.stac("search"), "type": GEOJSON, "method": "GET"},
            {"rel": "search", "href": links.stac("search"), "type": GEOJSON, "method": "POST"},
            {"rel": QUERYABLES_REL, "href": links.stac("queryables"), "type": "application/schema+json"},
            {"rel": "service-desc", "href": links.stac("api"), "type": OPENAPI_MEDIA_TYPE},
            {"rel": "service-doc", "href": f"{links.base}/docs", "type": "text/html"},
        ],
    }
    if principal is None or not allowed(principal, "lake.read"):
        return body
    for cid in _containers(session, Readers(session, principal)):
        body["links"].append({"rel": "child", "href": links.collection(cid), "type": "application/json"})
    return body


def conformance() -> JSONDict:
    return {"conformsTo": CONFORMANCE}


def collections(session: Session, *, principal: Principal, links: Links) -> JSONDict:
    require(principal, "lake.read")
    readers = Readers(session, principal)
    cols = [collection_dict(c, _extent(session, c, readers), links) for c in _containers(session, readers).values()]
    return {"collections": cols, "links": [
        {"rel": "self", "href": links.stac("collections"), "type": "application/json"},
        {"rel": "root", "href": links.root, "type": "application/json"},
        {"rel": "parent", "href": links.root, "type": "application/json"}]}


def collection(session: Session, *, principal: Principal, links: Links, cid: str) -> JSONDict:
    require(principal, "lake.read")
    readers = Readers(session, principal)
    row = _container(session, cid, readers)
    return collection_dict(row, _extent(session, row, readers), links)


def queryables(*, links: Links, cid: str | None = None) -> JSONDict:
    url = links.stac("queryables") if cid is None else f"{links.collection(cid)}/queryables"
    return {"$schema": "https://json-schema.org/draft/2019-09/schema", "$id": url, "type": "object",
            "title": "Queryables of the twinengine lake", "additionalProperties": True, "properties": {
                "id": {"title": "Item id (the dataset's name)", "type": "string"},
                "collection": {"title": "Collection id (the container's name)", "type": "string"},
                "datetime": {"title": "Acquisition or validity time", "type": "string", "format": "date-time"},
                "geometry": {"title": "Footprint", "$ref": "https://geojson.org/schema/Geometry.json"},
                "lake:did": {"title": "The dataset's scope:name", "type": "string"},
            }}


def _page(session: Session, query: Search, links: Links, cube_of: CubeOf | None,
          *, cids: dict[str, Did], readers: Readers) -> tuple[list[JSONDict], int]:
    pairs = [(d, cid) for d, cid in find_datasets(session, query, cids) if readers(d)]  # items the caller may read
    needs_items = query.intersects is not None or query.filter is not None or bool(query.sortby)
    if not needs_items:  # SQL order is the default order: build only the page
        window = pairs[query.offset: query.offset + query.limit]
        return item_dicts(session, window, links, cube_of), len(pairs)
    built = refine(item_dicts(session, pairs, links, cube_of), query)
    return built[query.offset: query.offset + query.limit], len(built)


def _feature_collection(features: list[JSONDict], matched: int, query: Search, links: list[JSONDict],
                        next_link: JSONDict | None) -> JSONDict:
    if next_link is not None:
        links.append(next_link)
    return {"type": "FeatureCollection", "features": features, "links": links, "numberMatched": matched,
            "numberReturned": len(features)}


def search(session: Session, *, principal: Principal, links: Links, query: Search, method: str,
           cube_of: CubeOf | None = None) -> JSONDict:
    require(principal, "lake.read")
    readers = Readers(session, principal)
    features, matched = _page(session, query, links, cube_of, cids=_containers(session, readers), readers=readers)
    next_link = None
    if query.offset + len(features) < matched:
        token = make_token(query.offset + len(features))
        if method == "POST":
            next_link = {"rel": "next", "href": links.stac("search"), "type": GEOJSON, "method": "POST",
                         "body": {**query.raw, "token": token}, "merge": False}
        else:
            params = {k: v for k, v in query.raw.items() if isinstance(v, str)}
            next_link = {"rel": "next", "href": f"{links.stac('search')}?{urlencode({**params, 'token': token})}",
                         "type": GEOJSON, "method": "GET"}
    own = [{"rel": "root", "href": links.root, "type": "application/json"},
           {"rel": "self", "href": links.stac("search"), "type": GEOJSON}]
    return _feature_collection(features, matched, query, own, next_link)


def items(session: Session, *, principal: Principal, links: Links, cid: str, query: Search,
          cube_of: CubeOf | None = None) -> JSONDict:
    require(principal, "lake.read")
    readers = Readers(session, principal)
    container = _container(session, cid, readers)
    query.collections = [cid]
    features, matched = _page(session, query, links, cube_of, cids={cid: container}, readers=readers)
    base = f"{links.collection(cid)}/items"
    next_link = None
    if query.offset + len(features) < matched:
        params: dict[str, Any] = {k: v for k, v in query.raw.items() if isinstance(v, str) and k != "collections"}
        params["token"] = make_token(query.offset + len(features))
        next_link = {"rel": "next", "href": f"{base}?{urlencode(params)}", "type": GEOJSON}
    own = [{"rel": "self", "href": base, "type": GEOJSON},
           {"rel": "collection", "href": links.collection(cid), "type": "application/json"},
           {"rel": "parent", "href": links.collection(cid), "type": "application/json"},
           {"rel": "root", "href": links.root, "type": "application/json"}]
    return _feature_collection(features, matched, query, own, next_link)


def item(session: Session, *, principal: Principal, links: Links, cid: str, iid: str,
         cube_of: CubeOf | None = None) -> JSONDict:
    require(principal, "lake.read")
    readers = Readers(session, principal)
    container = _container(session, cid, readers)
    found = [(d, c) for d, c in find_datasets(session, Search(collections=[cid], ids=[iid]), {cid: container})
             if readers(d)]
    if not found:
        raise NotFound(f"no item {iid!r} in collection {cid!r}")
    return item_dicts(session, found[:1], links, cube_of)[0]
