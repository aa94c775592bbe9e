"""Twins: create from an app, find, list what the caller may see, fork, delete, grant access, and the
authorized entry points to their state. Every public function checks the policy first."""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from twinengine.auth.models import Group, GroupMembership
from twinengine.auth.policy import Permission, owns, permission_for, require
from twinengine.auth.principal import Principal
from twinengine.auth.service import ensure_identity, get_identity
from twinengine.catalog import service as catalog
from twinengine.catalog.manifest import Manifest, parse_app_ref
from twinengine.errors import (
    NotFound,
    PermissionDenied,
    TwinNameTaken,
    TwinNotFound,
    ValidationFailed,
)
from twinengine.quality.spec import Flag
from twinengine.store.base import LIMIT_ONE, lock_for_delete, upsert
from twinengine.twins import places, state, state_quality
from twinengine.twins.models import StateHead, StateRevision, Twin, TwinGrant, TwinGroupGrant
from twinengine.twins.parameter_index import index_parameters
from twinengine.twins.schemas import (
    Access,
    PropertyRead,
    PropertyValue,
    PropertyWrite,
    RevisionRead,
    StateDiff,
    StateKind,
    TwinState,
)
from twinengine.twins.stream_bindings import StreamBinding
from twinengine.twins.validation import check_parameters
from twinengine.twins.visibility import visible_to

__all__ = [
    "access_of",
    "create_twin",
    "delete_twin",
    "diff_state",
    "fork_twin",
    "free_name",
    "get_twin",
    "grant",
    "list_grants",
    "list_revisions",
    "list_twins",
    "looks_like_id",
    "manifest_for",
    "on_twin_created",
    "property_history",
    "read_revision",
    "read_state",
    "revoke",
    "twin_to_operate",
    "write_state",
]

_ID = re.compile(r"^tw-[0-9a-f]{12}$")

# Called in the creating transaction for every new twin (created or forked), so capabilities above can
# attach their rows to it (e.g. the app's manifest triggers). Keyed by name: registering again replaces.
CreateHook = Callable[[Session, Twin], object]
_CREATE_HOOKS: dict[str, CreateHook] = {}


def on_twin_created(name: str, hook: CreateHook) -> None:
    _CREATE_HOOKS[name] = hook


def _created(session: Session, twin: Twin) -> Twin:
    for hook in _CREATE_HOOKS.values():
        hook(session, twin)
    return twin


def _new_id() -> str:
    return f"tw-{secrets.token_hex(6)}"


def manifest_for(session: Session, twin: Twin) -> Manifest:
    return catalog.manifest_by_id(session, twin.app_id)


def access_of(principal: Principal, twin: Twin) -> Access:
    if owns(principal, twin):
        return Access.OWNER
    granted = permission_for(principal, twin)
    if granted is not None:
        return Access(granted.value)
    return Access.ADMIN


def _check_name(session: Session, name: str) -> None:
    if _ID.match(name):
        raise ValidationFailed.one("name", "names of the form tw-<12 hex digits> are reserved for twin ids")
    if session.scalar(select(Twin.id).where(Twin.name == name)) is not None:
        raise TwinNameTaken(f"a twin named {name!r} already exists")


def _insert(session: Session, twin: Twin) -> Twin:
    try:
        with session.begin_nested():
            session.add(twin)
    except IntegrityError:
        raise TwinNameTaken(f"a twin named {twin.name!r} already exists") from None
    return twin


def create_twin(session: Session, *, principal: Principal, app: str, name: str,
                parameters: dict[str, Any], description: str | None = None,
                tags: list[str] | None = None, location: dict[str, Any] | None = None,
                group: str | None = None) -> Twin:
    """Create a twin of ``app`` (name@version, or name for the latest); parameters must fit the app schema.
    With ``group``, the twin belongs to that group's members (the caller must be one, or an admin)."""
    require(principal, "twin.create")
    if group is not None:
        _check_owner_group(session, principal, group)
    app_name, version = parse_app_ref(app)
    row = catalog.get_app_version(session, principal=principal, name=app_name, version=version)
    filled, problems = check_parameters(catalog.manifest_of(row), parameters)
    if problems:
        raise ValidationFailed(problems)
    _check_name(session, name)
    ensure_identity(session, principal.name, created_by=principal.issuer)
    twin = Twin(id=_new_id(), name=name, app_id=row.id, app_name=row.name, app_version=row.version,
                owner=principal.name, owner_group=group, description=description, parameters=filled,
                head_revision=0)
    if location is not None:
        places.check_location(location)  # refused before anything is written
    _insert(session, twin)
    index_parameters(session, [twin.id])
    places.place(session, twin, tags=tags, location=location)
    return _created(session, twin)


