"""Deleting a DID: its rules (their locks released as if removed one by one), memberships and, for a file, its
replicas with their bytes. A module of its own because it needs both identifiers and rules."""

from __future__ import annotations

import logging

from sqlalchemy import delete, func, select

from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.errors import DidNotFound, PermissionDenied, TwinEngineError
from twinengine.lake.context import Lake
from twinengine.lake.dids import get_did, replicas_of
from twinengine.lake.grants import may_change, may_read
from twinengine.lake.models import Attachment, Endpoint, Replica, Rule
from twinengine.lake.rules import release_locks
from twinengine.store.engine import Database

__all__ = ["delete_did"]

log = logging.getLogger("twinengine.lake")


def delete_did(db: Database, lake: Lake, *, principal: Principal, did: str, owner_check: bool = True) -> None:
    """Remove ``did`` for its owner (its creator, its group's members, those who may operate its twin) or an
    admin. A dataset's files and a container's members stay: they are DIDs of their own. Bytes are erased after
    the commit, so a failure leaves bytes, never a dangling row."""
    require(principal, "lake.write")
    erase: list[tuple[Endpoint, str]] = []
    with db.session() as session:
        row = get_did(session, did)
        if owner_check and not may_change(session, principal, row):
            if not may_read(session, principal, row):  # as if it were not there
                raise DidNotFound(f"no file, dataset or container {did!r}")
            whose = f"twin {row.owner_twin}'s" if row.owner_twin is not None else f"created by {row.created_by}"
            raise PermissionDenied(f"{principal.name} may not delete {did} ({whose})")
        for rule_id in list(session.scalars(select(Rule.id).where(Rule.did_id == row.id))):
            release_locks(session, rule_id, lake.tuning.tombstone_grace)
        session.execute(delete(Rule).where(Rule.did_id == row.id))
        for replica, endpoint in replicas_of(session, row):
            shared = session.scalar(select(func.count()).select_from(Replica).where(
                Replica.endpoint_id == endpoint.id, Replica.path == replica.path, Replica.did_id != row.id)) or 0
            if not shared:
                erase.append((endpoint, replica.path))
        session.execute(delete(Attachment).where((Attachment.parent_id == row.id) | (Attachment.child_id == row.id)))
        session.execute(delete(Replica).where(Replica.did_id == row.id))
        session.delete(row)
        session.flush()
        session.expunge_all()
    for endpoint, path in erase:
        try:
            lake.backend(endpoint).delete(path)
        except TwinEngineError as exc:
            log.warning("cannot delete %s from %s: %s", path, endpoint.name, exc.message)
