"""Groups of identities: who is in which group, and by whose word.

Memberships come from sources: ``local`` (an admin's ``twin group add``) or ``provider:<id>`` (the groups an
identity provider asserted at sign-in). ``set_memberships`` replaces one source's rows for one identity and
leaves the others alone, so a sign-in never undoes what an admin did, nor the reverse. An identity is in a group
as long as any source lists it there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from twinengine.auth.models import Group, GroupMembership, Identity
from twinengine.auth.policy import require
from twinengine.auth.principal import GROUP_NAME_PATTERN, Principal
from twinengine.errors import Conflict, IdentityNotFound, InvalidInput, NotFound, PermissionDenied, ValidationFailed
from twinengine.store.base import upsert

__all__ = ["GROUP_NAME", "LOCAL", "add_member", "check_group_name", "check_owner_group", "check_source",
           "create_group", "ensure_groups", "get_group", "groups_of", "list_groups", "members_of", "remove_member",
           "set_memberships", "show_group", "update_group", "with_groups"]

LOCAL = "local"
GROUP_NAME = re.compile(GROUP_NAME_PATTERN)
_SOURCE = re.compile(r"^(local|provider:[A-Za-z0-9._-]{1,64})$")


def check_group_name(name: str, *, field: str = "group") -> str:
    if not GROUP_NAME.fullmatch(name):
        raise InvalidInput(f"{field}: {name!r} is not a group name (lower-case letters, digits, '.', '_', ':', "
                           "'-'; at most 64; starts with a letter or digit)")
    return name


def check_source(source: str) -> str:
    if not _SOURCE.fullmatch(source):
        raise InvalidInput(f"source: {source!r} is neither 'local' nor 'provider:<id>'")
    return source


def check_owner_group(session: Session, principal: Principal, group: str, *, what: str) -> Group:
    """The group something is made for (``what``: "datasets", "apps"): one that exists, which the caller is in
    (admins: any group)."""
    found = session.get(Group, check_group_name(group))
    if found is None:
        raise ValidationFailed.one("group", f"no group named {group!r}")
    if not principal.is_admin and group not in principal.groups:
        raise PermissionDenied(f"{principal.name} is not in group {group} and may not make {what} for it")
    return found


def ensure_groups(session: Session, names: Iterable[str], *, created_by: str | None = None) -> None:
    """Create the groups among ``names`` that do not exist yet (two requests at once: one wins, both pass)."""
    rows = [{"name": check_group_name(n), "created_by": created_by} for n in sorted(set(names))]
    if rows:
        dialect = session.get_bind().dialect.name
        session.execute(upsert(dialect, Group).values(rows).on_conflict_do_nothing(index_elements=["name"]))


def set_memberships(session: Session, *, identity: str, groups: Iterable[str], source: str) -> None:
    """Make ``identity``'s memberships from ``source`` exactly ``groups`` (creating groups as needed). Rows of
    other sources stay; the identity must exist."""
    check_source(source)
    wanted = {check_group_name(g) for g in groups}
    ensure_groups(session, wanted, created_by=source)
    current = set(session.scalars(select(GroupMembership.group).where(
        GroupMembership.identity == identity, GroupMembership.source == source)))
    gone = current - wanted
    if gone:
        session.execute(delete(GroupMembership).where(
            GroupMembership.identity == identity, GroupMembership.source == source,
            GroupMembership.group.in_(gone)))
    added = [{"group": g, "identity": identity, "source": source} for g in sorted(wanted - current)]
    if added:
        dialect = session.get_bind().dialect.name
        session.execute(upsert(dialect, GroupMembership).values(added).on_conflict_do_nothing(
            index_elements=["group", "identity", "source"]))
    session.flush()


def groups_of(session: Session, identity: str) -> frozenset[str]:
    """The groups ``identity`` is in today, whatever the source."""
    return frozenset(session.scalars(select(GroupMembership.group).distinct()
                                     .where(GroupMembership.identity == identity)))


def with_groups(session: Session, principal: Principal) -> Principal:
    """``principal`` with the groups its identity is in now (those it came with kept): what a request, or
    work the engine does on someone's behalf, is authorised with."""
    found = groups_of(session, principal.name)
    return principal if found <= principal.groups else replace(principal, groups=principal.groups | found)