def _check_owner_group(session: Session, principal: Principal, group: str) -> None:
    """A twin may be given to a group that exists and that the caller is in (admins: any group)."""
    if session.get(Group, group) is None:
        raise ValidationFailed.one("group", f"no group named {group!r}")
    if not principal.is_admin and group not in principal.groups:
        raise PermissionDenied(f"{principal.name} is not in group {group} and may not create twins for it")


def get_twin(session: Session, *, principal: Principal, ref: str, action: str = "twin.read") -> Twin:
    """Find a twin by id or name and check ``action`` on it."""
    twin = session.get(Twin, ref) if _ID.match(ref) else None
    if twin is None:
        twin = session.scalar(select(Twin).where(Twin.name == ref))
    if twin is None:
        raise TwinNotFound(f"no twin with id or name {ref!r}")
    require(principal, action, twin, target=f"twin {ref}")
    return twin


# Built once: building the statement cost more than running it on SQLite.
_WITH_DIGEST = select(Twin, catalog.digest_of(Twin.app_id))
_BY_ID_OR_NAME = (_WITH_DIGEST.where(or_(Twin.id == bindparam("ref"), Twin.name == bindparam("ref")))
                  .order_by(Twin.id != bindparam("ref")).limit(LIMIT_ONE))  # an id first, as get_twin
_BY_NAME = _WITH_DIGEST.where(Twin.name == bindparam("ref"))


def _twin_and_manifest(session: Session, *, principal: Principal, ref: str, action: str) -> tuple[Twin, Manifest]:
    """``get_twin`` and ``manifest_for`` in one query: the twin's row carries its app version's checksum, by
    which the parsed manifest is cached (a write's round trips are most of its cost on a server database)."""
    found = session.execute(_BY_ID_OR_NAME if _ID.match(ref) else _BY_NAME, {"ref": ref}).first()
    if found is None:
        raise TwinNotFound(f"no twin with id or name {ref!r}")
    twin, digest = found
    require(principal, action, twin, target=f"twin {ref}")
    return twin, catalog.manifest_by_digest(session, twin.app_id, digest)


def list_twins(session: Session, *, principal: Principal, app: str | None = None, limit: int = 50,
               offset: int = 0) -> tuple[list[Twin], int]:
    """Twins the caller owns or was granted (all of them for admins), newest first."""
    require(principal, "twin.list")
    query = select(Twin)
    visible = visible_to(principal)
    if visible is not None:
        query = query.where(visible)
    if app:
        app_name, version = parse_app_ref(app)
        query = query.where(Twin.app_name == app_name)
        if version:
            query = query.where(Twin.app_version == version)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    query = query.options(selectinload(Twin.grants), selectinload(Twin.group_grants))  # access_of() reads them
    rows = session.scalars(query.order_by(Twin.created_at.desc(), Twin.id).limit(limit).offset(offset))
    return list(rows), total


def delete_twin(session: Session, *, principal: Principal, ref: str) -> Twin:
    """Delete a twin and its whole state log; forks keep their copy and lose only the link."""
    twin = get_twin(session, principal=principal, ref=ref, action="twin.manage")
    lock_for_delete(session, twin, TwinNotFound(f"no twin {ref!r}"))
    session.delete(twin)
    session.flush()
    return twin


def free_name(session: Session, base: str) -> str:
    """``base`` (cut to a twin name's length), or ``base-2``, ``base-3``, ... when taken: names for forks
    the engine makes on its own (scenario branches, what-if runs)."""
    name, n = base[:64], 1
    while session.scalar(select(Twin.id).where(Twin.name == name)) is not None:
        n += 1
        name = f"{base[:60]}-{n}"
    return name


