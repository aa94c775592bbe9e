"""HTTP routes of groups: list one's groups, and (admins) create, change and delete groups and add and remove
members."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Response, status

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep, authorized
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router
from twinengine.auth import groups
from twinengine.auth.group_delete import delete_group
from twinengine.auth.group_schemas import (
    GroupCreate,
    GroupDeletedRead,
    GroupDetail,
    GroupRead,
    GroupUpdate,
    MembershipRead,
)
from twinengine.auth.models import Group
from twinengine.auth.principal import GROUP_NAME_PATTERN

__all__ = ["router"]

router = api_router("/groups", tag="groups")

GroupPath = Annotated[str, Path(pattern=GROUP_NAME_PATTERN, max_length=64, description="The group's name.")]
MemberPath = Annotated[str, Path(max_length=64, description="An identity's name.")]


@router.get("", name="list", summary="Groups: the caller's own (every group, for admins)")
@acts("group.read")
def list_groups(session: SessionDep, principal: PrincipalDep) -> list[GroupRead]:
    return [_read(g, n) for g, n in groups.list_groups(session, principal=principal)]


def _read(g: Group, members: int) -> GroupRead:
    return GroupRead(name=g.name, description=g.description, created_at=g.created_at, created_by=g.created_by,
                     members=members, publish=bool(g.publish))


@router.post("", name="create", status_code=status.HTTP_201_CREATED, summary="Create a group (admins)",
             dependencies=[Depends(authorized("group.manage"))])
@acts("group.manage")
def create_group(body: GroupCreate, session: SessionDep, principal: PrincipalDep) -> GroupRead:
    g = groups.create_group(session, principal=principal, name=body.name, description=body.description,
                            publish=body.publish)
    return _read(g, 0)


@router.patch("/{name}", name="update", summary="Change a group's description or publishing right (admins)",
              dependencies=[Depends(authorized("group.manage"))])
@acts("group.manage")
def update_group(name: GroupPath, body: GroupUpdate, session: SessionDep, principal: PrincipalDep) -> GroupRead:
    g = groups.update_group(session, principal=principal, name=name, description=body.description,
                            publish=body.publish)
    return _read(g, len({m.identity for m in groups.members_of(session, name)}))


@router.delete("/{name}", name="delete", summary="Delete a group (admins): refused while it owns anything, unless "
                                                 "forced, which hands it all to the caller",
               dependencies=[Depends(authorized("group.manage"))])
@acts("group.manage")
def remove_group(name: GroupPath, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep,
                 force: Annotated[bool, Query(description="Hand what the group owns (twins, lake datasets, apps) "
                                                          "to the caller instead of refusing")] = False,
                 ) -> GroupDeletedRead:
    done = delete_group(session, principal=principal, name=name, force=force)
    session.commit()  # then no request in this process authorises a member with the group again
    for member in done.members:
        runtime.verdicts.forget_identity(member)
    return GroupDeletedRead(name=done.name, members=done.members, handed_on=done.handed_on)


@router.get("/{name}", name="get", summary="A group and its members (admins, and the group's members)")
@acts("group.read")
def get_group(name: GroupPath, session: SessionDep, principal: PrincipalDep) -> GroupDetail:
    g, rows = groups.show_group(session, principal=principal, name=name)
    return GroupDetail(name=g.name, description=g.description, created_at=g.created_at, created_by=g.created_by,
                       members=len({r.identity for r in rows}),
                       memberships=[MembershipRead.model_validate(r) for r in rows])


@router.put("/{name}/members/{identity}", name="members_put", summary="Add an identity to a group (admins)",
            dependencies=[Depends(authorized("group.manage"))])
@acts("group.manage")
def add_member(name: GroupPath, identity: MemberPath, session: SessionDep, principal: PrincipalDep,
               runtime: RuntimeDep) -> MembershipRead:
    row = MembershipRead.model_validate(groups.add_member(session, principal=principal, group=name,
                                                          identity=identity))
    session.commit()
    runtime.verdicts.forget_identity(identity)  # its next request carries the group
    return row


@router.delete("/{name}/members/{identity}", name="members_delete", status_code=status.HTTP_204_NO_CONTENT,
               summary="Take an identity out of a group (admins): its access through the group ends at once",
               dependencies=[Depends(authorized("group.manage"))])
@acts("group.manage")
def remove_member(name: GroupPath, identity: MemberPath, session: SessionDep, principal: PrincipalDep,
                  runtime: RuntimeDep) -> Response:
    groups.remove_member(session, principal=principal, group=name, identity=identity)
    session.commit()  # then no request in this process authorises it with the group again
    runtime.verdicts.forget_identity(identity)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
