"""Fleets: find twins by app, tag, parameter, state value and place, page through them by keyset, and
aggregate a state property over them in one query. Every public function checks the policy first.

Listing orders by the unique twin name and continues after the last name seen, so a page costs an index
range whatever its depth, and twins created meanwhile neither repeat nor shift a page. Values come from the
heads' numeric copy (``state_heads.num_value``). Aggregates run in SQL (count, mean, min, max; quantiles
too on PostgreSQL); on SQLite a request with quantiles fetches (group, value) once and numpy computes all.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Select, and_, exists, func, literal, or_, select
from sqlalchemy.orm import Session, aliased, selectinload

from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.catalog.manifest import parse_app_ref
from twinengine.catalog.models import AppVersion
from twinengine.catalog.service import manifest_by_digest
from twinengine.store.base import LIMIT_ONE
from twinengine.twins import places
from twinengine.twins.fleet_filters import Condition, Json, bad, parameter_clause, parameter_key, parse, state_clause
from twinengine.twins.models import StateHead, StateValue, Twin, TwinTag
from twinengine.twins.places import BBox
from twinengine.twins.schemas import APP_REF
from twinengine.twins.service import get_twin
from twinengine.twins.state_quality import stale_limits
from twinengine.twins.visibility import visible_to

__all__ = ["STATS", "FleetFilter", "Group", "aggregate", "decode_cursor", "encode_cursor", "list_fleet",
           "parse_filter", "set_placement"]

STATS = ("count", "mean", "min", "max")
_MAX_EXCLUDED = 50_000
_PROPERTY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class FleetFilter:
    app: str | None = None
    tags: tuple[str, ...] = ()
    bbox: BBox | None = None
    state: tuple[Condition, ...] = ()
    parameters: tuple[Condition, ...] = ()
    stale: tuple[str, ...] = ()  # reported properties stale now (their app's gap check)


@dataclass
class Group:
    key: str | None
    count: int
    mean: float | None = None
    min: float | None = None
    max: float | None = None
    quantiles: dict[str, float | None] = field(default_factory=dict)


def parse_filter(*, app: str | None = None, tags: Sequence[str] = (), bbox: str | None = None,
                 state: Sequence[str] = (), parameter: Sequence[str] = (), stale: Sequence[str] = ()) -> FleetFilter:
    """Query parameters as the API and CLI take them; bad ones are a 400 naming the parameter."""
    if app and not re.match(APP_REF, app):
        raise bad("app", f"{app!r} is not NAME or NAME@VERSION")
    for tag in tags:
        if not places.is_tag(tag):
            raise bad("tag", f"{tag!r} is not a tag: use 1-64 of a-z 0-9 - _ . :")
    box = None
    if bbox is not None:
        try:
            box = places.parse_bbox(bbox)
        except Exception as exc:
            raise bad("bbox", str(getattr(exc, "problems", [exc])[0]).removeprefix("bbox: ")) from None
    for name in stale:
        if not _PROPERTY.match(name):
            raise bad("stale", f"{name!r} is not a state property name")
    return FleetFilter(app=app or None, tags=tuple(tags), bbox=box,
                       state=tuple(parse(s, "state", state=True) for s in state),
                       parameters=tuple(parse(p, "parameter", state=False) for p in parameter),
                       stale=tuple(dict.fromkeys(stale)))


def _bbox_overlaps(box: BBox) -> ColumnElement[bool]:
    minx, miny, maxx, maxy = box
    return and_(Twin.bbox_minx <= maxx, Twin.bbox_maxx >= minx, Twin.bbox_miny <= maxy, Twin.bbox_maxy >= miny)


def _where(session: Session, principal: Principal, filt: FleetFilter, *, page: bool = True
           ) -> list[ColumnElement[bool]]:
    """The filter as SQL conditions on ``twins`` (the bbox only as its index prefilter); state and parameter
    conditions as a seek per twin for a page, as one set of ids for an aggregate."""
    json_ = Json(session.get_bind().dialect.name)
    where: list[ColumnElement[bool]] = []
    visible = visible_to(principal)
    if visible is not None:
        where.append(visible)
    if filt.app:
        name, version = parse_app_ref(filt.app)
        where.append(Twin.app_name == name)
        if version:
            where.append(Twin.app_version == version)
    for tag in filt.tags:  # an alias each: ``by=tag`` joins the tag rows too
        tagged = aliased(TwinTag)
        where.append(exists().where(tagged.tag == tag, tagged.twin_id == Twin.id))
    if filt.bbox is not None:
        where.append(_bbox_overlaps(filt.bbox))
    where += [state_clause(json_, c, per_twin=page) for c in filt.state]
    where += [parameter_clause(json_, c, per_twin=page) for c in filt.parameters]
    if filt.stale:
        now = datetime.now(UTC)
        where += [_stale(session, name, filt.app, now) for name in filt.stale]
    return where


def _stale(session: Session, name: str, app: str | None, now: datetime) -> ColumnElement[bool]:
    """Twins whose reported ``name`` is stale at ``now``: older than the silence their app version's gap check
    on it allows (as a state read judges it). The app versions are few and their manifests cached, so each
    distinct limit becomes one seek on the heads per twin; a twin whose app has no such check never matches."""
    versions = select(AppVersion.id, AppVersion.archive_sha256)
    if app:
        app_name, version = parse_app_ref(app)
        versions = versions.where(AppVersion.name == app_name)
        if version:
            versions = versions.where(AppVersion.version == version)
    by_limit: dict[timedelta, list[int]] = defaultdict(list)
    for app_id, digest in session.execute(versions):
        limit = stale_limits(manifest_by_digest(session, app_id, digest)).get(name)
        if limit is not None:
            by_limit[limit].append(app_id)
    if not by_limit:
        raise bad("stale", f"no app{' ' + app if app else ''} declares a gap check on the state property "
                           f"{name!r}: staleness is judged by that check")
    return or_(*(and_(Twin.app_id.in_(ids), exists().where(
        StateHead.twin_id == Twin.id, StateHead.property == name, StateHead.kind == "reported",
        StateHead.timestamp < now - limit)) for limit, ids in sorted(by_limit.items())))


def _exact(rows: Sequence[Twin], box: BBox | None) -> list[Twin]:
    """Drop the twins whose bbox overlaps ``box`` but whose shape does not (points pass as they are)."""
    if box is None:
        return list(rows)
    areas = [t for t in rows if (t.bbox_minx, t.bbox_miny) != (t.bbox_maxx, t.bbox_maxy)]
    if not areas:
        return list(rows)
    misses = {t.id for t, hit in zip(areas, places.intersecting([t.location for t in areas], box), strict=True)
              if not hit}
    return [t for t in rows if t.id not in misses]


def encode_cursor(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        name = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        name = ""
    if not name:
        raise bad("cursor", "not a cursor this API gave out (use the page's next link)")
    return name


def list_fleet(session: Session, *, principal: Principal, filt: FleetFilter, limit: int = 50,
               cursor: str | None = None) -> tuple[list[Twin], str | None]:
    """One page of the twins the caller may see that match ``filt``, by name; and the next page's cursor."""
    require(principal, "twin.list")
    where = _where(session, principal, filt)
    after = decode_cursor(cursor) if cursor else None
    page: list[Twin] = []
    while True:
        query = select(Twin).where(*where).order_by(Twin.name).limit(limit + 1)
        if after is not None:
            query = query.where(Twin.name > after)
        rows = list(session.scalars(query.options(selectinload(Twin.grants))))
        batch = rows[:limit]
        page += _exact(batch, filt.bbox)
        if len(page) >= limit:
            page = page[:limit]
            more = len(rows) > limit or page[-1] is not batch[-1]
            return page, (encode_cursor(page[-1].name) if more else None)
        if len(rows) <= limit:
            return page, None
        after = batch[-1].name  # shapes missed the box: fill the page from further on