def fork_twin(session: Session, *, principal: Principal, ref: str, name: str, at_revision: int | None,
              parameters: dict[str, Any] | None, description: str | None = None) -> Twin:
    """A scenario twin: same app, the origin's state as of ``at_revision`` as its revision 1, and a link
    back. What-if writes and runs on the fork never touch the origin."""
    origin = get_twin(session, principal=principal, ref=ref, action="twin.read")
    require(principal, "twin.create")
    at = origin.head_revision if at_revision is None else at_revision
    snapshot = state.snapshot_at_revision(session, origin, at)
    manifest = manifest_for(session, origin)
    merged = {**origin.parameters, **(parameters or {})}
    filled, problems = check_parameters(manifest, merged)
    if problems:
        raise ValidationFailed(problems)
    _check_name(session, name)
    ensure_identity(session, principal.name, created_by=principal.issuer)
    fork = _insert(session, Twin(
        id=_new_id(), name=name, app_id=origin.app_id, app_name=origin.app_name, app_version=origin.app_version,
        owner=principal.name, description=description or origin.description, parameters=filled,
        origin_id=origin.id, origin_name=origin.name, origin_revision=at, head_revision=0,
    ))
    index_parameters(session, [fork.id])
    places.place(session, fork, tags=[t for t in origin.tags or [] if t != places.OFFICIAL_TAG],
                 location=origin.location)  # a scenario stays in place; only the twin itself is official
    if snapshot:
        values = [state.NewValue(p, k, v.value, v.unit, v.timestamp,
                                 v.uncertainty.plain() if v.uncertainty else None,
                                 v.quality.model_dump() if v.quality else None)
                  for (p, k), v in sorted(snapshot.items())]
        state.append_revision(session, fork, values, author=principal.name,
                              message=f"fork of {origin.name} at revision {at}")
    return _created(session, fork)


def grant(session: Session, *, principal: Principal, ref: str, identity: str,
          permission: Permission) -> TwinGrant:
    twin = get_twin(session, principal=principal, ref=ref, action="twin.manage")
    get_identity(session, identity)
    if identity == twin.owner and twin.owner_group is None:  # a group's twin: its creator holds it via the group
        raise ValidationFailed.one("identity", f"{identity} owns this twin already")
    # One statement, so that the same grant asked twice at once is made once, not a collision.
    statement = upsert(session.get_bind().dialect.name, TwinGrant).values(
        twin_id=twin.id, identity=identity, permission=permission.value, granted_by=principal.name)
    session.execute(statement.on_conflict_do_update(
        index_elements=["twin_id", "identity"],
        set_={"permission": statement.excluded.permission, "granted_by": statement.excluded.granted_by}))
    session.expire(twin, ["grants"])
    if permission is Permission.READ:  # no longer operates the twin: its MQTT bindings stop with it
        _drop_bindings_of(session, twin, identity)
    return session.get_one(TwinGrant, (twin.id, identity), populate_existing=True)


def _drop_bindings_of(session: Session, twin: Twin, identity: str) -> None:
    """A binding feeds the twin for the identity that made it: when that identity may no longer append to the
    twin (its grant withdrawn or lowered to ``read``), its bindings go, in the same transaction, or it could go
    on writing into the twin by publishing on the topic it bound. The MQTT bridge unsubscribes within its next
    refresh (the bindings' change counter moves)."""
    for binding in session.scalars(select(StreamBinding).where(StreamBinding.twin_id == twin.id,
                                                               StreamBinding.created_by == identity)):
        session.delete(binding)
    session.flush()


def revoke(session: Session, *, principal: Principal, ref: str, identity: str) -> None:
    twin = get_twin(session, principal=principal, ref=ref, action="twin.manage")
    for existing in list(twin.grants):
        if existing.identity == identity:
            lock_for_delete(session, existing, NotFound(f"{identity} has no grant on twin {twin.name}"))
            twin.grants.remove(existing)
            _drop_bindings_of(session, twin, identity)
            return
    raise NotFound(f"{identity} has no grant on twin {twin.name}")


def list_grants(session: Session, *, principal: Principal, ref: str) -> list[TwinGrant]:
    twin = get_twin(session, principal=principal, ref=ref, action="twin.read")
    return sorted(twin.grants, key=lambda g: g.identity)


def write_state(session: Session, *, principal: Principal, ref: str, reported: dict[str, PropertyWrite],
                desired: dict[str, PropertyWrite], message: str | None = None,
                quality: dict[str, Any] | None = None) -> tuple[Twin, RevisionRead]:
    """Validate and append one revision of reported and/or desired values; ``quality``: what a workflow
    says of the inputs its values were computed from (quality/pedigree.py), kept with each value."""
    twin, manifest = twin_to_operate(session, principal=principal, ref=ref)
    values = state.validate_write(manifest, {StateKind.REPORTED: reported, StateKind.DESIRED: desired})
    if quality is not None:
        values = [dataclasses.replace(v, quality=quality) for v in values]
    return twin, state.append_revision(session, twin, values, author=principal.name, message=message,
                                       manifest=manifest)


