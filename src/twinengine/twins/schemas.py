"""Request and response models of the twins API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from twinengine.auth.group_schemas import GroupGrantRead
from twinengine.auth.policy import Permission
from twinengine.auth.principal import GROUP_NAME_PATTERN
from twinengine.quality.pedigree import ValueQuality
from twinengine.quality.spec import Flag
from twinengine.quality.uncertainty import Uncertainty
from twinengine.timeutil import Instant
from twinengine.twins.glance_schemas import TwinGlance
from twinengine.types import INT32_MAX

__all__ = [
    "Access",
    "DiffEntry",
    "GrantCreate",
    "GrantRead",
    "GroupGrantRead",
    "HistoryRead",
    "OriginRead",
    "PropertyValue",
    "PropertyWrite",
    "RevisionPage",
    "RevisionRead",
    "StateDiff",
    "StateKind",
    "StateWrite",
    "TwinCreate",
    "TwinFork",
    "TwinPage",
    "TwinRead",
    "TwinState",
    "ValueChange",
    "newest_of",
]

TWIN_NAME = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
APP_REF = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*(@[0-9A-Za-z.+-]+)?$"


class StateKind(StrEnum):
    REPORTED = "reported"  # what the physical twin says
    DESIRED = "desired"  # what users want it to be


class Access(StrEnum):
    """The caller's access to a twin, as shown on reads."""

    OWNER = "owner"
    OPERATE = "operate"
    READ = "read"
    ADMIN = "admin"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TwinCreate(_Input):
    app: str = Field(pattern=APP_REF, max_length=130, description="name@version; without @version, the latest.")
    name: str = Field(pattern=TWIN_NAME, max_length=64)
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    description: str | None = Field(default=None, max_length=2000)
    tags: list[str] = Field(default_factory=list, max_length=32, description="Fleet tags: a-z 0-9 - _ . :")
    location: dict[str, JsonValue] | None = Field(default=None,
                                                  description="GeoJSON Point, Polygon or MultiPolygon (WGS 84).")
    group: str | None = Field(default=None, pattern=GROUP_NAME_PATTERN, max_length=64,
                              description="A group the caller is in: the twin then belongs to the group's members.")


class TwinFork(_Input):
    name: str = Field(pattern=TWIN_NAME, max_length=64)
    at_revision: int | None = Field(default=None, ge=0, le=INT32_MAX,
                                    description="Default: the origin's head revision.")
    parameters: dict[str, JsonValue] | None = Field(default=None, description="Overrides of the origin's.")
    description: str | None = Field(default=None, max_length=2000)


class OriginRead(BaseModel):
    twin_id: str | None
    twin_name: str | None
    revision: int | None


class TwinRead(BaseModel):
    id: str
    name: str
    app: str
    app_name: str
    app_version: str
    owner: str
    owner_group: str | None = Field(default=None, description="The group that owns the twin (its members do); "
                                                               "``owner`` is then who created it.")
    description: str | None
    parameters: dict[str, Any]
    origin: OriginRead | None
    head_revision: int
    created_at: datetime
    updated_at: datetime
    access: Access
    tags: list[str] = Field(default_factory=list)
    location: dict[str, Any] | None = None
    expires_at: datetime | None = Field(default=None, description="When the engine deletes the twin (a what-if "
                                                                  "run's fork: `what_if_ttl` after it was made); "
                                                                  "null: kept until someone deletes it.")
    glance: TwinGlance | None = Field(default=None, exclude_if=lambda value: value is None,
                                      description="Listings with glance=true: status, place, last reading.")


class TwinPage(BaseModel):
    items: list[TwinRead]
    total: int


class PropertyWrite(_Input):
    value: JsonValue
    unit: str | None = Field(default=None, max_length=64, description="Default: the declared unit.")
    timestamp: Instant | None = Field(default=None, description="When the value was true (ISO 8601); default: now.")
    uncertainty: Uncertainty | None = Field(default=None, description="Forms the property declares, in `unit`.")


def _absent(value: Any) -> bool:
    return value is None


class StateWrite(_Input):
    reported: dict[str, PropertyWrite] = Field(default_factory=dict, max_length=1000)
    desired: dict[str, PropertyWrite] = Field(default_factory=dict, max_length=1000)
    message: str | None = Field(default=None, max_length=500)


class PropertyValue(BaseModel):
    """One property's value as read: the value, its unit, when it was true (``timestamp``) and the revision
    that wrote it, with its uncertainty, quality and staleness where they apply."""

    value: Any
    unit: str | None
    timestamp: datetime
    revision: int
    uncertainty: Uncertainty | None = Field(default=None, exclude_if=_absent,
                                            description="Present when the value carries its uncertainty.")
    quality: ValueQuality | None = Field(default=None, exclude_if=_absent,
                                         description="Present when it was computed from suspect or bad inputs, "
                                                     "or failed its property's checks.")
    stale: bool | None = Field(default=None, exclude_if=_absent,
                               description="On state reads, for a reported property with a gap check: whether "
                                           "this value is older than the check allows at the read's time.")
    stale_since: datetime | None = Field(default=None, exclude_if=_absent,
                                         description="When a stale value became stale (its timestamp + every + "
                                                     "tolerance).")


