"""Whether work someone started may go on: runs, ensembles, calibrations, assimilation cycles and triggers act
for the identity that started or owns them, and stop once it is disabled (by an admin, or held while its OpenID
provider disowns the person: ``auth.liveness``), whether the work has a twin or not, or may no longer operate
the twin (its grant revoked or lowered to ``read``, its group's grant withdrawn, it left the group). The loops
ask here as they work, so every way of losing the right stops the work, not only the ones that call back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.groups import groups_of
from twinengine.auth.models import Identity
from twinengine.auth.policy import refusal
from twinengine.auth.principal import Principal, Role
from twinengine.twins.models import Twin

__all__ = ["CODE", "lost", "lost_error"]

CODE = "GrantRevoked"  # the error code of work ended because its identity lost the right to operate the twin


def lost(session: Session, *, identity: str, twin_id: str | None, role: str = "user") -> str | None:
    """Why ``identity`` (acting with ``role``) may no longer do the work: disabled (by an admin, or held while
    its OpenID provider disowns the person), whether the work has a twin or not; or no longer allowed to
    operate the twin. None while it may."""
    if session.scalar(select(Identity.disabled).where(Identity.name == identity)):
        return f"identity {identity} was disabled"
    if twin_id is None:
        return None
    twin = session.get(Twin, twin_id)
    if twin is None:
        return None  # a deleted twin's work is ended by the deletion
    acting = Role(role) if role in Role._value2member_map_ else Role.USER
    principal = Principal(name=identity, role=acting, issuer="internal", groups=groups_of(session, identity))
    if refusal(principal, "twin.operate", twin) is not None:
        return f"{identity} may no longer operate twin {twin.name} (its grant was revoked)"
    return None


def lost_error(reason: str) -> dict[str, Any]:
    """The error a run, calibration or cycle ends with when :func:`lost` says why."""
    return {"code": CODE, "message": f"stopped: {reason}"}
