"""The twins a group of state writes operates, found and authorized with one statement.

The store's one writer (SQLite) applies the single writes of many requests together (``twins.write_group``).
Each needs its twin, the policy's verdict on ``twin.operate`` for its caller, and its app's manifest: here one
statement, run straight on the group's connection (``store.direct``), reads every twin the group names with
what the policy point reads of it (owner, owning group, the grants to the group's callers and to their
groups), and each call is judged by ``auth.policy.require`` exactly as ``service.twin_to_operate`` judges a
write alone, with the same errors word for word.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Select, Table, Text, bindparam, func, literal_column, or_, select
from sqlalchemy.orm import Session

from twinengine.auth.policy import Permission, require
from twinengine.auth.principal import Principal
from twinengine.catalog import service as catalog
from twinengine.catalog.manifest import Manifest
from twinengine.errors import TwinEngineError, TwinNotFound
from twinengine.store.direct import Direct
from twinengine.twins import service
from twinengine.twins.models import Twin, TwinGrant, TwinGroupGrant

__all__ = ["TwinToOperate", "twins_to_operate"]


@dataclass(frozen=True, slots=True)
class TwinToOperate:
    """A twin as the policy point sees it for a write (``auth.policy.owner_or_granted``): answers as ``Twin``
    does, from the grants to the identities and groups of the callers it was read for."""

    id: str
    name: str
    owner: str
    owner_group: str | None
    app_id: int
    grants: dict[str, str]  # identity -> permission, of the callers' identities
    group_grants: dict[str, str]  # group -> permission, of the callers' groups

    @property
    def twin_id(self) -> str:
        """The twin this is (``auth.scopes.twin_of``), as ``Twin.twin_id``."""
        return self.id

    def permission_of(self, identity: str) -> Permission | None:
        granted = self.grants.get(identity)
        return Permission(granted) if granted is not None else None

    def group_permission_of(self, groups: frozenset[str]) -> Permission | None:
        """The best grant to any of ``groups`` (operate over read), as ``Twin.group_permission_of``."""
        found = {Permission(p) for group, p in self.group_grants.items() if group in groups}
        return Permission.OPERATE if Permission.OPERATE in found else next(iter(found), None)


def _listed(name: str) -> Select[Any]:
    """The items of a JSON array bound as ``name``: an ``IN`` list of any length in one compiled statement."""
    return select(literal_column("value")).select_from(func.json_each(bindparam(name, type_=Text)))


_TWINS = cast(Table, Twin.__table__).c
_GRANTS, _GROUP_GRANTS = cast(Table, TwinGrant.__table__).c, cast(Table, TwinGroupGrant.__table__).c
_TO_OPERATE = Direct(select(
    _TWINS.id, _TWINS.name, _TWINS.owner, _TWINS.owner_group, _TWINS.app_id, catalog.digest_of(_TWINS.app_id),
    select(func.json_group_object(_GRANTS.identity, _GRANTS.permission))
    .where(_GRANTS.twin_id == _TWINS.id, _GRANTS.identity.in_(_listed("who"))).scalar_subquery(),
    select(func.json_group_object(_GROUP_GRANTS.group, _GROUP_GRANTS.permission))
    .where(_GROUP_GRANTS.twin_id == _TWINS.id, _GROUP_GRANTS.group.in_(_listed("groups"))).scalar_subquery(),
).where(or_(_TWINS.id.in_(_listed("refs")), _TWINS.name.in_(_listed("refs")))))


def twins_to_operate(session: Session, calls: Sequence[tuple[Principal, str]]
                     ) -> list[tuple[TwinToOperate, Manifest] | TwinEngineError]:
    """For each (caller, ref): the twin the caller may operate and its app's manifest, or the error
    ``service.twin_to_operate`` raises for it. SQLite only (the store with one writer)."""
    principals = [principal for principal, _ref in calls]
    rows = _TO_OPERATE.rows(session, {
        "refs": json.dumps(sorted({ref for _principal, ref in calls})),
        "who": json.dumps(sorted({p.name for p in principals})),
        "groups": json.dumps(sorted({group for p in principals for group in p.groups}))})
    twins = [(TwinToOperate(twin_id, name, owner, owner_group, app_id, json.loads(grants or "{}"),
                            json.loads(group_grants or "{}")), digest)
             for twin_id, name, owner, owner_group, app_id, digest, grants, group_grants in rows]
    by_id = {twin.id: (twin, digest) for twin, digest in twins}
    by_name = {twin.name: (twin, digest) for twin, digest in twins}
    out: list[tuple[TwinToOperate, Manifest] | TwinEngineError] = []
    for principal, ref in calls:
        found = (by_id.get(ref) if service.looks_like_id(ref) else None) or by_name.get(ref)  # an id first
        try:
            if found is None:
                raise TwinNotFound(f"no twin with id or name {ref!r}")
            twin, digest = found
            require(principal, "twin.operate", twin, target=f"twin {ref}")
            out.append((twin, catalog.manifest_by_digest(session, twin.app_id, digest)))
        except TwinEngineError as error:
            out.append(error)
    return out
