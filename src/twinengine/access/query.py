"""EDR query parameters parsed into typed values: WKT geometries, datetime filters, z filters, bboxes,
distances. Every failure names the parameter and says what was wrong and where.

``Query`` (the parsed query as a whole) lives here, below the service and the point planner that both take it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import shapely
import shapely.affinity
from shapely.geometry.base import BaseGeometry

from twinengine.errors import InvalidParameterValue

__all__ = ["LONGITUDE_LIMIT", "Query", "TimeFilter", "ZFilter", "footprint", "parse_bbox", "parse_datetime",
           "parse_distance", "parse_names", "parse_wkt", "parse_z"]

# To kilometres; EDR's within-units / width-units take any of these.
_DISTANCE_KM = {"km": 1.0, "m": 0.001, "mi": 1.609344, "miles": 1.609344, "nmi": 1.852, "ft": 0.0003048,
                "kilometers": 1.0, "kilometres": 1.0, "meters": 0.001, "metres": 0.001}


@dataclass(frozen=True)
class TimeFilter:
    """An instant (``start == end``), a closed interval, or one open at either end (None)."""

    start: np.datetime64 | None
    end: np.datetime64 | None
    text: str

    @property
    def instant(self) -> bool:
        return self.start is not None and self.start == self.end


@dataclass(frozen=True)
class ZFilter:
    """Explicit levels, or a closed range [lo, hi]."""

    levels: tuple[float, ...] | None = None
    lo: float | None = None
    hi: float | None = None
    text: str = ""


@dataclass(frozen=True)
class Query:
    """One EDR query, parsed: its type, geometry and the parameters every query type shares."""

    kind: str
    geometry: BaseGeometry | None = None
    bbox: tuple[float, ...] | None = None
    datetime: TimeFilter | None = None
    z: ZFilter | None = None
    parameters: list[str] | None = None
    within_km: float | None = None
    width_km: float | None = None
    height: float | None = None
    method: str = "nearest"
    instance: str | None = None
    location: str | None = None  # locations/{id}: the named station of a point collection


KM_PER_DEGREE = 111.32  # of latitude (and of longitude at the equator)


def footprint(query: Query) -> BaseGeometry | None:
    """The area a query reads, in longitude and latitude (what a policy's ``spatialCoordinates`` is judged on):
    its point, points, path or polygon as asked (not the grid cells that answer it), a cube's box (a box across
    the seam as one box past 180), a radius's circle and a corridor's band (their kilometres in degrees of
    latitude, widened in longitude by 1 / cos(latitude)); None for a query that names no area (a location by
    its id)."""
    if query.kind == "cube" and query.bbox is not None:
        west, south, east, north = query.bbox[:4]
        return shapely.box(west, south, east if east >= west else east + 360.0, north)
    geometry = query.geometry
    if geometry is None:
        return None
    flat = shapely.force_2d(geometry)
    kilometres = query.within_km if query.kind == "radius" else (query.width_km or 0.0) / 2 \
        if query.kind == "corridor" else None
    if not kilometres:
        return flat
    widest = max(abs(flat.bounds[1]), abs(flat.bounds[3]))
    squeeze = max(math.cos(math.radians(min(widest, 89.0))), 1e-3)
    stretched = shapely.affinity.scale(flat, xfact=squeeze, yfact=1.0, origin=(0, 0))
    band = stretched.buffer(kilometres / KM_PER_DEGREE)
    return shapely.affinity.scale(band, xfact=1 / squeeze, yfact=1.0, origin=(0, 0))


def _instant(text: str, where: str) -> np.datetime64:
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameterValue("datetime", f"{value!r} ({where}) is not an RFC 3339 date-time, e.g. "
                                                "2026-03-01T06:00:00Z") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(parsed, "ns")


def parse_datetime(text: str | None) -> TimeFilter | None:
    """``instant``, ``start/end``, ``../end`` or ``start/..`` (RFC 3339)."""
    if text is None or not text.strip():
        return None
    if "/" not in text:
        when = _instant(text, "instant")
        return TimeFilter(when, when, text)
    parts = text.split("/")
    if len(parts) != 2:
        raise InvalidParameterValue("datetime", f"{text!r}: an interval has exactly one '/' (start/end, ../end, "
                                                "start/..)")
    start = None if parts[0] in ("", "..") else _instant(parts[0], "interval start")
    end = None if parts[1] in ("", "..") else _instant(parts[1], "interval end")
    if start is None and end is None:
        return None
    if start is not None and end is not None and end < start:
        raise InvalidParameterValue("datetime", f"{text!r}: the interval ends before it starts")
    return TimeFilter(start, end, text)


def _number(text: str, field: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidParameterValue(field, f"{text!r} ({where}) is not a number") from None
    if not math.isfinite(value):
        raise InvalidParameterValue(field, f"{text!r} ({where}) is not a finite number")
    return value


_RECURRING = re.compile(r"^R(\d+)/([^/]+)/([^/]+)$")


def parse_z(text: str | None) -> ZFilter | None:
    """``z``: a level, a list ``a,b,c``, a range ``lo/hi``, or recurring ``Rn/start/step``."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    recurring = _RECURRING.match(text)
    if recurring:
        count = int(recurring.group(1))
        if not 1 <= count <= 10_000:
            raise InvalidParameterValue("z", f"{text!r}: the repeat count must be 1..10000")
        start = _number(recurring.group(2), "z", "start")
        step = _number(recurring.group(3), "z", "step")
        return ZFilter(levels=tuple(start + i * step for i in range(count)), text=text)
    if "/" in text:
        parts = text.split("/")
        if len(parts) != 2:
            raise InvalidParameterValue("z", f"{text!r}: a range is lo/hi")
        lo, hi = _number(parts[0], "z", "range start"), _number(parts[1], "z", "range end")
        return ZFilter(lo=min(lo, hi), hi=max(lo, hi), text=text)
    return ZFilter(levels=tuple(_number(p, "z", f"item {i + 1}") for i, p in enumerate(text.split(","))),
                   text=text)


