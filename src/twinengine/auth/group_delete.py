"""Deleting a group (admins). What it owns (a row of any table whose ``owner_group`` column names it: twins,
lake identifiers, apps) keeps it from going, with a conflict that names them, unless the admin forces the
deletion: then each is handed to that admin (its owner column, named by the column's ``info``, becomes the
admin; an app becomes nobody's in particular). Grants to the group and its memberships go with it (every table
with a foreign key to it), so its members lose what it gave them at once.

The tables are found on the shared metadata rather than imported: this package sits below twins, lake and the
catalogue, which name the group in their own rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from twinengine.auth.groups import get_group, members_of
from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.errors import Conflict
from twinengine.store.base import Base

__all__ = ["GroupDeleted", "delete_group", "owned_by_group"]

_SHOWN = 20  # owned things named in a refusal


@dataclass(frozen=True)
class GroupDeleted:
    """What a deletion did: the group's former members, and what was handed to the admin (``kind name``)."""

    name: str
    members: list[str]
    handed_on: list[str]


def _label(kind: str, row: Any) -> str:
    if kind == "lake":
        return f"{row.type} {row.did}"
    if kind == "app":
        return f"app {row.name}@{row.version}"
    return f"{kind} {row.name}"


def _owning_classes() -> list[tuple[type[Any], dict[str, Any]]]:
    """The mapped classes with an ``owner_group`` column, with that column's ``info``."""
    found = []
    for mapper in Base.registry.mappers:
        column = mapper.columns.get("owner_group")
        if column is not None:
            found.append((mapper.class_, dict(column.info)))
    return sorted(found, key=lambda pair: str(pair[1].get("kind", "")))


def owned_by_group(session: Session, group: str) -> list[tuple[Any, dict[str, Any]]]:
    """Every row ``group`` owns, with its column's ``info``."""
    rows: list[tuple[Any, dict[str, Any]]] = []
    for cls, info in _owning_classes():
        rows.extend((row, info) for row in session.scalars(select(cls).where(cls.owner_group == group)))
    return rows


def _referring_tables(group_table: Table) -> list[tuple[Table, str]]:
    """(table, column) of every foreign key to the groups table: memberships, grants to groups."""
    return [(table, fk.parent.name) for table in Base.metadata.sorted_tables for fk in table.foreign_keys
            if fk.column.table is group_table]


def delete_group(session: Session, *, principal: Principal, name: str, force: bool = False) -> GroupDeleted:
    """Delete ``name``: refused (409, naming them) while it owns anything, unless ``force`` hands it all to
    ``principal``; grants to it and its memberships are removed."""
    require(principal, "group.manage", target=f"group {name}")
    group = get_group(session, name)
    owned = owned_by_group(session, name)
    labels = [_label(str(info.get("kind", "")), row) for row, info in owned]
    if owned and not force:
        shown = ", ".join(labels[:_SHOWN]) + (f" and {len(labels) - _SHOWN} more" if len(labels) > _SHOWN else "")
        raise Conflict(f"group {name} owns {len(labels)} thing(s): {shown}; delete or hand them on first, or "
                       f"force the deletion to hand them to {principal.name}",
                       details=[{"loc": "owned", "msg": label} for label in labels[:_SHOWN]])
    for row, info in owned:
        row.owner_group = None
        if info.get("owner"):
            setattr(row, str(info["owner"]), principal.name)
    members = sorted({m.identity for m in members_of(session, name)})
    session.flush()
    for table, column in _referring_tables(Base.metadata.tables[group.__tablename__]):
        session.execute(delete(table).where(table.c[column] == name))
    session.delete(group)
    session.flush()
    return GroupDeleted(name=name, members=members, handed_on=labels)
