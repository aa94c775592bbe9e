"""Item search: parse GET/POST parameters (bad ones → 400 naming the parameter), narrow in SQL by collection,
id, time and bbox, then test geometry exactly (shapely) and CQL2 filters (the ``cql2`` library) on the items,
sort, and page with an opaque token."""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, aliased

from twinengine.errors import InvalidInput
from twinengine.lake.models import Attachment, Did
from twinengine.lake.schemas import DidType
from twinengine.timeutil import parse_instant
from twinengine.types import JSONDict

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Search", "find_datasets", "from_get", "from_post", "refine"]

_RFC3339 = re.compile(r"^(?P<base>\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2})(?P<frac>\.\d+)?"
                      r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})$")
DEFAULT_LIMIT = 10
MAX_LIMIT = 10_000


@dataclass
class Search:
    collections: list[str] | None = None
    ids: list[str] | None = None
    bbox: list[float] | None = None
    intersects: JSONDict | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    filter: Any = None
    filter_lang: str | None = None
    sortby: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    raw: JSONDict = field(default_factory=dict)


def _bad(param: str, msg: str) -> InvalidInput:
    return InvalidInput(f"{param}: {msg}", details=[{"loc": param, "msg": msg}])


def _csv(value: Any, param: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _bad(param, "expects a list of strings")


def _bbox(value: Any) -> list[float] | None:
    if value is None:
        return None
    try:
        numbers = [float(v) for v in (value.split(",") if isinstance(value, str) else value)]
    except (TypeError, ValueError):
        raise _bad("bbox", "expects 4 or 6 numbers: west,south,east,north (or with min/max height)") from None
    if len(numbers) not in (4, 6):
        raise _bad("bbox", f"has {len(numbers)} numbers; expects 4 or 6")
    west, south, east, north = (numbers[0], numbers[1], numbers[2], numbers[3]) if len(numbers) == 4 else (
        numbers[0], numbers[1], numbers[3], numbers[4])
    if not (-90 <= south <= north <= 90) or not (-180 <= west <= 180 and -180 <= east <= 180):
        raise _bad("bbox", "south must not exceed north, and coordinates must be in degrees")
    return [west, south, east, north]


def _interval(value: Any) -> tuple[datetime | None, datetime | None]:
    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        raise _bad("datetime", "expects an RFC 3339 instant or interval start/end ('..' for open)")
    parts = value.split("/")
    if len(parts) > 2:
        raise _bad("datetime", f"{value!r} has more than two parts")

    def one(text: str) -> datetime | None:
        if text in ("", ".."):
            return None
        match = _RFC3339.match(text)
        if not match:
            raise _bad("datetime", f"{text!r} is not an RFC 3339 date-time")
        fraction = (match.group("frac") or "")[:7]
        try:
            return parse_instant(f"{match.group('base').upper()}{fraction}{match.group('zone').upper()}")
        except ValueError:
            raise _bad("datetime", f"{text!r} is not an RFC 3339 date-time") from None

    if len(parts) == 1:
        if parts[0] in ("", ".."):
            raise _bad("datetime", "a single instant cannot be open")
        instant = one(parts[0])
        return instant, instant
    start, end = one(parts[0]), one(parts[1])
    if parts[0] in ("", "..") and parts[1] in ("", ".."):
        raise _bad("datetime", "an interval needs at least one end")
    if start and end and end < start:
        raise _bad("datetime", "the interval ends before it starts")
    return start, end


def _limit(value: Any) -> int:
    if value is None:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise _bad("limit", "expects a positive integer") from None
    if limit < 1:
        raise _bad("limit", "expects a positive integer")
    return min(limit, MAX_LIMIT)


def _token(value: Any) -> int:
    if value is None:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(str(value).encode()).decode().removeprefix("o:"))
    except (ValueError, UnicodeDecodeError):
        raise _bad("token", "is not a token this server issued") from None
    if offset < 0:
        raise _bad("token", "is not a token this server issued")
    return offset


def make_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _sortby_text(value: str) -> list[tuple[str, bool]]:
    out = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        descending = part.startswith("-")
        out.append((part.lstrip("+- "), descending))
    return out


