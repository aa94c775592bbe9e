"""The terms a copy of another participant's data is held under on this engine: the agreement's ODRL policy,
which the data space writes into ``meta.dataspace`` of the dataset it lands and of each file in it
(``twinengine.dataspace.dataplane``). Each use of such a DID's bytes (a download, a collection read by openEO
or EDR, a file staged for a compute site or a CWL step) is judged by that policy at the phase "use of the copy":
its dates by this engine's clock, and its elapsed time since the agreement was signed.

Only a DID's own metadata counts: a dataset's terms reach the files the data space landed in it (each carries
them), never a file someone else attaches to a dataset of theirs. Listing, reading the metadata and deleting
stay open: the terms bind the use of the data, and the person holding it must see why it can no longer be used
and be able to remove it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twinengine.auth import odrl
from twinengine.errors import PermissionDenied
from twinengine.lake.models import Did

__all__ = ["KEY", "refusal", "require_use"]

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


def refusal(did: Did, *, now: datetime | None = None) -> str | None:
    """Why ``did``'s bytes may not be used now under the terms it is held under, or None (no terms, or they
    permit it). Terms that cannot be read refuse (the policy fails closed)."""
    meta = did.meta if isinstance(did.meta, dict) else {}
    terms = meta.get(KEY)
    if terms is None:
        return None
    policy = terms.get("policy") if isinstance(terms, dict) else None
    if not isinstance(policy, dict):
        return f"{did.did} is held under a data-space agreement whose terms cannot be read"
    ctx = odrl.Context(phase=odrl.Phase.COPY, participant="", now=now or datetime.now(UTC),
                       agreed_at=_signed(terms))
    reason = odrl.decide(policy, ctx)
    if reason is None:
        return None
    return (f"{did.did} is a copy of {terms.get('provider')}'s dataset {terms.get('dataset')}, held under agreement "
            f"{terms.get('agreement')} (signed {terms.get('signed_at')}), whose terms no longer permit its use: "
            f"{reason}")


def require_use(did: Did) -> Did:
    """``did`` when its terms permit using its bytes now; else refused (403), naming the agreement and why."""
    reason = refusal(did)
    if reason is not None:
        raise PermissionDenied(reason, details=[{"loc": "did", "msg": "the agreement's terms do not permit this use"}])
    return did
