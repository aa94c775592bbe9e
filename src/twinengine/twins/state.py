"""A twin's event-sourced state: append revisions, read the state as of a revision or a time, list a
property's history, diff two revisions. Functions here take an already authorized ``Twin``.

The log (``state_revisions``, ``state_values``) is the truth. ``state_heads`` holds each property's newest
value, written with every revision: the current state is read from it, and a read "as of" a revision or
a time does one index seek into the log per property it names. No read ranks the history.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Result,
    Select,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.orm import Session

from twinengine.catalog import state_keys
from twinengine.catalog.manifest import Manifest
from twinengine.errors import Problem, RevisionNotFound, ValidationFailed
from twinengine.quality.spec import FLAGS, Flag
from twinengine.quality.stored import unpack
from twinengine.store.base import LIMIT_ONE, utcnow
from twinengine.twins import log_writes, state_checks, state_quality
from twinengine.twins.log_writes import number_of
from twinengine.twins.models import StateHead, StateRevision, StateValue, Twin
from twinengine.twins.new_values import NewValue
from twinengine.twins.schemas import (
    DiffEntry,
    PropertyRead,
    PropertyValue,
    PropertyWrite,
    RevisionRead,
    StateDiff,
    StateKind,
    TwinState,
    ValueChange,
)
from twinengine.twins.state_quality import Keep
from twinengine.twins.validation import check_uncertainty, check_value

__all__ = [
    "NewValue",
    "Pending",
    "Snapshot",
    "StateOf",
    "append_revision",
    "append_revisions",
    "diff",
    "get_revision",
    "heads",
    "history",
    "number_of",
    "read_property",
    "read_state",
    "rebuild_heads",
    "revision_read",
    "revisions",
    "snapshot_at_revision",
    "validate_write",
]


class StateOf(Protocol):
    """What a state read needs of its twin: an ORM ``Twin``, or a plain row read for the purpose
    (``twins.service.TwinForRead``)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def head_revision(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...


# (property, kind) → value, as read from the log
Snapshot = dict[tuple[str, StateKind], PropertyValue]


def validate_write(manifest: Manifest, writes: dict[StateKind, dict[str, PropertyWrite]]) -> list[NewValue]:
    """Check every written property against the app's ``state`` declaration; report all problems at once."""
    now = utcnow()
    problems: list[Problem] = []
    values: list[NewValue] = []
    if not any(writes.values()):
        raise ValidationFailed.one("reported", "nothing to write: give reported and/or desired properties")
    for kind, properties in writes.items():
        for name, write in properties.items():
            loc = f"{kind.value}.{name}"
            try:
                base, declared, _key = state_keys.resolve(manifest, name)
            except state_keys.KeyProblem as exc:
                problems.append(Problem(loc, str(exc)))
                continue
            if declared.desired_only and kind is StateKind.REPORTED:
                problems.append(Problem(loc, f"{base!r} is set by users as desired state only (desired_only in "
                                             "the app's twinapp.yaml); the twin never reports it"))
                continue
            value, unit, found = check_value(loc, declared, write.value, write.unit)
            uncertainty, more = check_uncertainty(loc, declared, write.uncertainty, write.unit)
            problems += found + more
            stamp = write.timestamp or now
            if stamp.tzinfo is None:
                problems.append(Problem(f"{loc}.timestamp", "needs a time zone (e.g. 2026-01-01T00:00:00Z)"))
            values.append(NewValue(name, kind, value, unit, stamp, uncertainty))
    if problems:
        raise ValidationFailed(problems)
    return values


def append_revision(
    session: Session, twin: Twin, values: list[NewValue], *, author: str, message: str | None,
    manifest: Manifest | None = None,
) -> RevisionRead:
    """Append one revision. The counter update locks the twin's row, so concurrent writers queue and
    revision numbers stay gap-free (SQLite serialises writers with BEGIN IMMEDIATE); on PostgreSQL the
    counter, the revision, its values and the heads are one statement (``log_writes``). With the twin's
    ``manifest``, reported values are judged by their properties' quality checks first (``None``: values
    already judged, as a fork's copies)."""
    if manifest is not None:
        values = state_checks.judge(session, twin.id, manifest, [values])[0]
    now = utcnow()
    number = log_writes.append_one(session, twin, values, author=author, message=message, now=now)
    return revision_read(twin.id, number, values, recorded_at=now, author=author, message=message)


def revision_read(twin_id: str, number: int, values: list[NewValue], *, recorded_at: datetime, author: str,
                  message: str | None) -> RevisionRead:
    """The answer to a write of one revision, as appended."""
    changes = [ValueChange(property=v.property, kind=v.kind, value=v.value, unit=v.unit, timestamp=v.timestamp,
                           uncertainty=v.uncertainty, quality=v.quality) for v in values]
    return RevisionRead(twin_id=twin_id, revision=number, recorded_at=recorded_at, author=author, message=message,
                        changes=changes)


# One revision to append: its values and its message.
Pending = tuple[list[NewValue], str | None]


def append_revisions(session: Session, batch: list[tuple[Twin, list[Pending]]], *, author: str,
                     manifests: dict[str, Manifest] | None = None) -> dict[str, int]:
    """Append many revisions of many twins in the caller's transaction; returns each twin's first new
    number (its revisions follow on, in the order given). Twins are locked in id order, so two batches
    naming the same twins queue instead of deadlocking; each twin's counter moves once, by its count.
    ``manifests`` (by twin id) judge reported values by their quality checks, as ``append_revision`` does."""
    if manifests:
        batch = [(twin, _judged(session, twin, manifests.get(twin.id), pending)) for twin, pending in batch]
    now = utcnow()
    last = log_writes.take_numbers(session, {twin.id: len(pending) for twin, pending in batch}, now)
    first: dict[str, int] = {}
    rows: list[log_writes.LogRow] = []
    for twin, pending in sorted(batch, key=lambda entry: entry[0].id):
        first[twin.id] = start = last[twin.id] - len(pending) + 1
        rows += [(twin.id, start + i, values, message) for i, (values, message) in enumerate(pending)]
    log_writes.insert_log(session, rows, author=author, now=now)
    return first


def _judged(session: Session, twin: Twin, manifest: Manifest | None, pending: list[Pending]) -> list[Pending]:
    if manifest is None:
        return pending
    judged = state_checks.judge(session, twin.id, manifest, [values for values, _message in pending])
    return [(values, message) for values, (_old, message) in zip(judged, pending, strict=True)]


# Plain rows, not ORM objects: nothing to keep in the identity map, and no stale heads after a rebuild.
_HEAD = (StateHead.property, StateHead.kind, StateHead.revision, StateHead.value, StateHead.unit, StateHead.timestamp)
_VALUE = (StateValue.id, StateValue.revision, StateValue.value, StateValue.unit, StateValue.timestamp)


def _value(row: Any) -> PropertyValue:
    value, uncertainty, quality = unpack(row.value)
    return PropertyValue(value=value, unit=row.unit, timestamp=row.timestamp, revision=row.revision,
                         uncertainty=uncertainty, quality=quality)


def heads(session: Session, twin_id: str) -> Snapshot:
    """The heads as stored: one short index range, whatever the length of the history."""
    rows = session.execute(select(*_HEAD).where(StateHead.twin_id == twin_id))
    return {(row.property, StateKind(row.kind)): _value(row) for row in rows}


_HEADS = cast(Table, StateHead.__table__).c
_VALUES = cast(Table, StateValue.__table__).c


def _pick(twin_id: Any, condition: ColumnElement[bool], order: list[Any], *outer: Any) -> Any:
    """For the head row in scope: the id of the value a read "as of" sees, by a backward seek on an index of
    the log that begins (twin, property, kind) and ends in ``order``. ``twin_id``: a value or a bound
    parameter; ``outer``: other tables of the enclosing statement the seek refers to."""
    return (select(_VALUES.id)
            .where(_VALUES.twin_id == twin_id, _VALUES.property == _HEADS.property, _VALUES.kind == _HEADS.kind,
                   condition)
            .order_by(*order).limit(LIMIT_ONE).correlate(StateHead.__table__, *outer).scalar_subquery())


def _unfiltered_as_of(at_time: bool) -> Select[Any]:
    """The heads with, for each, the id of the value a read "as of" a revision (``:revision``) or a valid time
    (``:at``) sees, as one statement of the tables' own columns: built and compiled once, run through the
    session's connection, so a read pays neither building the expression nor the ORM's execution layer."""
    if at_time:
        pick = _pick(bindparam("twin_id"), _VALUES.timestamp <= bindparam("at"),
                     [_VALUES.timestamp.desc(), _VALUES.revision.desc()])
    else:
        revision: BindParameter[int] = bindparam("revision", type_=Integer)
        pick = case((_HEADS.revision <= revision, None),
                    else_=_pick(bindparam("twin_id"), _VALUES.revision <= revision, [_VALUES.revision.desc()]))
    columns = [getattr(_HEADS, c.key) for c in _HEAD]
    return select(*columns, pick.label("pick")).where(_HEADS.twin_id == bindparam("twin_id"))


_AS_OF_REVISION = _unfiltered_as_of(at_time=False)
_AS_OF_TIME = _unfiltered_as_of(at_time=True)
_VALUES_BY_ID = select(*(getattr(_VALUES, c.key) for c in _VALUE)).where(
    _VALUES.id.in_(bindparam("ids", expanding=True)))


def current_columns(twins: Table) -> list[Any]:
    """The heads' columns (and ``pick``, as ``_unfiltered_as_of`` as of the twin's own head revision) for a
    statement that outer-joins ``state_heads`` to the row of ``twins``: the current state and the twin it
    belongs to in one round trip, read from one snapshot. ``current_snapshot`` reads its rows."""
    head = cast(Any, twins.c).head_revision
    pick = case((_HEADS.revision <= head, None),
                else_=_pick(cast(Any, twins.c).id, _VALUES.revision <= head, [_VALUES.revision.desc()], twins))
    return [*(getattr(_HEADS, c.key) for c in _HEAD), pick.label("pick")]


def current_snapshot(session: Session, rows: Iterable[Any], head_revision: int) -> Snapshot:
    """The snapshot at ``head_revision`` from the rows of a statement with ``current_columns`` (a row whose
    ``property`` is null is a twin without heads)."""
    return _collect(session, (row for row in rows if row.property is not None), head_revision, None)


def heads_snapshot(rows: Iterable[Any], head_revision: int) -> Snapshot | None:
    """``current_snapshot`` when the heads answer alone, with no statement; None when one of them is newer
    than ``head_revision`` and its value at that revision must be read (``pick``: a write committed between
    the reads of the twin and of its heads)."""
    heads = [row for row in rows if row.property is not None]
    if any(row.revision > head_revision and row.pick is not None for row in heads):
        return None
    return {(row.property, StateKind(row.kind)): _value(row) for row in heads if row.revision <= head_revision}


def _as_of(session: Session, twin_id: str, revision: int | None, at: datetime | None, keep: Keep = None
           ) -> Snapshot:
    """The state as of a revision or a valid time: the heads name the (property, kind) pairs, and each pair
    costs one index seek into the log, so the read grows with the number of properties, not of revisions.
    A head not newer than the revision asked for is its own answer.

    With ``keep`` (a quality filter), the seek skips the values whose flag is not kept: it walks the same
    index backwards from the newest value in scope, so it reads one row more per newer flagged value of that
    property; a head that is in scope and kept is still its own answer."""
    rows: Result[Any]
    if keep is None:
        rows = session.connection().execute(*(
            (_AS_OF_TIME, {"twin_id": twin_id, "at": at}) if at is not None
            else (_AS_OF_REVISION, {"twin_id": twin_id, "revision": revision})))
    else:
        dialect = session.get_bind().dialect.name
        passes = state_quality.keeps(StateValue.value, dialect, keep)
        if at is not None:
            pick = _pick(twin_id, and_(StateValue.timestamp <= at, passes),
                         [StateValue.timestamp.desc(), StateValue.revision.desc()])
            columns = [*_HEAD, pick.label("pick")]
        else:
            own = and_(StateHead.revision <= revision, state_quality.keeps(StateHead.value, dialect, keep))
            pick = case((own, None), else_=_pick(twin_id, and_(StateValue.revision <= revision, passes),
                                                  [StateValue.revision.desc()]))
            columns = [*_HEAD, pick.label("pick"), own.label("own")]
        rows = session.execute(select(*columns).where(StateHead.twin_id == twin_id))
    return _collect(session, rows, revision, keep)


def _collect(session: Session, rows: Iterable[Any], revision: int | None, keep: Keep) -> Snapshot:
    """The snapshot from head rows with their ``pick`` (and ``own``, with a filter): the values the heads
    answer themselves, and the picked ones in one more statement."""
    found: Snapshot = {}
    wanted: dict[int, tuple[str, StateKind]] = {}
    for head in rows:
        key = (head.property, StateKind(head.kind))
        # As of a revision, a head not newer than it (and kept, with a filter) is its own answer; as of a
        # time, every answer comes from the seek.
        if revision is not None and (head.revision <= revision if keep is None else head.own):
            found[key] = _value(head)
        elif head.pick is not None:
            wanted[head.pick] = key
    if wanted:
        for row in session.connection().execute(_VALUES_BY_ID, {"ids": list(wanted)}):
            found[wanted[row.id]] = _value(row)
    return found


def snapshot_at_revision(session: Session, twin: StateOf, revision: int, keep: Keep = None) -> Snapshot:
    if revision < 0 or revision > twin.head_revision:
        raise RevisionNotFound(f"twin {twin.name} has revisions 0..{twin.head_revision}, not {revision}")
    # Also for the head revision: a revision committed since the twin's row was read (PostgreSQL reads each
    # statement afresh) has newer heads, which must not show up under the older number.
    return _as_of(session, twin.id, revision, None, keep)


def read_state(session: Session, twin: StateOf, *, revision: int | None = None, at: datetime | None = None,
               quality: Iterable[Flag] | None = None, manifest: Manifest | None = None,
               current: Snapshot | None = None) -> TwinState:
    """The state as of a revision (default: head), or as of a valid time ``at`` (latest value per property
    whose timestamp is not after ``at``, the later revision on a tie). ``quality``: only values with these
    flags (each property's newest such value; a property with none is left out). With the twin's
    ``manifest``, properties with a gap check say whether they are stale at the read's time. ``current``:
    the snapshot at the twin's head revision, read with the twin (``current_snapshot``), for a plain read
    of the current state."""
    if revision is not None and at is not None:
        raise ValidationFailed.one("at", "give either revision or at, not both")
    keep = state_quality.keep_of(quality)
    if at is not None:
        state = _state(twin, _as_of(session, twin.id, None, at, keep), revision=None, at=at)
        as_of = at
    else:
        if revision is None and keep is None and current is not None:
            return current_state(twin, current, manifest)
        number = twin.head_revision if revision is None else revision
        state = _state(twin, snapshot_at_revision(session, twin, number, keep), revision=number, at=None)
        as_of = utcnow() if revision is None else _recorded_at(session, twin, number)
    if keep is not None:
        state.quality = sorted(keep, key=FLAGS.index)
    return _with_staleness(state, manifest, as_of)


def read_property(session: Session, twin: StateOf, manifest: Manifest, path: str, *,
                  kind: StateKind = StateKind.REPORTED, revision: int | None = None, at: datetime | None = None
                  ) -> PropertyRead:
    """One property's value now, as of a revision or as of a valid time. ``head[ow3]`` (one key) or ``level``
    reads one head and makes at most one index seek into the log, whatever the number of keys and revisions;
    ``head`` (a keyed property whole) reads each key's head of that kind and a seek for each."""
    if revision is not None and at is not None:
        raise ValidationFailed.one("at", "give either revision or at, not both")
    try:
        name, declared, key = state_keys.resolve(manifest, path, every_key=True)
    except state_keys.KeyProblem as exc:
        raise ValidationFailed.one("property", str(exc)) from None
    whole = declared.key is not None and key is None
    if at is None:
        number = twin.head_revision if revision is None else revision
        if number < 0 or number > twin.head_revision:
            raise RevisionNotFound(f"twin {twin.name} has revisions 0..{twin.head_revision}, not {number}")
        own: Any = case((_HEADS.revision <= number, None),
                        else_=_pick(twin.id, _VALUES.revision <= number, [_VALUES.revision.desc()]))
    else:
        number = None
        own = _pick(twin.id, _VALUES.timestamp <= at, [_VALUES.timestamp.desc(), _VALUES.revision.desc()])
    prefix = f"{name}["
    which = (func.substr(_HEADS.property, 1, len(prefix)) == prefix) if whole else (_HEADS.property == path)
    rows = session.connection().execute(
        select(*(getattr(_HEADS, c.key) for c in _HEAD), own.label("pick"))
        .where(_HEADS.twin_id == twin.id, _HEADS.kind == kind.value, which))
    found = {p: v for (p, _k), v in _collect(session, rows, number, None).items()}
    if kind is StateKind.REPORTED:
        found, _stale = state_quality.with_staleness(found, state_quality.stale_limits(manifest),
                                                     at or (utcnow() if revision is None else
                                                            _recorded_at(session, twin, revision)))
    return PropertyRead(twin_id=twin.id, property=path, kind=kind, key=declared.key, unit=declared.unit,
                        revision=number, at=at, value=None if whole else found.get(path),
                        keys={p[len(prefix):-1]: v for p, v in sorted(found.items())} if whole else None)


def current_state(twin: StateOf, current: Snapshot, manifest: Manifest | None) -> TwinState:
    """The state at the twin's head revision from its ``current`` snapshot, stale properties marked now."""
    return _with_staleness(_state(twin, current, revision=twin.head_revision, at=None), manifest, utcnow())


def _with_staleness(state: TwinState, manifest: Manifest | None, as_of: datetime) -> TwinState:
    limits = state_quality.stale_limits(manifest)
    if limits:
        state.reported, state.stale = state_quality.with_staleness(state.reported, limits, as_of)
        state.stale_as_of = as_of
    return state


def _recorded_at(session: Session, twin: StateOf, number: int) -> datetime:
    """When a revision was recorded (revision 0, the empty state: when the twin was created)."""
    if number == 0:
        return twin.created_at
    found = session.execute(select(StateRevision.recorded_at).where(
        StateRevision.twin_id == twin.id, StateRevision.revision == number)).scalar()
    return twin.created_at if found is None else found


def rebuild_heads(session: Session, twin_id: str) -> bool:
    """Recompute a twin's heads from its log (the newest value of each property and kind, its numeric copy
    included); True when what was stored differed. Reads the whole history once: a repair, not a query."""
    columns = (StateHead.property, StateHead.kind, StateHead.revision, StateHead.value, StateHead.unit,
               StateHead.timestamp, StateHead.num_value)
    stored = {(row.property, row.kind): tuple(row)
              for row in session.execute(select(*columns).where(StateHead.twin_id == twin_id))}
    ranked = (
        select(StateValue.property, StateValue.kind, StateValue.revision, StateValue.value, StateValue.unit,
               StateValue.timestamp,
               func.row_number().over(partition_by=(StateValue.property, StateValue.kind),
                                      order_by=StateValue.revision.desc()).label("rank"))
        .where(StateValue.twin_id == twin_id)
        .subquery()
    )
    names = ("property", "kind", "revision", "value", "unit", "timestamp")
    rows = [{"twin_id": twin_id, **row._asdict(), "num_value": number_of(row.value)}
            for row in session.execute(select(*(ranked.c[n] for n in names)).where(ranked.c.rank == 1))]
    session.execute(delete(StateHead).where(StateHead.twin_id == twin_id))
    if rows:
        session.connection().execute(insert(cast(Table, StateHead.__table__)), rows)
    return {(row["property"], row["kind"]): tuple(row[c.key] for c in columns) for row in rows} != stored


def _state(twin: StateOf, snapshot: Snapshot, *, revision: int | None, at: datetime | None) -> TwinState:
    reported = {p: v for (p, k), v in sorted(snapshot.items()) if k is StateKind.REPORTED}
    desired = {p: v for (p, k), v in sorted(snapshot.items()) if k is StateKind.DESIRED}
    delta = {p: v.value for p, v in desired.items() if p not in reported or reported[p].value != v.value}
    return TwinState(twin_id=twin.id, revision=revision, at=at, reported=reported, desired=desired, delta=delta)


def history(
    session: Session, twin: Twin, manifest: Manifest, prop: str, *, kind: StateKind = StateKind.REPORTED,
    since: datetime | None = None, until: datetime | None = None, limit: int = 1000, newest_first: bool = False,
    quality: Iterable[Flag] | None = None,
) -> list[PropertyValue]:
    """Values of one property in ``[since, until)`` by valid time, oldest first unless asked otherwise;
    ``quality``: only values with these flags."""
    try:
        state_keys.resolve(manifest, prop)
    except state_keys.KeyProblem as exc:
        raise ValidationFailed.one("property", str(exc)) from None
    conditions = [StateValue.twin_id == twin.id, StateValue.property == prop, StateValue.kind == kind.value]
    if since is not None:
        conditions.append(StateValue.timestamp >= since)
    if until is not None:
        conditions.append(StateValue.timestamp < until)
    keep = state_quality.keep_of(quality)
    if keep is not None:
        conditions.append(state_quality.keeps(StateValue.value, session.get_bind().dialect.name, keep))
    direction = (StateValue.timestamp.desc(), StateValue.revision.desc()) if newest_first else (
        StateValue.timestamp.asc(), StateValue.revision.asc())
    # Columns, not entities: a long history would otherwise spend most of its time building ORM objects.
    columns = (StateValue.value, StateValue.unit, StateValue.timestamp, StateValue.revision)
    rows = session.execute(select(*columns).where(and_(*conditions)).order_by(*direction).limit(limit))
    return [_value(row) for row in rows]


def revisions(session: Session, twin: Twin, *, limit: int, offset: int, newest_first: bool = True
              ) -> list[StateRevision]:
    order = StateRevision.revision.desc() if newest_first else StateRevision.revision.asc()
    query = select(StateRevision).where(StateRevision.twin_id == twin.id).order_by(order)
    return list(session.scalars(query.limit(limit).offset(offset)))


def get_revision(session: Session, twin: Twin, number: int) -> StateRevision:
    row = session.get(StateRevision, (twin.id, number))
    if row is None:
        raise RevisionNotFound(f"twin {twin.name} has no revision {number} (head is {twin.head_revision})")
    return row


def diff(session: Session, twin: StateOf, from_revision: int, to_revision: int) -> StateDiff:
    before = snapshot_at_revision(session, twin, from_revision)
    after = snapshot_at_revision(session, twin, to_revision)
    changes = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old is None:
            change = "added"
        elif new is None:
            change = "removed"
        elif (old.value, old.unit, old.timestamp, old.uncertainty, old.quality) != (
                new.value, new.unit, new.timestamp, new.uncertainty, new.quality):
            change = "changed"
        else:
            continue
        changes.append(DiffEntry(property=key[0], kind=key[1], change=change, before=old, after=new))
    return StateDiff(twin_id=twin.id, from_revision=from_revision, to_revision=to_revision, changes=changes)