def get_group(session: Session, name: str) -> Group:
    group = session.get(Group, name)
    if group is None:
        raise NotFound(f"no group named {name!r}")
    return group


def members_of(session: Session, group: str) -> list[GroupMembership]:
    return list(session.scalars(select(GroupMembership).where(GroupMembership.group == group)
                                .order_by(GroupMembership.identity, GroupMembership.source)))


def create_group(session: Session, *, principal: Principal, name: str, description: str | None = None,
                 publish: bool = False) -> Group:
    """A new, empty group (admins); ``publish``: it holds the right to publish its apps. A name an identity has
    is refused: a listing showing owner ``alice`` must never leave a reader guessing whether that is a person
    or a group."""
    require(principal, "group.manage", target=f"group {name}")
    check_group_name(name, field="name")
    if session.get(Group, name) is not None:
        raise Conflict(f"a group named {name!r} exists already")
    if session.get(Identity, name) is not None:
        raise Conflict(f"{name!r} is an identity's name; choose another name for the group")
    group = Group(name=name, description=description, created_by=principal.name, publish=publish)
    session.add(group)
    session.flush()
    return group


def update_group(session: Session, *, principal: Principal, name: str, description: str | None = None,
                 publish: bool | None = None) -> Group:
    """Change a group's description or whether it holds the right to publish its apps (admins); None: as is."""
    require(principal, "group.manage", target=f"group {name}")
    group = get_group(session, name)
    if description is not None:
        group.description = description
    if publish is not None:
        group.publish = publish
    session.flush()
    return group


def add_member(session: Session, *, principal: Principal, group: str, identity: str) -> GroupMembership:
    """Put ``identity`` in ``group`` on an admin's word (source ``local``)."""
    require(principal, "group.manage", target=f"group {group}")
    get_group(session, group)
    if session.get(Identity, identity) is None:
        raise IdentityNotFound(f"no identity named {identity!r}")
    dialect = session.get_bind().dialect.name
    session.execute(upsert(dialect, GroupMembership).values(group=group, identity=identity, source=LOCAL)
                    .on_conflict_do_nothing(index_elements=["group", "identity", "source"]))
    session.flush()
    return session.get_one(GroupMembership, (group, identity, LOCAL))


def remove_member(session: Session, *, principal: Principal, group: str, identity: str) -> int:
    """Take ``identity`` out of ``group``, whatever the source (the provider's word comes back at its next
    sign-in, if it still says so). Returns the number of memberships removed (404 when none)."""
    require(principal, "group.manage", target=f"group {group}")
    get_group(session, group)
    gone = session.execute(delete(GroupMembership).where(GroupMembership.group == group,
                                                         GroupMembership.identity == identity))
    removed = int(getattr(gone, "rowcount", 0) or 0)
    if not removed:
        raise NotFound(f"{identity!r} is not in group {group!r}")
    return removed


def list_groups(session: Session, *, principal: Principal) -> list[tuple[Group, int]]:
    """Groups with their number of members: every group for admins, one's own for everyone else."""
    require(principal, "group.read")
    query = select(Group).order_by(Group.name)
    if not principal.is_admin:
        query = query.where(Group.name.in_(select(GroupMembership.group)
                                           .where(GroupMembership.identity == principal.name)))
    groups = list(session.scalars(query))
    counts: dict[str, set[str]] = {}
    for name, member in session.execute(select(GroupMembership.group, GroupMembership.identity)
                                        .where(GroupMembership.group.in_([g.name for g in groups]))):
        counts.setdefault(name, set()).add(member)
    return [(g, len(counts.get(g.name, ()))) for g in groups]


def show_group(session: Session, *, principal: Principal, name: str) -> tuple[Group, list[GroupMembership]]:
    """A group and its memberships: for admins and the group's members (others: not found, so a name
    is not confirmed to exist)."""
    require(principal, "group.read", target=f"group {name}")
    group = session.get(Group, name)
    if group is None or (not principal.is_admin and name not in groups_of(session, principal.name)):
        raise NotFound(f"no group named {name!r}")
    return group, members_of(session, name)