LONGITUDE_LIMIT = 360.0
"""Longitudes a query may name: -180..180 and 0..360 grids are both served, in the query's convention; beyond a
turn either way a window would label the same columns again, shifted by whole turns."""

_KINDS = {"POINT": "Point", "MULTIPOINT": "MultiPoint", "POLYGON": "Polygon", "MULTIPOLYGON": "MultiPolygon",
          "LINESTRING": "LineString"}


def parse_wkt(text: str | None, *, allowed: tuple[str, ...], field: str = "coords") -> BaseGeometry:
    """A WKT geometry of one of the ``allowed`` types (``POINT``, ``POLYGON``...), with x = longitude."""
    if text is None or not text.strip():
        raise InvalidParameterValue(field, f"required: a WKT {' or '.join(allowed)}")
    try:
        geometry = shapely.from_wkt(text.strip())
    except shapely.errors.ShapelyError as exc:
        message = str(exc).split("\n")[0]
        raise InvalidParameterValue(field, f"not valid WKT ({message})") from None
    if geometry is None or geometry.is_empty:
        raise InvalidParameterValue(field, "the geometry is empty")
    if geometry.geom_type not in {_KINDS[a] for a in allowed}:
        raise InvalidParameterValue(field, f"a {geometry.geom_type.upper()} was given; this query takes "
                                           f"{' or '.join(allowed)}")
    coords = shapely.get_coordinates(geometry)
    if not np.isfinite(coords).all():
        raise InvalidParameterValue(field, "coordinates must be finite numbers")
    bad = np.flatnonzero((coords[:, 1] < -90) | (coords[:, 1] > 90))
    if bad.size:
        raise InvalidParameterValue(field, f"vertex {int(bad[0]) + 1}: latitude {coords[bad[0], 1]:g} is outside "
                                           "-90..90 (WKT order is longitude latitude)")
    bad = np.flatnonzero(np.abs(coords[:, 0]) > LONGITUDE_LIMIT)
    if bad.size:
        raise InvalidParameterValue(field, f"vertex {int(bad[0]) + 1}: longitude {coords[bad[0], 0]:g} is outside "
                                           f"-{LONGITUDE_LIMIT:g}..{LONGITUDE_LIMIT:g}")
    if geometry.geom_type in ("Polygon", "MultiPolygon") and not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        raise InvalidParameterValue(field, f"the polygon is not valid: {reason}")
    return geometry


def parse_bbox(text: str | None, *, field: str = "bbox") -> tuple[float, ...]:
    """``minx,miny,maxx,maxy`` or ``minx,miny,minz,maxx,maxy,maxz`` (returned as minx,miny,maxx,maxy[,minz,maxz])."""
    if text is None or not text.strip():
        raise InvalidParameterValue(field, "required: minx,miny,maxx,maxy (or 6 numbers with z)")
    parts = text.split(",")
    if len(parts) not in (4, 6):
        raise InvalidParameterValue(field, f"{len(parts)} numbers given; a bbox has 4 (or 6 with z)")
    values = [_number(p, field, f"item {i + 1}") for i, p in enumerate(parts)]
    if len(values) == 6:
        minx, miny, minz, maxx, maxy, maxz = values
        box: tuple[float, ...] = (minx, miny, maxx, maxy, min(minz, maxz), max(minz, maxz))
    else:
        box = tuple(values)
    if box[1] > box[3]:
        raise InvalidParameterValue(field, f"miny {box[1]:g} is above maxy {box[3]:g}")
    if not (-90 <= box[1] <= 90 and -90 <= box[3] <= 90):
        raise InvalidParameterValue(field, "latitudes must lie in -90..90")
    if not (abs(box[0]) <= LONGITUDE_LIMIT and abs(box[2]) <= LONGITUDE_LIMIT):
        raise InvalidParameterValue(field, f"longitudes must lie in -{LONGITUDE_LIMIT:g}..{LONGITUDE_LIMIT:g}")
    return box


def parse_distance(value: float | None, units: str | None, *, field: str, units_field: str) -> float:
    """A distance in kilometres from a number and EDR units (km, m, mi, nmi, ft)."""
    if value is None:
        raise InvalidParameterValue(field, "required")
    if not math.isfinite(value) or value <= 0:
        raise InvalidParameterValue(field, f"{value:g} must be a positive number")
    if units is None:
        raise InvalidParameterValue(units_field, f"required with {field}: one of {', '.join(sorted(_DISTANCE_KM))}")
    factor = _DISTANCE_KM.get(units.strip().lower())
    if factor is None:
        raise InvalidParameterValue(units_field, f"{units!r} is not a distance unit; use one of "
                                                 f"{', '.join(sorted(_DISTANCE_KM))}")
    return value * factor


def parse_names(text: str | None) -> list[str] | None:
    """``parameter-name``: a comma-separated list."""
    if text is None or not text.strip():
        return None
    names = [p.strip() for p in text.split(",") if p.strip()]
    return list(dict.fromkeys(names)) or None