def looks_like_id(ref: str) -> bool:
    """Whether ``ref`` has the form of a twin's id (``tw-`` and 12 hex digits): looked up by id first."""
    return _ID.match(ref) is not None


def twin_to_operate(session: Session, *, principal: Principal, ref: str) -> tuple[Twin, Manifest]:
    """The twin ``principal`` may operate (write its state) and its app's manifest, in one query."""
    return _twin_and_manifest(session, principal=principal, ref=ref, action="twin.operate")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class TwinForRead:
    """What a state read needs of a twin, as a plain row: the read builds no ORM instance and keeps
    nothing in the session. It carries the grants of the one identity it was read for: its own, and the best
    one given to a group it is in (read from the memberships in the store by the same statement)."""

    id: str
    name: str
    owner: str
    app_id: int
    head_revision: int
    created_at: datetime
    grantee: str
    grant: str | None
    owner_group: str | None = None
    group_grant: str | None = None

    def permission_of(self, identity: str) -> Permission | None:
        return Permission(self.grant) if self.grant is not None and identity == self.grantee else None

    def group_permission_of(self, groups: frozenset[str]) -> Permission | None:
        return Permission(self.group_grant) if self.group_grant is not None and groups else None


_TWIN_TABLE, _GRANT_TABLE = cast(Table, Twin.__table__), cast(Table, TwinGrant.__table__)
_TWINS, _GRANTS = _TWIN_TABLE.c, _GRANT_TABLE.c
# The best grant to a group the caller is in: "operate" sorts before "read", so the least is the best.
_GROUP_GRANT = (select(func.min(TwinGroupGrant.permission))
                .join(GroupMembership, GroupMembership.group == TwinGroupGrant.group)
                .where(TwinGroupGrant.twin_id == _TWINS.id, GroupMembership.identity == bindparam("who"))
                .scalar_subquery())
_FOR_READ = (select(_TWINS.id, _TWINS.name, _TWINS.owner, _TWINS.app_id, _TWINS.head_revision, _TWINS.created_at,
                    _GRANTS.permission, _TWINS.owner_group, _GROUP_GRANT, catalog.digest_of(_TWINS.app_id))
             .select_from(_TWIN_TABLE.outerjoin(
                 _GRANT_TABLE, and_(_GRANTS.twin_id == _TWINS.id, _GRANTS.identity == bindparam("who")))))
_TWIN_COLUMNS = len(_FOR_READ.selected_columns)  # the twin's part of a row of the statements below
_OTHER = _TWIN_TABLE.alias("ref_twin")
# The twin a reference that looks like an id names: the one with that id, else the one with that name. A
# subquery, not a LIMIT on the statement: with its heads a twin is one row per head.
_ID_OR_NAME = _TWINS.id == (
    select(_OTHER.c.id).where(or_(_OTHER.c.id == bindparam("ref"), _OTHER.c.name == bindparam("ref")))
    .order_by(_OTHER.c.id != bindparam("ref")).limit(LIMIT_ONE).scalar_subquery())
_NAMED = _TWINS.name == bindparam("ref")
_FOR_READ_BY_ID_OR_NAME, _FOR_READ_BY_NAME = _FOR_READ.where(_ID_OR_NAME), _FOR_READ.where(_NAMED)
_WITH_HEADS = (_FOR_READ.add_columns(*state.current_columns(_TWIN_TABLE))
               .outerjoin(StateHead.__table__, cast(Table, StateHead.__table__).c.twin_id == _TWINS.id))
_CURRENT_BY_ID_OR_NAME, _CURRENT_BY_NAME = _WITH_HEADS.where(_ID_OR_NAME), _WITH_HEADS.where(_NAMED)


def _twin_for_read(session: Session, *, principal: Principal, ref: str) -> tuple[TwinForRead, Manifest]:
    """``_twin_and_manifest`` for a state read or diff: one statement of the tables' columns (the twin, the
    caller's grant, the app version's checksum), run on the session's connection."""
    found = session.connection().execute(_FOR_READ_BY_ID_OR_NAME if _ID.match(ref) else _FOR_READ_BY_NAME,
                                         {"ref": ref, "who": principal.name}).first()
    if found is None:
        raise TwinNotFound(f"no twin with id or name {ref!r}")
    twin, digest = readable_twin(found, principal)
    return twin, catalog.manifest_by_digest(session, twin.app_id, digest)


