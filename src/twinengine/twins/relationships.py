"""Relationships between twins: link and unlink under the app's declared types, list a twin's links, and
find the twins related to one within some hops, now or as of a valid time, with their state if asked.

A type is declared by the source twin's app (``relationships`` in its manifest): the target apps it may
reach, its cardinality, whether it is acyclic. Every change of a type first ticks that type's clock, which
locks its row, so the checks below see every committed link and a type's changes are never out of order.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.catalog.manifest import Cardinality, RelationshipSpec
from twinengine.errors import Conflict, NotFound, ValidationFailed
from twinengine.quality.stored import unpack
from twinengine.store.base import upsert, utcnow
from twinengine.twins import graph, visibility
from twinengine.twins.models import StateHead, Twin
from twinengine.twins.relationship_models import LinkClock, TwinLink
from twinengine.twins.relationship_schemas import Direction, LinkRead, RelatedPage, RelatedTwin
from twinengine.twins.schemas import PropertyValue, StateKind, TwinState
from twinengine.twins.service import get_twin, manifest_for, read_state

__all__ = ["link", "list_links", "related", "unlink"]

_SOURCE_LIMITED = (Cardinality.ONE_TO_ONE, Cardinality.MANY_TO_ONE)  # a source has one target at most
_TARGET_LIMITED = (Cardinality.ONE_TO_ONE, Cardinality.ONE_TO_MANY)  # a target has one source at most


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _declared(session: Session, source: Twin, type: str) -> RelationshipSpec:
    manifest = manifest_for(session, source)
    spec = manifest.relationships.get(type)
    if spec is None:
        known = ", ".join(sorted(manifest.relationships)) or "none"
        raise ValidationFailed.one("type", f"{type!r} is not a relationship type of {manifest.ref} "
                                           f"(declared: {known})")
    return spec


def _find(session: Session, ref: str) -> Twin:
    """The target named in a body: not finding it is a problem with that field, not with the path."""
    twin = session.get(Twin, ref) if ref.startswith("tw-") else None
    twin = twin or session.scalar(select(Twin).where(Twin.name == ref))
    if twin is None:
        raise ValidationFailed.one("target", f"no twin with id or name {ref!r}")
    return twin


def _tick(session: Session, type: str, at: datetime | None, loc: str) -> tuple[int, datetime]:
    """Number the type's next change and give its time: ``at`` (not in the future, not before the type's
    latest change) or now. The upsert locks the clock's row until the transaction ends."""
    now = utcnow()
    if at is not None and at > now:
        raise ValidationFailed.one(loc, f"{at.isoformat()} is in the future (now is {now.isoformat()})")
    statement = upsert(session.get_bind().dialect.name, LinkClock).values(type=type, revision=1, changed_at=at or now)
    statement = statement.on_conflict_do_update(index_elements=["type"], set_={"revision": LinkClock.revision + 1})
    revision, latest = session.execute(statement.returning(LinkClock.revision, LinkClock.changed_at)).one()
    latest = _utc(latest) or now
    if at is not None and at < latest:
        raise ValidationFailed.one(loc, f"{at.isoformat()} is before the latest change of {type!r} "
                                        f"({latest.isoformat()}): a type's links change in time order")
    when = at or max(now, latest)
    session.execute(update(LinkClock).where(LinkClock.type == type).values(changed_at=when)
                    .execution_options(synchronize_session=False))
    return revision, when


def _open(type: str, **ends: str) -> ColumnElement[bool]:
    columns = {"source": TwinLink.source_id, "target": TwinLink.target_id}
    return and_(TwinLink.type == type, TwinLink.valid_to.is_(None), *(columns[k] == v for k, v in ends.items()))


def _names(session: Session, ids: list[str]) -> dict[str, str]:
    return {row.id: row.name for row in session.execute(select(Twin.id, Twin.name).where(Twin.id.in_(ids)))}


def link(session: Session, *, principal: Principal, ref: str, type: str, target: str,
         at: datetime | None = None) -> TwinLink:
    """Link ``ref`` to ``target`` by ``type``: needs operate on the source and read on the target."""
    source = get_twin(session, principal=principal, ref=ref, action="twin.operate")
    spec = _declared(session, source, type)
    goal = _find(session, target)
    if goal.id == source.id:
        raise ValidationFailed.one("target", f"a twin cannot be linked to itself ({source.name} {type} "
                                             f"{source.name})")
    if goal.app_name not in spec.targets:
        raise ValidationFailed.one("target", f"{goal.name} is a twin of {goal.app_name}; {type} links "
                                             f"{source.app_name} twins to twins of {', '.join(spec.targets)}")
    get_twin(session, principal=principal, ref=goal.id, action="twin.read")
    revision, when = _tick(session, type, _utc(at), "at")
    if session.scalar(select(TwinLink.id).where(_open(type, source=source.id, target=goal.id))) is not None:
        raise Conflict(f"{source.name} {type} {goal.name} holds already")
    _check_cardinality(session, spec, type, source, goal)
    if spec.acyclic:
        path = graph.path_between(session, goal.id, source.id, type=type)
        if path is not None:
            names = _names(session, path)
            cycle = " → ".join(names[i] for i in [*path, goal.id])
            raise ValidationFailed.one("target", f"{type} is acyclic and this link would close a cycle: {cycle}")
    row = TwinLink(type=type, source_id=source.id, target_id=goal.id, valid_from=when, opened_revision=revision,
                   opened_by=principal.name)
    session.add(row)
    session.flush()
    return row


