"""HTTP routes of twin relationships: link, unlink, a twin's links, and the twins related to it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, status

from twinengine.api.deps import PrincipalDep, SessionDep
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router
from twinengine.timeutil import Instant
from twinengine.twins import relationships as service
from twinengine.twins.relationship_schemas import (
    MAX_DEPTH,
    RELATION_TYPE,
    Direction,
    LinkCreate,
    LinkPage,
    LinkRead,
    RelatedPage,
)

__all__ = ["router"]

router = api_router("/twins", tag="relationships")

TwinRef = Annotated[str, Path(max_length=64, description="The twin's id (tw-...) or name.")]
TypeQuery = Annotated[str | None, Query(pattern=RELATION_TYPE, max_length=64,
                                        description="Only links of this type (default: every type).")]
AtQuery = Annotated[Instant | None, Query(description="ISO 8601; without a zone it is UTC. Default: now.")]


@router.post("/{twin}/links", name="link", status_code=status.HTTP_201_CREATED,
             summary="Link the twin to another by a relationship type its app declares")
@acts("twin.operate")
def link(twin: TwinRef, body: LinkCreate, session: SessionDep, principal: PrincipalDep) -> LinkRead:
    row = service.link(session, principal=principal, ref=twin, type=body.type, target=body.target, at=body.at)
    return LinkRead.model_validate(row)


@router.delete("/{twin}/links/{type}/{target}", name="unlink",
               summary="Close a link (kept for reads in the past, never erased)")
@acts("twin.operate")
def unlink(
    twin: TwinRef,
    type: Annotated[str, Path(pattern=RELATION_TYPE, max_length=64)],
    target: Annotated[str, Path(max_length=64, description="The target twin's id or name.")],
    session: SessionDep,
    principal: PrincipalDep,
    at: Annotated[Instant | None, Query(description="When the link ended (ISO 8601); default now.")] = None,
) -> LinkRead:
    row = service.unlink(session, principal=principal, ref=twin, type=type, target=target, at=at)
    return LinkRead.model_validate(row)


@router.get("/{twin}/links", name="links", summary="The twin's links now, as of a time, or all it ever had")
@acts("twin.read")
def links(
    twin: TwinRef,
    session: SessionDep,
    principal: PrincipalDep,
    type: TypeQuery = None,
    direction: Direction = Direction.OUT,
    at: AtQuery = None,
    history: Annotated[bool, Query(description="Every link, closed ones included.")] = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> LinkPage:
    rows = service.list_links(session, principal=principal, ref=twin, type=type, direction=direction, at=at,
                              history=history, limit=limit)
    return LinkPage(items=[LinkRead.model_validate(r) for r in rows], total=len(rows))


@router.get("/{twin}/related", name="related",
            summary="Twins within some hops along links (e.g. downstream), now or as of a time")
@acts("twin.read")
def related(
    twin: TwinRef,
    session: SessionDep,
    principal: PrincipalDep,
    type: TypeQuery = None,
    direction: Direction = Direction.OUT,
    depth: Annotated[int, Query(ge=1, le=MAX_DEPTH, description="Hops to follow.")] = 1,
    at: AtQuery = None,
    state: Annotated[bool, Query(description="Include each twin's state (now, or as of `at`).")] = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> RelatedPage:
    return service.related(session, principal=principal, ref=twin, type=type, direction=direction, depth=depth,
                           at=at, with_state=state, limit=limit)