def _excluded(session: Session, where: list[ColumnElement[bool]], box: BBox | None) -> list[str]:
    """Ids of twins with an area whose bbox overlaps ``box`` but whose shape does not."""
    if box is None:
        return []
    area = or_(Twin.bbox_minx < Twin.bbox_maxx, Twin.bbox_miny < Twin.bbox_maxy)
    rows = session.execute(select(Twin.id, Twin.location).where(*where, area)).all()
    if not rows:
        return []
    hits = places.intersecting([r.location for r in rows], box)
    missed = [r.id for r, hit in zip(rows, hits, strict=True) if not hit]
    if len(missed) > _MAX_EXCLUDED:
        raise bad("bbox", f"more than {_MAX_EXCLUDED} shapes only touch the box's corners: narrow the filter")
    return missed


@dataclass(frozen=True)
class _Key:
    """A group key's SQL, with what it reads beside the twin: the tag rows (joined: a twin counts in each
    of its tags) or a parameter's index row (outer-joined: a twin without it groups under NULL)."""

    sql: Any
    tags: bool = False
    row: Any = None  # an alias of TwinParameter
    name: str = ""

    def join(self, query: Select[Any]) -> Select[Any]:
        if self.tags:
            query = query.join(TwinTag, TwinTag.twin_id == Twin.id)
        if self.row is not None:
            query = query.outerjoin(self.row, and_(self.row.twin_id == Twin.id, self.row.name == self.name))
        return query


def _group_key(session: Session, by: str | None) -> _Key:
    if by is None:
        return _Key(literal(None))
    if by == "app":
        return _Key(Twin.app_name + "@" + Twin.app_version)
    if by == "tag":
        return _Key(TwinTag.tag, tags=True)
    if by.startswith("parameter:") and len(by) > len("parameter:"):
        name = by.split(":", 1)[1]
        key, row = parameter_key(Json(session.get_bind().dialect.name), name)
        return _Key(key, row=row, name=name)
    raise bad("by", f"{by!r}: group by app, tag or parameter:NAME")


