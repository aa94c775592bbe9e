"""Request and response models of groups."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from twinengine.auth.policy import Permission
from twinengine.auth.principal import GROUP_NAME_PATTERN

__all__ = ["GroupCreate", "GroupDeletedRead", "GroupDetail", "GroupGrantRead", "GroupRead", "GroupUpdate",
           "MembershipRead"]


class GroupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=GROUP_NAME_PATTERN, max_length=64,
                      description="Lower-case letters, digits, '.', '_', ':' and '-'; not an identity's name.")
    description: str | None = Field(default=None, max_length=200)
    publish: bool = Field(default=False, description="The group holds the right to publish apps for itself: its "
                                                     "members publish the group's apps whatever their role.")


class GroupUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=200)
    publish: bool | None = Field(default=None, description="Give (true) or take (false) the right to publish the "
                                                           "group's apps; absent: unchanged.")


class GroupRead(BaseModel):
    name: str
    description: str | None
    created_at: datetime
    created_by: str | None
    members: int
    publish: bool = False


class GroupDeletedRead(BaseModel):
    name: str
    members: list[str] = Field(description="Its former members: what it gave them ended with it.")
    handed_on: list[str] = Field(description="What it owned, now the deleting admin's (`kind name`).")


class MembershipRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    group: str
    identity: str
    source: str = Field(description="'local' (an admin added it) or 'provider:<id>' (asserted at sign-in).")
    added_at: datetime


class GroupDetail(GroupRead):
    memberships: list[MembershipRead]


class GroupGrantRead(BaseModel):  # a twin's grant to a group (twins.group_grants), as the API and the SDK answer it
    model_config = ConfigDict(from_attributes=True)

    group: str
    permission: Permission
    granted_by: str
    granted_at: datetime
