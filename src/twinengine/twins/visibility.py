"""Which twins a caller may read, as one SQL condition: ``auth.policy``'s ``twin.read`` rule (owner, owning
group, grant to the identity or to one of its groups) and a scoped token's twins, for listings, fleet queries
and links. ``tests/integration/test_groups.py`` checks that it agrees with the rule, twin by twin."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, false, or_

from twinengine.auth.principal import Principal
from twinengine.auth.scopes import SCOPES, twin_ids_only, twin_limit
from twinengine.twins.models import Twin, TwinGrant, TwinGroupGrant

__all__ = ["visible_to"]


def visible_to(principal: Principal) -> ColumnElement[bool] | None:
    """Twins ``principal`` may read, as a condition on ``Twin`` (None: every twin, for unlimited admins)."""
    where: list[ColumnElement[bool]] = []
    if principal.scopes is not None and not any("twin.read" in SCOPES.get(s, ()) or "twin.list" in
                                                SCOPES.get(s, ()) for s in principal.scopes):
        return false()
    limit = twin_limit(principal)
    if limit is not None:  # by id where the token recorded its twins' ids (a twin named so later is another)
        keys = sorted(limit)
        where.append(Twin.id.in_(keys) if twin_ids_only(principal) else or_(Twin.name.in_(keys), Twin.id.in_(keys)))
    if not principal.is_admin:
        mine = and_(Twin.owner == principal.name, Twin.owner_group.is_(None))
        granted = exists().where(TwinGrant.twin_id == Twin.id, TwinGrant.identity == principal.name)
        ways: list[ColumnElement[bool]] = [mine, granted]
        if principal.groups:
            groups = sorted(principal.groups)
            ways += [Twin.owner_group.in_(groups),
                     exists().where(TwinGroupGrant.twin_id == Twin.id, TwinGroupGrant.group.in_(groups))]
        where.append(or_(*ways))
    return and_(*where) if where else None
