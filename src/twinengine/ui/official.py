"""Which of several twins at one place is the official one: the twin tagged ``official`` (``twin update T --tag
official``), the one a place's people are sent to. Forks (what-ifs, scenarios) never carry the tag, so the twin
a policy maker opens at a gauge says whether it is the one to trust, and names the one that is."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.policy import allowed
from twinengine.auth.principal import Principal
from twinengine.twins.glance import OFFICIAL_TAG, place_key, place_of
from twinengine.twins.models import Twin, TwinTag
from twinengine.ui.schemas import OfficialRead

__all__ = ["official_of"]

_MOST = 200  # official twins looked at: one per place, so few


def official_of(session: Session, principal: Principal, twin: Twin) -> OfficialRead:
    """Whether ``twin`` is its place's official twin, and which others at its place are (those the principal
    may read)."""
    tagged = OFFICIAL_TAG in (twin.tags or [])
    place = place_of(twin.parameters or {}, twin.location)
    key = place_key(twin.parameters or {}, twin.location)
    others: list[str] = []
    if key is not None:
        rows = session.scalars(select(Twin).join(TwinTag, TwinTag.twin_id == Twin.id)
                               .where(TwinTag.tag == OFFICIAL_TAG, Twin.id != twin.id).order_by(Twin.name).limit(_MOST))
        others = [t.name for t in rows if place_key(t.parameters or {}, t.location) == key
                  and allowed(principal, "twin.read", t)]
    where = f" at {key}" if key else ""
    if tagged:
        text = f"{twin.name} is the official twin{where}" + (f" (so are {', '.join(others)})" if others else "") + "."
    elif others:
        text = (f"{twin.name} is not the official twin{where}: the official one is {', '.join(others)}.")
    else:
        text = None
    return OfficialRead(official=tagged, place=place, twins=others, text=text)