def _values(session: Session, where: list[ColumnElement[bool]], key: _Key, prop: str, kind: str,
            at: datetime | None) -> Select[Any]:
    """(g, v): each matching twin's group key and numeric value of ``prop``, now (the head's ``num_value``)
    or as of ``at``."""
    if at is None:
        query = (select(key.sql.label("g"), StateHead.num_value.label("v"))
                 .join_from(Twin, StateHead, and_(StateHead.twin_id == Twin.id, StateHead.property == prop,
                                                  StateHead.kind == kind, StateHead.num_value.is_not(None))))
        return key.join(query).where(*where)
    # As of a time: per twin, one backward seek on the log's time index finds the value (as in
    # twins/state.py), read as a number in the same subquery.
    json_ = Json(session.get_bind().dialect.name)
    picked = (select(json_.value_number(StateValue.value))
              .where(StateValue.twin_id == Twin.id, StateValue.property == prop, StateValue.kind == kind,
                     StateValue.timestamp <= at)
              .order_by(StateValue.timestamp.desc(), StateValue.revision.desc()).limit(LIMIT_ONE)
              .correlate(Twin).scalar_subquery())
    query = select(key.sql.label("g"), picked.label("v")).select_from(Twin)
    return key.join(query).where(*where)


def aggregate(session: Session, *, principal: Principal, filt: FleetFilter, prop: str, kind: str = "reported",
              by: str | None = None, quantiles: Sequence[float] = (), at: datetime | None = None) -> list[Group]:
    """Count, mean, min, max (and quantiles) of a numeric state property over the matching twins, per group;
    twins without a numeric value of it are not counted."""
    require(principal, "twin.list")
    for q in quantiles:
        if not 0 <= q <= 1:
            raise bad("quantile", f"{q} is not in [0, 1]")
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    where = _where(session, principal, filt, page=False)
    missed = _excluded(session, where, filt.bbox)
    if missed:
        where.append(Twin.id.notin_(missed))
    values = _values(session, where, _group_key(session, by), prop, kind, at)
    if session.get_bind().dialect.name != "postgresql" and quantiles:
        return _numpy_groups(session, values, quantiles)
    # Materialized: a flattened subquery would repeat the as-of seek once per statistic (SQLite does).
    rows = values.cte("picked").prefix_with("MATERIALIZED") if at is not None else values.subquery()
    value = rows.c.v
    columns = [rows.c.g, func.count(value), func.avg(value), func.min(value), func.max(value)]
    columns += [func.percentile_cont(q).within_group(value) for q in quantiles]  # PostgreSQL only
    with _without_jit(session):
        found = session.execute(select(*columns).group_by(rows.c.g).order_by(rows.c.g)).all()
    groups = []
    for row in found:
        if not row[1]:
            continue
        groups.append(Group(key=None if row[0] is None else str(row[0]), count=int(row[1]), mean=_float(row[2]),
                            min=_float(row[3]), max=_float(row[4]),
                            quantiles={_q(q): _float(v) for q, v in zip(quantiles, row[5:], strict=True)}))
    return groups


@contextmanager
def _without_jit(session: Session) -> Iterator[None]:
    """PostgreSQL's JIT off for the statements inside: one index seek per twin looks costly to the planner,
    whose JIT compilation then took 0.4 s of a 1.3 s "as of" aggregate over 100,000 twins and saved nothing.
    In a transaction ``SET LOCAL`` ends with it; a read-only unit of work runs in autocommit
    (``store.engine``), where the setting is the connection's until it is reset."""
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    connection = session.connection()
    if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        connection.exec_driver_sql("SET LOCAL jit = off")
        yield
        return
    connection.exec_driver_sql("SET jit = off")
    try:
        yield
    finally:
        connection.exec_driver_sql("RESET jit")


def _numpy_groups(session: Session, values: Select[Any], quantiles: Sequence[float]) -> list[Group]:
    """SQLite has no percentile function: fetch the (group, value) pairs once and let numpy compute every
    statistic (one pass over the join instead of two), groups ordered as SQLite orders them (NULL first)."""
    found: dict[str | None, list[float]] = defaultdict(list)
    for g, v in session.execute(values):
        if v is not None:
            found[None if g is None else str(g)].append(v)
    groups = []
    for group_key in sorted(found, key=lambda k: (k is not None, k or "")):
        data = np.asarray(found[group_key], dtype=float)
        cuts = np.quantile(data, list(quantiles))
        groups.append(Group(key=group_key, count=int(data.size), mean=float(data.mean()), min=float(data.min()),
                            max=float(data.max()), quantiles={_q(q): float(c) for q, c in zip(quantiles, cuts,
                                                                                               strict=True)}))
    return groups


def _q(q: float) -> str:
    return f"{q:g}"


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def set_placement(session: Session, *, principal: Principal, ref: str, tags: Sequence[str] | None = None,
                  location: dict[str, Any] | None = None, clear_location: bool = False) -> Twin:
    """Replace a twin's tags and/or location (owner or admin, like other edits of a twin)."""
    twin = get_twin(session, principal=principal, ref=ref, action="twin.manage")
    places.place(session, twin, tags=tags, location=location, clear_location=clear_location)
    session.flush()
    return twin