def _sortby_json(value: Any) -> list[tuple[str, bool]]:
    if isinstance(value, str):
        return _sortby_text(value)
    if not isinstance(value, list):
        raise _bad("sortby", "expects a list of {field, direction}")
    out = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or not isinstance(entry.get("field"), str):
            raise _bad(f"sortby[{i}]", "expects {field, direction}")
        direction = str(entry.get("direction", "asc")).lower()
        if direction not in ("asc", "desc"):
            raise _bad(f"sortby[{i}].direction", "expects asc or desc")
        out.append((entry["field"], direction == "desc"))
    return out


# CQL2's operators (basic, advanced comparison, spatial, temporal, array, arithmetic). The engine offers no custom
# functions, and the cql2 library reads an unknown ``op`` as a call to one, which then matches no item: so every
# other name is refused.
CQL2_OPERATORS = frozenset(name.lower() for name in (
    "and", "or", "not", "=", "<>", "<", ">", "<=", ">=", "like", "between", "in", "isNull", "casei", "accenti",
    "s_intersects", "s_equals", "s_disjoint", "s_touches", "s_within", "s_overlaps", "s_crosses", "s_contains",
    "t_after", "t_before", "t_contains", "t_disjoint", "t_during", "t_equals", "t_finishedBy", "t_finishes",
    "t_intersects", "t_meets", "t_metBy", "t_overlappedBy", "t_overlaps", "t_startedBy", "t_starts",
    "a_equals", "a_contains", "a_containedBy", "a_overlaps", "+", "-", "*", "/", "^", "%", "div"))


def _unknown_operator(node: Any) -> str | None:
    """The first operator in a CQL2-JSON tree that CQL2 does not define, if any."""
    if isinstance(node, list):
        return next((found for item in node if (found := _unknown_operator(item)) is not None), None)
    if not isinstance(node, dict):
        return None
    op = node.get("op")
    if isinstance(op, str) and op.lower() not in CQL2_OPERATORS:
        return op
    return _unknown_operator(node.get("args"))


# What a CQL2 text filter may hold before it reaches the parser (cql2, in Rust): about 2,000 nested
# parentheses overflow its stack and kill the process, and its time grows faster than linearly with chained
# NOTs (300: 10 s, 1,000: memory exhausted) and arithmetic operators (1,000: 10 s). Far above what a
# search needs; its JSON form is bounded by the parser's own depth limit (128).
_CQL2_TEXT_LIMITS = {"parentheses nested": 100, "NOT operators": 20, "arithmetic operators": 100}
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_NOT = re.compile(r"\bNOT\b", re.IGNORECASE)
_ARITHMETIC = re.compile(r"[-+*/%^]")


def _within_cql2_limits(text: str) -> None:
    plain = _QUOTED.sub("''", text)  # literals and quoted names hold no structure
    depth = deepest = 0
    for char in plain:
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    counts = {"parentheses nested": deepest, "NOT operators": len(_NOT.findall(plain)),
              "arithmetic operators": len(_ARITHMETIC.findall(plain))}
    for what, count in counts.items():
        if count > _CQL2_TEXT_LIMITS[what]:
            raise _bad("filter", f"{count} {what}; at most {_CQL2_TEXT_LIMITS[what]} are taken")


def _filter(value: Any, lang: str | None) -> Any:
    if value is None or value == "":
        return None
    import cql2

    if not isinstance(value, dict) and lang != "cql2-json":
        _within_cql2_limits(str(value))
    try:
        if isinstance(value, dict) or lang == "cql2-json":
            expr = cql2.parse_json(json.dumps(value) if not isinstance(value, str) else value)
        else:
            expr = cql2.parse_text(str(value))
        expr.validate()
        unknown = _unknown_operator(expr.to_json())
    except Exception as exc:
        raise _bad("filter", f"not valid CQL2 ({str(exc).splitlines()[0][:200]})") from None
    if unknown is not None:
        raise _bad("filter", f"unknown operator {unknown!r} (CQL2 operators such as =, <, like, between, in, "
                             "isNull, s_intersects, t_during; no custom functions)")
    return expr