def readable_twin(row: Sequence[Any], principal: Principal) -> tuple[TwinForRead, str | None]:
    """The twin of a row of ``_FOR_READ``'s columns (the first ``_TWIN_COLUMNS``) and its app version's
    checksum, once ``principal`` may read it (PermissionDenied otherwise)."""
    twin_id, name, owner, app_id, head, created_at, grant, owner_group, group_grant, digest = row[:_TWIN_COLUMNS]
    twin = TwinForRead(twin_id, name, owner, app_id, head, created_at, principal.name, grant, owner_group,
                       group_grant)
    require(principal, "twin.read", twin, target=f"twin {name}")
    return twin, digest


def _twin_with_current(session: Session, *, principal: Principal, ref: str
                       ) -> tuple[TwinForRead, Manifest, state.Snapshot]:
    """``_twin_for_read`` and the twin's current snapshot, in one statement (one round trip, one snapshot
    of the store: the heads belong to the head revision read beside them)."""
    rows = session.connection().execute(_CURRENT_BY_ID_OR_NAME if _ID.match(ref) else _CURRENT_BY_NAME,
                                        {"ref": ref, "who": principal.name}).all()
    if not rows:
        raise TwinNotFound(f"no twin with id or name {ref!r}")
    twin, digest = readable_twin(rows[0], principal)
    return (twin, catalog.manifest_by_digest(session, twin.app_id, digest),
            state.current_snapshot(session, rows, twin.head_revision))


def read_state(session: Session, *, principal: Principal, ref: str, revision: int | None = None,
               at: datetime | None = None, quality: Sequence[Flag] | None = None) -> TwinState:
    """The state now, as of a revision or a time; ``quality``: each property's newest value with one of
    these flags. Properties with a gap check say whether they are stale. The current state, unfiltered,
    takes one statement; the others two."""
    if revision is None and at is None and state_quality.keep_of(quality) is None:
        twin, manifest, current = _twin_with_current(session, principal=principal, ref=ref)
        return state.read_state(session, twin, manifest=manifest, current=current)
    twin, manifest = _twin_for_read(session, principal=principal, ref=ref)
    return state.read_state(session, twin, revision=revision, at=_utc(at), quality=quality, manifest=manifest)


def property_history(session: Session, *, principal: Principal, ref: str, prop: str,
                     kind: StateKind = StateKind.REPORTED, since: datetime | None = None,
                     until: datetime | None = None, limit: int = 1000, newest_first: bool = False,
                     quality: Sequence[Flag] | None = None) -> tuple[Twin, list[PropertyValue]]:
    twin = get_twin(session, principal=principal, ref=ref)
    items = state.history(session, twin, manifest_for(session, twin), prop, kind=kind, since=_utc(since),
                          until=_utc(until), limit=limit, newest_first=newest_first, quality=quality)
    return twin, items


def read_property(session: Session, *, principal: Principal, ref: str, prop: str,
                  kind: StateKind = StateKind.REPORTED, revision: int | None = None,
                  at: datetime | None = None) -> PropertyRead:
    """One property's value (one key's: ``head[ow3]``; every key's: ``head``) now, as of a revision or a time."""
    twin, manifest = _twin_for_read(session, principal=principal, ref=ref)
    return state.read_property(session, twin, manifest, prop, kind=kind, revision=revision, at=_utc(at))


def list_revisions(session: Session, *, principal: Principal, ref: str, limit: int = 50, offset: int = 0,
                   newest_first: bool = True) -> tuple[Twin, list[StateRevision]]:
    twin = get_twin(session, principal=principal, ref=ref)
    return twin, state.revisions(session, twin, limit=limit, offset=offset, newest_first=newest_first)


def read_revision(session: Session, *, principal: Principal, ref: str, number: int) -> StateRevision:
    twin = get_twin(session, principal=principal, ref=ref)
    return state.get_revision(session, twin, number)


def diff_state(session: Session, *, principal: Principal, ref: str, from_revision: int,
               to_revision: int | None = None) -> StateDiff:
    twin, _manifest = _twin_for_read(session, principal=principal, ref=ref)
    return state.diff(session, twin, from_revision, twin.head_revision if to_revision is None else to_revision)
