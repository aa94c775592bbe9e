"""A twin at a glance, for lists of twins: its app's title, where it is, whether it needs attention (an alert
on, data stale, inputs flagged) and when it last reported. Read for a whole page of twins in one statement
over the heads, so a list never asks twin by twin."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.catalog.manifest import Manifest, StateProperty, StateType
from twinengine.catalog.state_keys import base_of
from twinengine.quality.stored import unpack
from twinengine.store.base import utcnow
from twinengine.twins import service
from twinengine.twins.glance_schemas import Status, TwinGlance
from twinengine.twins.models import StateHead, Twin
from twinengine.twins.places import OFFICIAL_TAG
from twinengine.twins.state_quality import stale_limits

__all__ = ["OFFICIAL_TAG", "TwinGlance", "glance", "is_alert_property", "place_key", "place_of"]

_ALERT = re.compile(r"(^|_)alert(_|$)")
_PLACE_PARAMETERS = ("station", "site", "place", "field", "location_name", "basin", "catchment", "region")


def is_alert_property(name: str, declared: StateProperty | None) -> bool:
    """A boolean state property named ``alert`` or with ``alert`` as a word of its name (``forecast_alert``)."""
    return declared is not None and declared.type == StateType.BOOLEAN and bool(_ALERT.search(name))


def _coordinates(location: dict[str, Any] | None) -> tuple[float, float] | None:
    if not location or location.get("type") != "Point":
        return None
    coords = location.get("coordinates") or []
    return (float(coords[0]), float(coords[1])) if len(coords) >= 2 else None


def place_key(parameters: dict[str, Any], location: dict[str, Any] | None) -> str | None:
    """What makes two twins at one place: the station or site they name, else their point to about 100 m."""
    named = next((str(parameters[k]) for k in _PLACE_PARAMETERS if isinstance(parameters.get(k), str | int)), None)
    return named or place_of(parameters, location)


def place_of(parameters: dict[str, Any], location: dict[str, Any] | None) -> str | None:
    """A station or site named in the parameters, with the twin's point location when it has one."""
    named = next((str(parameters[k]) for k in _PLACE_PARAMETERS if isinstance(parameters.get(k), str | int)), None)
    point = _coordinates(location)
    if point is None:
        lon, lat = parameters.get("longitude", parameters.get("lon")), parameters.get("latitude", parameters.get("lat"))
        if isinstance(lon, int | float) and isinstance(lat, int | float):
            point = (float(lon), float(lat))
    where = None
    if point is not None:
        lon, lat = point
        where = f"{abs(lat):.3f}°{'N' if lat >= 0 else 'S'} {abs(lon):.3f}°{'E' if lon >= 0 else 'W'}"
    if named and where:
        return f"{named} ({where})"
    return named or where


def _one(twin: Twin, manifest: Manifest | None, heads: list[Any], now: datetime) -> TwinGlance:
    declared = manifest.state if manifest is not None else {}
    limits = stale_limits(manifest)
    alerts: list[str] = []
    stale: list[str] = []
    flagged: dict[str, str] = {}
    last: tuple[datetime, str] | None = None
    for row in heads:
        value, _, quality = unpack(row.value)
        base = base_of(row.property)
        if value is True and is_alert_property(base, declared.get(base)):
            alerts.append(row.property)
        limit = limits.get(base)
        if limit is not None and now > row.timestamp + limit:
            stale.append(row.property)
        if isinstance(quality, dict) and quality.get("flag") in ("suspect", "bad"):
            flagged[row.property] = str(quality["flag"])
        regular = limit is not None or not limits  # readings the app expects regularly, when it says which
        if regular and (last is None or row.timestamp > last[0]):
            last = (row.timestamp, row.property)
    reasons = [f"{name} is on" for name in sorted(alerts)]
    reasons += [f"{name} is stale" for name in sorted(stale)[:5]] + (
        [f"and {len(stale) - 5} more stale values"] if len(stale) > 5 else [])
    reasons += [f"{name} is flagged {flag}" for name, flag in sorted(flagged.items())[:5]]
    status: Status = "alert" if alerts else "stale" if stale else "ok"
    return TwinGlance(title=manifest.title if manifest is not None else None,
                      place=place_of(twin.parameters or {}, twin.location),
                      official=OFFICIAL_TAG in (twin.tags or []), status=status, reasons=reasons,
                      alerts=sorted(alerts), stale=sorted(stale), flagged=flagged,
                      last_reading=last[0] if last else None, last_property=last[1] if last else None)


def glance(session: Session, twins: Sequence[Twin]) -> dict[str, TwinGlance]:
    """Each twin's glance by id: one statement over the reported heads of all of them, one manifest per app
    version. The caller has already checked that it may read these twins."""
    if not twins:
        return {}
    rows = session.execute(select(StateHead.twin_id, StateHead.property, StateHead.value, StateHead.timestamp)
                           .where(StateHead.twin_id.in_([t.id for t in twins]), StateHead.kind == "reported"))
    by_twin: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_twin[row.twin_id].append(row)
    manifests: dict[int, Manifest] = {}
    now = utcnow()
    out = {}
    for twin in twins:
        if twin.app_id not in manifests:
            manifests[twin.app_id] = service.manifest_for(session, twin)
        out[twin.id] = _one(twin, manifests[twin.app_id], by_twin.get(twin.id, []), now)
    return out