def _check_cardinality(session: Session, spec: RelationshipSpec, type: str, source: Twin, goal: Twin) -> None:
    rule = spec.cardinality.value
    if spec.cardinality in _SOURCE_LIMITED:
        taken = session.scalar(select(TwinLink.target_id).where(_open(type, source=source.id)).limit(1))
        if taken is not None:
            raise ValidationFailed.one("target", f"{source.name} {type} {_names(session, [taken])[taken]} "
                                                 f"already, and {type} is {rule}: unlink that first")
    if spec.cardinality in _TARGET_LIMITED:
        taken = session.scalar(select(TwinLink.source_id).where(_open(type, target=goal.id)).limit(1))
        if taken is not None:
            raise ValidationFailed.one("target", f"{_names(session, [taken])[taken]} {type} {goal.name} "
                                                 f"already, and {type} is {rule}: unlink that first")


def unlink(session: Session, *, principal: Principal, ref: str, type: str, target: str,
           at: datetime | None = None) -> TwinLink:
    """Close the open ``type`` link from ``ref`` to ``target`` (kept, with its span, for reads in the past)."""
    source = get_twin(session, principal=principal, ref=ref, action="twin.operate")
    goal = _find(session, target)
    revision, when = _tick(session, type, _utc(at), "at")
    row = session.scalar(select(TwinLink).where(_open(type, source=source.id, target=goal.id)))
    if row is None:
        raise NotFound(f"no {type} link from {source.name} to {goal.name} holds now")
    row.valid_to, row.closed_revision, row.closed_by = when, revision, principal.name
    session.flush()
    return row


def visible_to(principal: Principal) -> ColumnElement[bool] | None:
    """Twins ``principal`` may read, as a condition on ``Twin`` (None: every twin, for admins)."""
    return visibility.visible_to(principal)


def list_links(session: Session, *, principal: Principal, ref: str, type: str | None = None,
               direction: Direction = Direction.OUT, at: datetime | None = None, history: bool = False,
               limit: int = 1000) -> list[TwinLink]:
    """A twin's links whose other end the caller may read: those holding now or at ``at``, or every link
    it ever had (``history``), oldest first."""
    twin = get_twin(session, principal=principal, ref=ref)
    visible = visible_to(principal)
    rows: list[TwinLink] = []
    ends = {Direction.OUT: [(TwinLink.source_id, TwinLink.target_id)],
            Direction.IN: [(TwinLink.target_id, TwinLink.source_id)]}
    for begin, end in ends.get(direction, ends[Direction.OUT] + ends[Direction.IN]):
        query = select(TwinLink).join(Twin, Twin.id == end).where(begin == twin.id)
        if type is not None:
            query = query.where(TwinLink.type == type)
        if not history:
            query = query.where(graph.live_at(_utc(at)))
        if visible is not None:
            query = query.where(visible)
        rows += session.scalars(query.order_by(TwinLink.valid_from, TwinLink.id).limit(limit))
    return sorted(rows, key=lambda r: (r.valid_from, r.id))[:limit]


def related(session: Session, *, principal: Principal, ref: str, type: str | None = None,
            direction: Direction = Direction.OUT, depth: int = 1, at: datetime | None = None,
            with_state: bool = False, limit: int = 1000) -> RelatedPage:
    """The twins within ``depth`` hops of ``ref`` along ``type`` links (any type when None), as the graph
    was at ``at`` (default now); with their state now (from the heads) or as of ``at`` when asked."""
    start = get_twin(session, principal=principal, ref=ref)
    at = _utc(at)
    found, truncated = graph.traverse(session, start.id, type=type, direction=direction, depth=depth, at=at,
                                      visible=visible_to(principal), limit=limit)
    states: dict[str, TwinState] = {}
    if with_state and found:
        twins = [r.twin for r in found]
        states = current_states(session, twins) if at is None else {
            t.id: read_state(session, principal=principal, ref=t.id, at=at) for t in twins}
    items = [RelatedTwin(id=r.twin.id, name=r.twin.name, app=f"{r.twin.app_name}@{r.twin.app_version}",
                         depth=r.depth, via=LinkRead.model_validate(r.link), state=states.get(r.twin.id))
             for r in found]
    return RelatedPage(twin_id=start.id, type=type, direction=direction, depth=depth, at=at, items=items,
                       truncated=truncated)


def current_states(session: Session, twins: list[Twin]) -> dict[str, TwinState]:
    """The current state of many twins from their heads: one query per 500 twins, whatever their history."""
    values: dict[str, dict[StateKind, dict[str, PropertyValue]]] = defaultdict(lambda: defaultdict(dict))
    ids = [t.id for t in twins]
    for i in range(0, len(ids), 500):
        columns = (StateHead.twin_id, StateHead.property, StateHead.kind, StateHead.revision, StateHead.value,
                   StateHead.unit, StateHead.timestamp)  # plain rows: no heads kept in the identity map
        for head in session.execute(select(*columns).where(StateHead.twin_id.in_(ids[i:i + 500]))):
            value, uncertainty, quality = unpack(head.value)
            values[head.twin_id][StateKind(head.kind)][head.property] = PropertyValue(
                value=value, unit=head.unit, timestamp=head.timestamp, revision=head.revision,
                uncertainty=uncertainty, quality=quality)
    out = {}
    for twin in twins:
        kinds: Any = values.get(twin.id, {})
        reported = dict(sorted(kinds.get(StateKind.REPORTED, {}).items()))
        desired = dict(sorted(kinds.get(StateKind.DESIRED, {}).items()))
        newest = max((v.revision for v in [*reported.values(), *desired.values()]), default=0)
        delta = {p: v.value for p, v in desired.items() if p not in reported or reported[p].value != v.value}
        out[twin.id] = TwinState(twin_id=twin.id, revision=newest, at=None, reported=reported, desired=desired,
                                 delta=delta)
    return out

