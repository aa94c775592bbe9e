"""The consumer's side of a ``delete`` duty: the copy a transfer landed under an agreement whose policy obliges
its deletion (``odrl.delete_by``: so many days after the agreement, or by a date) is deleted by this engine when
due, whoever holds it on this engine, and the deletion is written to the audit log.

What is deleted is exactly what the transfer landed: the files of its dataset that carry this agreement's terms
(``lake.terms``) and the dataset itself when the landing made it (it carries them too and holds nothing else). Data
derived from the copy (a run's results, a twin's state) is not traced back to it and stays: the duty binds the
copy. Until it is due the copy is used under the agreement's other terms; its replicas' bytes are erased with it.
"""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy import select

from twinengine.auth.audit import record
from twinengine.auth.principal import SYSTEM
from twinengine.dataspace.connector import Connector
from twinengine.dataspace.models import TransferProcess
from twinengine.dataspace.protocol import Role
from twinengine.errors import DidNotFound
from twinengine.lake import terms
from twinengine.store.base import utcnow

__all__ = ["delete_due"]

log = logging.getLogger(__name__)


def _landed_under(did: object, agreement: str) -> bool:
    meta = getattr(did, "meta", None)
    held = meta.get(terms.KEY) if isinstance(meta, dict) else None
    return isinstance(held, dict) and held.get("agreement") == agreement


def delete_due(connector: Connector, limit: int = 20) -> int:
    """Delete the copies whose ``delete`` duty is due now; how many transfers' copies were deleted."""
    from twinengine.lake.dids import children_of, get_did
    from twinengine.lake.removal import delete_did

    now = utcnow()
    with connector.db.session(readonly=True) as session:
        due = list(session.execute(select(TransferProcess.id, TransferProcess.landed, TransferProcess.agreement_id)
                                   .where(TransferProcess.role == Role.CONSUMER.value,
                                          TransferProcess.landed.is_not(None),
                                          TransferProcess.deleted_at.is_(None),
                                          TransferProcess.delete_by <= now).limit(limit)))
    done = 0
    for row_id, landed_did, agreement in due:
        landed = str(landed_did)
        with connector.db.session(readonly=True) as session:
            try:
                dataset = get_did(session, landed)
            except DidNotFound:  # deleted by its holder already
                dataset = None
            files = [] if dataset is None else [c.did for c in children_of(session, dataset)
                                                 if _landed_under(c, agreement)]
            whole = dataset is not None and _landed_under(dataset, agreement) and \
                len(children_of(session, dataset)) == len(files)
        for did in [*files, *([landed] if whole else [])]:
            with contextlib.suppress(DidNotFound):  # deleted meanwhile by its holder
                delete_did(connector.db, connector.lake, principal=SYSTEM, did=did, owner_check=False)
        with connector.db.session() as session:
            row = session.get(TransferProcess, row_id)
            if row is None:
                continue
            row.deleted_at = utcnow()
            record(session, actor="dataspace", action="dataspace.copy", target=landed, outcome="success",
                   detail={"event": "deleted", "agreement": agreement, "files": files, "dataset": whole,
                           "due": row.delete_by.isoformat() if row.delete_by else None})
        log.info("deleted the copy %s (agreement %s): its delete duty was due", landed, agreement)
        done += 1
    return done
