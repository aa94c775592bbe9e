"""HTTP routes of twins: lifecycle, access grants, and state (write, read, history, revisions, diff)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Body, Path, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.grouped_writes import write_through_store
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router
from twinengine.auth.policy import Permission
from twinengine.auth.principal import GROUP_NAME_PATTERN, Principal
from twinengine.catalog import state_keys
from twinengine.quality.spec import FLAGS, Flag
from twinengine.quality.stored import unpack
from twinengine.runtime import Runtime
from twinengine.timeutil import Instant
from twinengine.twins import glance as glances
from twinengine.twins import group_grants, service, state_quality
from twinengine.twins.current_state import CurrentStateReader
from twinengine.twins.models import StateRevision, Twin
from twinengine.twins.schemas import (
    GrantRead,
    GroupGrantRead,
    HistoryRead,
    OriginRead,
    PropertyRead,
    RevisionPage,
    RevisionRead,
    StateDiff,
    StateKind,
    StateWrite,
    TwinCreate,
    TwinFork,
    TwinPage,
    TwinRead,
    TwinState,
    ValueChange,
)
from twinengine.twins.write_group import StateWriteCall, write_one, write_together
from twinengine.types import INT32_MAX

__all__ = ["router"]

router = api_router("/twins", tag="twins")

TwinRef = Annotated[str, Path(max_length=64, description="The twin's id (tw-...) or name.")]
QualityFilter = Annotated[list[Flag] | None, Query(
    max_length=3, description="Only values with these flags (repeat for several), e.g. quality=good: each "
                              "property's newest value that passed its checks.")]


def twin_read(principal: Principal, twin: Twin) -> TwinRead:
    origin = (OriginRead(twin_id=twin.origin_id, twin_name=twin.origin_name, revision=twin.origin_revision)
              if twin.origin_name else None)
    return TwinRead(id=twin.id, name=twin.name, app=f"{twin.app_name}@{twin.app_version}", app_name=twin.app_name,
                    app_version=twin.app_version, owner=twin.owner, owner_group=twin.owner_group,
                    description=twin.description,
                    parameters=twin.parameters, origin=origin, head_revision=twin.head_revision,
                    created_at=twin.created_at, updated_at=twin.updated_at,
                    access=service.access_of(principal, twin), tags=twin.tags or [], location=twin.location,
                    expires_at=twin.expires_at)


def revision_read(row: StateRevision) -> RevisionRead:
    changes = []
    for v in row.values:
        value, uncertainty, quality = unpack(v.value)
        changes.append(ValueChange(property=v.property, kind=StateKind(v.kind), value=value, unit=v.unit,
                                   timestamp=v.timestamp, uncertainty=uncertainty, quality=quality))
    return RevisionRead(twin_id=row.twin_id, revision=row.revision, recorded_at=row.recorded_at,
                        author=row.author, message=row.message, changes=changes)


@router.post("", name="create", status_code=status.HTTP_201_CREATED, summary="Create a twin of an app")
@acts("twin.create")
def create(body: TwinCreate, session: SessionDep, principal: PrincipalDep) -> TwinRead:
    twin = service.create_twin(session, principal=principal, app=body.app, name=body.name,
                               parameters=body.parameters, description=body.description, tags=body.tags,
                               location=body.location, group=body.group)
    return twin_read(principal, twin)


@router.get("", name="list", summary="Twins the caller owns or was granted (all, for admins)")
@acts("twin.list")
def list_twins(
    session: SessionDep,
    principal: PrincipalDep,
    app: Annotated[str | None, Query(max_length=130, description="name or name@version")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
    glance: Annotated[bool, Query(description="Add each twin's status, place and last reading.")] = False,
) -> TwinPage:
    rows, total = service.list_twins(session, principal=principal, app=app, limit=limit, offset=offset)
    seen = glances.glance(session, rows) if glance else {}
    return TwinPage(items=[twin_read(principal, t).model_copy(update={"glance": seen.get(t.id)}) for t in rows],
                    total=total)


@router.get("/{twin}", name="get", summary="One twin")
@acts("twin.read")
def get(twin: TwinRef, session: SessionDep, principal: PrincipalDep) -> TwinRead:
    return twin_read(principal, service.get_twin(session, principal=principal, ref=twin))


@router.delete("/{twin}", name="delete", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a twin and its state log (owner or admin)")
@acts("twin.manage")
def delete(twin: TwinRef, session: SessionDep, principal: PrincipalDep) -> Response:
    service.delete_twin(session, principal=principal, ref=twin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{twin}/fork", name="fork", status_code=status.HTTP_201_CREATED,
             summary="Fork a what-if scenario twin from a revision")
@acts("twin.read", "twin.create")
def fork(twin: TwinRef, body: TwinFork, session: SessionDep, principal: PrincipalDep) -> TwinRead:
    created = service.fork_twin(session, principal=principal, ref=twin, name=body.name,
                                at_revision=body.at_revision, parameters=body.parameters,
                                description=body.description)
    return twin_read(principal, created)


@router.get("/{twin}/grants", name="grants_list", summary="Who else may read or operate the twin")
@acts("twin.read")
def grants_list(twin: TwinRef, session: SessionDep, principal: PrincipalDep) -> list[GrantRead]:
    return [GrantRead.model_validate(g) for g in service.list_grants(session, principal=principal, ref=twin)]


@router.put("/{twin}/grants/{identity}", name="grants_put", summary="Grant read or operate (owner or admin)")
@acts("twin.manage")
def grants_put(
    twin: TwinRef,
    identity: Annotated[str, Path(pattern=r"^[a-z][a-z0-9._-]{0,63}$", max_length=64)],
    permission: Annotated[Permission, Body(embed=True)],
    session: SessionDep,
    principal: PrincipalDep,
) -> GrantRead:
    row = service.grant(session, principal=principal, ref=twin, identity=identity, permission=permission)
    return GrantRead.model_validate(row)


@router.delete("/{twin}/grants/{identity}", name="grants_delete", status_code=status.HTTP_204_NO_CONTENT,
               summary="Take a grant back (owner or admin)")
@acts("twin.manage")
def grants_delete(twin: TwinRef, identity: Annotated[str, Path(max_length=64)], session: SessionDep,
                  principal: PrincipalDep) -> Response:
    service.revoke(session, principal=principal, ref=twin, identity=identity)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


GroupRef = Annotated[str, Path(pattern=GROUP_NAME_PATTERN, max_length=64, description="A group's name.")]


@router.get("/{twin}/group-grants", name="group_grants_list", summary="Which groups may read or operate the twin")
@acts("twin.read")
def group_grants_list(twin: TwinRef, session: SessionDep, principal: PrincipalDep) -> list[GroupGrantRead]:
    return [GroupGrantRead.model_validate(g)
            for g in group_grants.list_group_grants(session, principal=principal, ref=twin)]


@router.put("/{twin}/group-grants/{group}", name="group_grants_put",
            summary="Grant a group read or operate: every member has it while a member (owner or admin)")
@acts("twin.manage")
def group_grants_put(twin: TwinRef, group: GroupRef, permission: Annotated[Permission, Body(embed=True)],
                     session: SessionDep, principal: PrincipalDep) -> GroupGrantRead:
    row = group_grants.grant_group(session, principal=principal, ref=twin, group=group, permission=permission)
    return GroupGrantRead.model_validate(row)


@router.delete("/{twin}/group-grants/{group}", name="group_grants_delete", status_code=status.HTTP_204_NO_CONTENT,
               summary="Take a group's grant back (owner or admin)")
@acts("twin.manage")
def group_grants_delete(twin: TwinRef, group: GroupRef, session: SessionDep, principal: PrincipalDep) -> Response:
    group_grants.revoke_group(session, principal=principal, ref=twin, group=group)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch("/{twin}/state", name="state_write", response_model=RevisionRead,
              summary="Report and/or desire properties: one new revision")
@acts("twin.operate")
async def state_write(twin: TwinRef, body: StateWrite, request: Request, principal: PrincipalDep,
                      runtime: RuntimeDep) -> Response:
    """Answered once the revision is durable; concurrent writes share one commit (``api.grouped_writes``)."""
    call = StateWriteCall(principal, twin, body.reported, body.desired, body.message)
    revision = await write_through_store(runtime, request.scope, call, write_one, together=write_together)
    return Response(revision.model_dump_json(by_alias=True), media_type="application/json")


@router.get("/{twin}/state", name="state_read", response_model=TwinState,
            summary="The state now, as of a revision, or as of a time (by the values' timestamps)")
@acts("twin.read")
async def state_read(
    twin: TwinRef,
    request: Request,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    revision: Annotated[int | None, Query(ge=0, le=INT32_MAX)] = None,
    at: Annotated[Instant | None, Query(description="ISO 8601; without a zone it is UTC")] = None,
    quality: QualityFilter = None,
) -> Response:
    """The current state, unfiltered, comes from the reader of ``twins.current_state`` (no unit of work; on
    PostgreSQL no worker thread); every other read, and one it hands back, from a unit of work."""
    reader: CurrentStateReader | None = getattr(request.app.state, "current_state", None)
    if reader is not None and revision is None and at is None and not quality:
        body = await reader.read(principal, twin)
        if body is not None:
            return Response(body, media_type="application/json")
    answer = await run_in_threadpool(_read_state, runtime, principal, twin, revision, at, quality)
    return Response(answer.model_dump_json(by_alias=True), media_type="application/json")


def _read_state(runtime: Runtime, principal: Principal, ref: str, revision: int | None, at: datetime | None,
                quality: Sequence[Flag] | None) -> TwinState:
    with runtime.db.session(readonly=True) as session:
        return service.read_state(session, principal=principal, ref=ref, revision=revision, at=at, quality=quality)


@router.get("/{twin}/revisions", name="revisions_list", summary="The state log, newest first by default")
@acts("twin.read")
def revisions_list(
    twin: TwinRef,
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
    order: Literal["desc", "asc"] = "desc",
) -> RevisionPage:
    row, items = service.list_revisions(session, principal=principal, ref=twin, limit=limit, offset=offset,
                                        newest_first=order == "desc")
    return RevisionPage(items=[revision_read(r) for r in items], total=row.head_revision)


@router.get("/{twin}/revisions/{revision}", name="revisions_get", summary="One revision and what it changed")
@acts("twin.read")
def revisions_get(twin: TwinRef, revision: Annotated[int, Path(ge=1, le=INT32_MAX)], session: SessionDep,
                  principal: PrincipalDep) -> RevisionRead:
    return revision_read(service.read_revision(session, principal=principal, ref=twin, number=revision))


@router.get("/{twin}/properties/{prop}", name="property", summary="One property's value, or a keyed one's by key")
@acts("twin.read")
def read_property(
    twin: TwinRef,
    prop: Annotated[str, Path(max_length=64, description="`level`, one key `head[ow3]`, or every key `head`")],
    session: SessionDep,
    principal: PrincipalDep,
    kind: StateKind = StateKind.REPORTED,
    revision: Annotated[int | None, Query(ge=0, le=INT32_MAX)] = None,
    at: Instant | None = None,
) -> PropertyRead:
    return service.read_property(session, principal=principal, ref=twin, prop=prop, kind=kind, revision=revision,
                                 at=at)


@router.get("/{twin}/properties/{prop}/history", name="history", summary="A property's values over time")
@acts("twin.read")
def history(
    twin: TwinRef,
    prop: Annotated[str, Path(max_length=64)],
    session: SessionDep,
    principal: PrincipalDep,
    kind: StateKind = StateKind.REPORTED,
    since: Instant | None = None,
    until: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    order: Literal["asc", "desc"] = "asc",
    quality: QualityFilter = None,
) -> HistoryRead:
    row, items = service.property_history(session, principal=principal, ref=twin, prop=prop, kind=kind,
                                          since=since, until=until, limit=limit, newest_first=order == "desc",
                                          quality=quality)
    declared = service.manifest_for(session, row).state[state_keys.base_of(prop)]
    kept = state_quality.keep_of(quality)
    return HistoryRead(twin_id=row.id, property=prop, kind=kind, unit=declared.unit, datum=declared.datum,
                       items=items,
                       quality=None if kept is None else sorted(kept, key=FLAGS.index))


@router.get("/{twin}/diff", name="diff", summary="What changed in the state between two revisions")
@acts("twin.read")
def diff(
    twin: TwinRef,
    session: SessionDep,
    principal: PrincipalDep,
    from_revision: Annotated[int, Query(alias="from", ge=0, le=INT32_MAX)],
    to_revision: Annotated[int | None, Query(alias="to", ge=0, le=INT32_MAX, description="Default: head")] = None,
) -> StateDiff:
    return service.diff_state(session, principal=principal, ref=twin, from_revision=from_revision,
                              to_revision=to_revision)