class TwinState(BaseModel):
    """A twin's state as read: ``reported`` and ``desired`` values by property name (a keyed property's as
    ``name[key]``, or by key through ``keyed``), the revision or time read, and ``delta`` (desired values
    the twin does not report yet)."""

    twin_id: str
    revision: int | None = Field(description="Revision the state is read at (absent for time queries).")
    at: datetime | None = Field(description="Valid time the state is read at (absent for revision queries).")
    reported: dict[str, PropertyValue]
    desired: dict[str, PropertyValue]
    delta: dict[str, Any] = Field(description="Desired values that differ from the reported ones.")
    quality: list[Flag] | None = Field(default=None, exclude_if=_absent,
                                       description="The flags a filtered read kept: each property shows its "
                                                   "newest value with one of them.")
    stale: list[str] | None = Field(default=None, exclude_if=_absent,
                                    description="Reported properties with a gap check whose value is stale at "
                                                "`stale_as_of` (present when the app declares a gap check).")
    stale_as_of: datetime | None = Field(default=None, exclude_if=_absent,
                                         description="The time staleness is judged at: now, `at`, or when the "
                                                     "revision read was recorded.")

    def keyed(self, name: str, kind: StateKind | str = "reported") -> dict[str, PropertyValue]:
        """A keyed property's values by key (``head[ow3]`` → ``{"ow3": ...}``), sorted by key."""
        values = self.reported if StateKind(kind) is StateKind.REPORTED else self.desired
        prefix = f"{name}["
        return {path[len(prefix):-1]: value for path, value in sorted(values.items())
                if path.startswith(prefix) and path.endswith("]")}


class PropertyRead(BaseModel):
    """One property's value now, as of a revision or as of a time; for a keyed property read whole, each
    key's value."""

    twin_id: str
    property: str
    kind: StateKind
    key: str | None = Field(description="What a keyed property is keyed by (e.g. well); null for others.")
    unit: str | None
    revision: int | None = Field(description="Revision the value is read at (absent for time queries).")
    at: datetime | None = Field(description="Valid time the value is read at (absent for revision queries).")
    value: PropertyValue | None = Field(description="The value of an unkeyed property or of one key "
                                                    "(`head[ow3]`); null when none was written yet.")
    keys: dict[str, PropertyValue] | None = Field(
        default=None, exclude_if=_absent, description="A keyed property read whole (`head`): key → value.")


class ValueChange(BaseModel):
    property: str
    kind: StateKind
    value: Any
    unit: str | None
    timestamp: datetime
    uncertainty: Uncertainty | None = Field(default=None, exclude_if=_absent,
                                            description="Present when the value carries its uncertainty.")
    quality: ValueQuality | None = Field(default=None, exclude_if=_absent,
                                         description="Present when it was computed from suspect or bad inputs.")


class RevisionRead(BaseModel):
    twin_id: str
    revision: int
    recorded_at: datetime
    author: str
    message: str | None
    changes: list[ValueChange]


class RevisionPage(BaseModel):
    items: list[RevisionRead]
    total: int


class HistoryRead(BaseModel):
    twin_id: str
    property: str
    kind: StateKind
    unit: str | None
    datum: str | None = Field(default=None, exclude_if=_absent,
                              description="The vertical datum or reference the property declares beside its unit.")
    items: list[PropertyValue]
    quality: list[Flag] | None = Field(default=None, exclude_if=_absent,
                                       description="The flags a filtered read kept.")


class DiffEntry(BaseModel):
    property: str
    kind: StateKind
    change: Literal["added", "removed", "changed"]
    before: PropertyValue | None
    after: PropertyValue | None


class StateDiff(BaseModel):
    twin_id: str
    from_revision: int
    to_revision: int
    changes: list[DiffEntry]


class GrantCreate(_Input):
    identity: str = Field(pattern=r"^[a-z][a-z0-9._-]{0,63}$", max_length=64)
    permission: Permission


class GrantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    identity: str
    permission: Permission
    granted_by: str
    granted_at: datetime


def newest_of(reported: Mapping[str, PropertyValue], props: Sequence[str]) -> tuple[str, PropertyValue] | None:
    """Of several properties that say one thing (an analysis, then the estimates it corrects), the one whose value
    is newest, at the same time the one listed first (where a run starts). None when none has one."""
    found = [(i, prop, v) for i, prop in enumerate(props) if (v := reported.get(prop)) is not None]
    if not found:
        return None
    _, prop, value = max(found, key=lambda f: (f[2].timestamp, -f[0]))
    return prop, value
