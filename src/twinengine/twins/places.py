"""A twin's fleet attributes: tags and a GeoJSON location, checked with shapely, and where they are stored
(the tag rows and the bounding-box columns the fleet filters read)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import shapely
from shapely.geometry import box, shape
from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from twinengine.errors import ValidationFailed
from twinengine.twins.models import Twin, TwinTag

__all__ = ["OFFICIAL_TAG", "BBox", "check_location", "check_tags", "intersecting", "is_tag", "parse_bbox", "place"]

BBox = tuple[float, float, float, float]  # minx, miny, maxx, maxy (WGS 84 degrees)
GEOMETRY_TYPES = ("Point", "Polygon", "MultiPolygon")
MAX_TAGS = 32
OFFICIAL_TAG = "official"  # the twin of its place that people are sent to: a fork never inherits it
_TAG_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.:")


def is_tag(tag: str) -> bool:
    return 0 < len(tag) <= 64 and set(tag) <= _TAG_CHARS


def check_tags(tags: Sequence[str], loc: str = "tags") -> list[str]:
    """Lower-case words of letters, digits and ``-_.:``, at most 64 characters; duplicates dropped, sorted."""
    if len(tags) > MAX_TAGS:
        raise ValidationFailed.one(loc, f"at most {MAX_TAGS} tags")
    for i, tag in enumerate(tags):
        if not is_tag(tag):
            raise ValidationFailed.one(f"{loc}[{i}]", f"{tag!r} is not a tag: use 1-64 of a-z 0-9 - _ . :")
    return sorted(set(tags))


def check_location(doc: dict[str, Any], loc: str = "location") -> tuple[dict[str, Any], BBox]:
    """A valid GeoJSON Point, Polygon or MultiPolygon in longitude/latitude; returns it and its bbox."""
    kind = doc.get("type")
    if kind not in GEOMETRY_TYPES:
        raise ValidationFailed.one(f"{loc}.type", f"a location is a GeoJSON {', '.join(GEOMETRY_TYPES)}, "
                                                  f"not {kind!r}")
    try:
        geometry = shape(doc)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise ValidationFailed.one(f"{loc}.coordinates", f"not a GeoJSON {kind}: {exc}") from None
    if geometry.is_empty or not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry) if not geometry.is_empty else "empty"
        raise ValidationFailed.one(f"{loc}.coordinates", f"invalid {kind}: {reason}")
    minx, miny, maxx, maxy = (float(v) for v in geometry.bounds)
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise ValidationFailed.one(f"{loc}.coordinates", "longitudes lie in [-180, 180], latitudes in [-90, 90]")
    return shapely.geometry.mapping(geometry), (minx, miny, maxx, maxy)


def parse_bbox(text: str, loc: str = "bbox") -> BBox:
    """``minx,miny,maxx,maxy`` as in OGC APIs."""
    try:
        minx, miny, maxx, maxy = (float(v) for v in text.split(","))
    except ValueError:
        raise ValidationFailed.one(loc, "give four numbers: minx,miny,maxx,maxy") from None
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise ValidationFailed.one(loc, "give four finite numbers: minx,miny,maxx,maxy")
    if minx > maxx or miny > maxy:
        raise ValidationFailed.one(loc, "minx must not exceed maxx, nor miny maxy")
    return minx, miny, maxx, maxy


def intersecting(locations: Sequence[dict[str, Any] | None], bbox: BBox) -> list[bool]:
    """The exact test after the index prefilter: which locations intersect ``bbox`` (vectorized)."""
    geometries = [shape(doc) if doc else None for doc in locations]
    return [bool(v) for v in shapely.intersects(geometries, box(*bbox))]


def place(session: Session, twin: Twin, *, tags: Sequence[str] | None = None,
          location: dict[str, Any] | None = None, clear_location: bool = False) -> None:
    """Store checked tags (replacing the old ones) and/or a location with its bbox columns."""
    if tags is not None:
        twin.tags = check_tags(tags)
        session.flush()
        session.execute(delete(TwinTag).where(TwinTag.twin_id == twin.id))
        if twin.tags:
            session.execute(insert(TwinTag), [{"tag": t, "twin_id": twin.id} for t in twin.tags])
    if location is not None:
        doc, (minx, miny, maxx, maxy) = check_location(location)
        twin.location, twin.bbox_minx, twin.bbox_miny, twin.bbox_maxx, twin.bbox_maxy = doc, minx, miny, maxx, maxy
    elif clear_location:
        twin.location = twin.bbox_minx = twin.bbox_miny = twin.bbox_maxx = twin.bbox_maxy = None
