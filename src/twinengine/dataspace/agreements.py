"""When an agreement comes into force on each side, and the audit event that says so."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth import odrl
from twinengine.auth.audit import record
from twinengine.dataspace.models import Agreement, Negotiation
from twinengine.dataspace.protocol import NegotiationState

__all__ = ["finalized_by_use", "mark_finalized"]


def mark_finalized(session: Session, row: Negotiation) -> None:
    """The negotiation is FINALIZED: its agreement (this side's copy) is in force, and the audit log says so."""
    agreement = session.scalar(select(Agreement).where(Agreement.id == row.agreement_id, Agreement.role == row.role))
    if agreement is not None and not agreement.finalized:
        agreement.finalized = True
        record(session, actor=row.owner, action="dataspace.agreement", target=agreement.id, outcome="success",
               detail={"event": "finalized", "role": row.role, "provider": agreement.provider,
                       "consumer": agreement.consumer, "dataset": agreement.dataset_id,
                       "policy": odrl.json_of(agreement.policy)})


def finalized_by_use(session: Session, agreement: Agreement) -> bool:
    """A consumer asks for a transfer under ``agreement`` while our FINALIZED event awaits its acknowledgement: it
    received it (it would not ask otherwise), so the negotiation is FINALIZED here too."""
    row = session.scalars(select(Negotiation).where(Negotiation.id == agreement.negotiation_id)
                          .with_for_update()).first()
    if row is None or row.state != NegotiationState.VERIFIED or row.pending != "finalize" or row.attempts < 1:
        return False
    row.state, row.pending, row.pending_detail, row.due_at, row.claimed_until = \
        NegotiationState.FINALIZED.value, None, None, None, None
    mark_finalized(session, row)
    return True
