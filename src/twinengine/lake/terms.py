"""The terms a copy of another participant's data is held under on this engine: the agreement's ODRL policy,
which the data space writes into ``meta.dataspace`` of the dataset it lands and of each file in it
(``twinengine.dataspace.dataplane``). Each use of such a DID's bytes (a download, a collection read by openEO
or EDR, a file staged for a compute site or a CWL step) is judged by that policy at the phase "use of the copy":
its dates by this engine's clock, its elapsed time since the agreement was signed, and its ``count`` against the
uses of every copy landed under the agreement (``CopyUse``, one row per agreement): a count of 3 is not lost by
copying. A use is counted in a unit of work of its own, judged with the count it makes, and not counted when
refused; two at once on PostgreSQL wait for each other on the row, so never more pass than the count allows.

Only a DID's own metadata counts: a dataset's terms reach the files the data space landed in it (each carries
them), never a file someone else attaches to a dataset of theirs. Listing, reading the metadata and deleting
stay open: the terms bind the use of the data, and the person holding it must see why it can no longer be used
and be able to remove it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from twinengine.auth import odrl
from twinengine.errors import PermissionDenied
from twinengine.lake.models import CopyUse, Did
from twinengine.lake.schemas import CopyTerms
from twinengine.store.base import upsert, utcnow
from twinengine.store.engine import Database

__all__ = ["KEY", "copy_terms", "copy_terms_of", "refusal", "require_permitted", "require_use", "uses_of"]

KEY = "dataspace"  # the metadata of a landed copy: provider, agreement, dataset, policy, signed_at


def _signed(terms: dict[str, Any]) -> datetime | None:
    value = terms.get("signed_at")
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _terms(did: Did) -> dict[str, Any] | None:
    meta = did.meta if isinstance(did.meta, dict) else {}
    terms = meta.get(KEY)
    return None if terms is None else terms if isinstance(terms, dict) else {}


def _judge(did: Did, terms: dict[str, Any], *, uses: int, now: datetime | None = None) -> str | None:
    policy = terms.get("policy")
    if not isinstance(policy, dict):
        return f"{did.did} is held under a data-space agreement whose terms cannot be read"
    ctx = odrl.Context(phase=odrl.Phase.COPY, participant="", now=now or datetime.now(UTC),
                       agreed_at=_signed(terms), uses=uses)
    reason = odrl.decide(policy, ctx)
    if reason is None:
        return None
    return (f"{did.did} is a copy of {terms.get('provider')}'s dataset {terms.get('dataset')}, held under agreement "
            f"{terms.get('agreement')} (signed {terms.get('signed_at')}), whose terms no longer permit its use: "
            f"{reason}")


def uses_of(session: Session, agreement: str) -> int:
    """The uses counted so far of the copies landed under ``agreement``."""
    row = session.get(CopyUse, agreement)
    return 0 if row is None else int(row.uses)


def refusal(did: Did, *, now: datetime | None = None, session: Session | None = None) -> str | None:
    """Why ``did``'s bytes may not be used now under the terms it is held under, or None (no terms, or they
    permit it). Terms that cannot be read refuse (the policy fails closed). With ``session``, a ``count`` is
    judged for one more use; without, only the dates are (a check, not a use: ``require_use`` counts)."""
    terms = _terms(did)
    if terms is None:
        return None
    agreement = terms.get("agreement")
    uses = uses_of(session, str(agreement)) + 1 if session is not None and isinstance(agreement, str) else 0
    return _judge(did, terms, uses=uses, now=now)


def copy_terms(session: Session, did: Did, *, uses: int | None = None) -> CopyTerms | None:
    """What the holder of a copy reads of its terms: the agreement, its uses here and whether one more is
    permitted now (None: not a copy held under terms). ``uses``: its agreement's, already read."""
    held = _terms(did)
    if held is None:
        return None
    agreement = str(held.get("agreement") or "")
    uses = uses_of(session, agreement) if uses is None else uses
    reason = _judge(did, held, uses=uses + 1)  # as ``refusal`` judges one more use
    return CopyTerms(agreement=agreement, provider=held.get("provider"), uses=uses, usable=reason is None,
                     refusal=reason)


def copy_terms_of(session: Session, dids: Sequence[Did]) -> dict[int, CopyTerms]:
    """``copy_terms`` of each DID of a page held under terms, by its id: one read of the uses for all of them."""
    held = {did.id: terms for did in dids if (terms := _terms(did)) is not None}
    agreements = {str(terms.get("agreement") or "") for terms in held.values()}
    counted = dict(session.execute(select(CopyUse.agreement, CopyUse.uses)
                                   .where(CopyUse.agreement.in_(agreements))).all()) if agreements else {}
    found: dict[int, CopyTerms] = {}
    for did in dids:
        if did.id in held:
            agreement = str(held[did.id].get("agreement") or "")
            read = copy_terms(session, did, uses=int(counted.get(agreement, 0)))
            if read is not None:
                found[did.id] = read
    return found


def _denied(reason: str) -> PermissionDenied:
    return PermissionDenied(reason, details=[{"loc": "did", "msg": "the agreement's terms do not permit this use"}])


def require_permitted(did: Did, *, session: Session | None = None) -> None:
    """Refused (403, naming the agreement and why) when ``refusal`` says why; nothing is counted."""
    reason = refusal(did, session=session)
    if reason is not None:
        raise _denied(reason)


def require_use(db: Database | None, *dids: Did) -> None:
    """Count one use of ``dids``' bytes (a copy's dataset and its file count once, per agreement); refused
    (403, naming the agreement and why) when their terms do not permit it now. ``db`` None: a count cannot be
    kept, so terms with a ``count`` refuse (fail closed)."""
    held: dict[str, tuple[Did, dict[str, Any]]] = {}
    for did in dids:
        terms = _terms(did)
        if terms is None:
            continue
        reason = _judge(did, terms, uses=0)  # the dates, and terms that cannot be read, before anything is counted
        if reason is not None:
            raise _denied(reason)
        agreement = terms.get("agreement")
        if not isinstance(agreement, str) or not agreement:
            raise _denied(f"{did.did} is held under a data-space agreement whose terms cannot be read")
        held.setdefault(agreement, (did, terms))
    if not held:
        return
    if db is None:
        raise _denied(f"{next(iter(held.values()))[0].did}: its uses under the agreement cannot be counted here")
    with db.session() as session:  # rolled back when refused: a refused use is not counted
        dialect = session.get_bind().dialect.name
        for agreement, (did, terms) in sorted(held.items()):
            session.execute(upsert(dialect, CopyUse).values(agreement=agreement, uses=0)
                            .on_conflict_do_nothing(index_elements=["agreement"]))
            uses = session.scalar(update(CopyUse).where(CopyUse.agreement == agreement)
                                  .values(uses=CopyUse.uses + 1, last_at=utcnow()).returning(CopyUse.uses))
            reason = _judge(did, terms, uses=int(uses or 0))
            if reason is not None:
                raise _denied(reason)