def _common(values: dict[str, Any], *, text: bool) -> Search:
    lang = values.get("filter-lang") or values.get("filter_lang")
    if lang is not None and lang not in ("cql2-text", "cql2-json"):
        raise _bad("filter-lang", "expects cql2-text or cql2-json")
    intersects = values.get("intersects")
    if isinstance(intersects, str):
        try:
            intersects = json.loads(intersects)
        except (ValueError, RecursionError):
            raise _bad("intersects", "is not GeoJSON") from None
    if intersects is not None:
        import shapely
        from shapely.geometry import shape

        try:
            geometry = shape(intersects)
        except Exception:
            raise _bad("intersects", "is not a GeoJSON geometry") from None
        coordinates = shapely.get_coordinates(geometry)
        if not coordinates.size or not all(map(math.isfinite, coordinates.ravel().tolist())):
            raise _bad("intersects", "needs coordinates, each a finite number")
        if values.get("bbox") is not None:
            raise _bad("intersects", "bbox and intersects cannot be used together")
    start, end = _interval(values.get("datetime"))
    sortby = values.get("sortby")
    return Search(collections=_csv(values.get("collections"), "collections"), ids=_csv(values.get("ids"), "ids"),
                  bbox=_bbox(values.get("bbox")), intersects=intersects, start=start, end=end,
                  limit=_limit(values.get("limit")), offset=_token(values.get("token")),
                  filter=_filter(values.get("filter"), lang), filter_lang=lang,
                  sortby=(_sortby_text(sortby) if text else _sortby_json(sortby)) if sortby else [],
                  raw={k: v for k, v in values.items() if k != "token"})


def from_get(params: dict[str, str]) -> Search:
    return _common(dict(params), text=True)


def from_post(body: Any) -> Search:
    if not isinstance(body, dict):
        raise InvalidInput("body: expects a JSON object with search parameters")
    for key in ("bbox",):
        if isinstance(body.get(key), str):
            raise _bad(key, "expects a JSON array of numbers")
    return _common(body, text=False)


_CONTAINER = aliased(Did, name="container")  # built once: an alias per request is cyclic garbage to collect


def find_datasets(session: Session, search: Search, collections: dict[str, Did]) -> list[tuple[Did, str]]:
    """(dataset, collection id) pairs narrowed in SQL; geometry and filters are applied by ``refine``."""
    if not collections:  # nothing can match: no round trip
        return []
    container = _CONTAINER
    query = (select(Did, container.name).join(Attachment, Attachment.child_id == Did.id)
             .join(container, container.id == Attachment.parent_id)
             .where(Did.type == DidType.DATASET, container.type == DidType.CONTAINER,
                    container.id.in_([c.id for c in collections.values()])))
    if search.collections is not None:
        query = query.where(container.name.in_(search.collections))
    if search.ids is not None:
        query = query.where(Did.name.in_(search.ids))
    if search.start is not None:
        query = query.where(or_(Did.end_time >= search.start, and_(Did.end_time.is_(None),
                                                                   Did.created_at >= search.start)))
    if search.end is not None:
        query = query.where(or_(Did.start_time <= search.end, and_(Did.start_time.is_(None),
                                                                   Did.created_at <= search.end)))
    if search.bbox is not None:
        west, south, east, north = search.bbox
        query = query.where(Did.west.is_not(None), Did.south <= north, Did.north >= south)
        if west <= east:
            query = query.where(Did.west <= east, Did.east >= west)
    query = query.order_by(Did.start_time.desc(), Did.name)
    seen: set[int] = set()
    out = []
    for did, cid in session.execute(query):
        if did.id not in seen:
            seen.add(did.id)
            out.append((did, cid))
    return out


def _sort_value(item: JSONDict, name: str) -> Any:
    if name in ("id", "collection"):
        return item.get(name)
    props = item.get("properties", {})
    key = name.removeprefix("properties.")
    return props.get(key) if key != "datetime" else props.get("datetime") or props.get("start_datetime")


def refine(items: list[JSONDict], search: Search) -> list[JSONDict]:
    """Exact geometry, CQL2 filter and sort on built items."""
    if search.intersects is not None:
        from shapely.geometry import shape

        area = shape(search.intersects)
        items = [i for i in items if i.get("geometry") and shape(i["geometry"]).intersects(area)]
    if search.filter is not None:
        kept = []
        for item in items:
            try:
                if search.filter.matches(item):
                    kept.append(item)
            except Exception:  # a comparison the item cannot take part in (missing property, other type)
                continue
        items = kept
    for name, descending in reversed(search.sortby or [("datetime", True), ("id", False)]):
        present = [i for i in items if _sort_value(i, name) is not None]
        missing = [i for i in items if _sort_value(i, name) is None]
        present.sort(key=lambda i, n=name: _sort_value(i, n), reverse=descending)  # type: ignore[misc]
        items = present + missing
    return items
