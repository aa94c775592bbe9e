"""Grants of a twin to groups: every member of the group has the grant for as long as it is a member."""

from __future__ import annotations

from sqlalchemy.orm import Session

from twinengine.auth.groups import get_group
from twinengine.auth.policy import Permission
from twinengine.auth.principal import Principal
from twinengine.errors import NotFound, ValidationFailed
from twinengine.store.base import lock_for_delete, upsert
from twinengine.twins.models import TwinGroupGrant
from twinengine.twins.service import get_twin

__all__ = ["grant_group", "list_group_grants", "revoke_group"]


def grant_group(session: Session, *, principal: Principal, ref: str, group: str,
                permission: Permission) -> TwinGroupGrant:
    """Give ``group`` ``read`` or ``operate`` on a twin (its owner, or admins)."""
    twin = get_twin(session, principal=principal, ref=ref, action="twin.manage")
    get_group(session, group)
    if group == twin.owner_group:
        raise ValidationFailed.one("group", f"group {group} owns this twin already")
    statement = upsert(session.get_bind().dialect.name, TwinGroupGrant).values(
        twin_id=twin.id, group=group, permission=permission.value, granted_by=principal.name)
    session.execute(statement.on_conflict_do_update(
        index_elements=["twin_id", "group"],
        set_={"permission": statement.excluded.permission, "granted_by": statement.excluded.granted_by}))
    session.expire(twin, ["group_grants"])
    return session.get_one(TwinGroupGrant, (twin.id, group), populate_existing=True)


def revoke_group(session: Session, *, principal: Principal, ref: str, group: str) -> None:
    twin = get_twin(session, principal=principal, ref=ref, action="twin.manage")
    for existing in list(twin.group_grants):
        if existing.group == group:
            lock_for_delete(session, existing, NotFound(f"group {group} has no grant on twin {twin.name}"))
            twin.group_grants.remove(existing)
            session.flush()
            return
    raise NotFound(f"group {group} has no grant on twin {twin.name}")


def list_group_grants(session: Session, *, principal: Principal, ref: str) -> list[TwinGroupGrant]:
    twin = get_twin(session, principal=principal, ref=ref, action="twin.read")
    return sorted(twin.group_grants, key=lambda g: g.group)
