"""Request and response models of the lake API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from twinengine.auth.principal import GROUP_NAME_PATTERN
from twinengine.timeutil import Instant

__all__ = [
    "AttachBody", "CopyTerms", "DidCreate", "DidPage", "DidRead", "DidType", "EndpointCreate", "EndpointCredential",
    "EndpointPage", "EndpointRead", "EndpointUpdate", "ImportResult", "ImportStac", "ReplicaRead", "ReplicaState",
    "RuleCreate", "RulePage", "RuleRead", "RuleState", "TransferRead", "UploadResult", "VerifyRequest",
    "VerifyResult",
]

ENDPOINT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ATTR_KEY = r"^[A-Za-z0-9_.-]{1,64}$"
DID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}:[A-Za-z0-9][A-Za-z0-9_.\-/]{0,254}$"
MAX_BYTES = 2**63 - 1  # a size the store's signed 64-bit integers hold


class DidType(StrEnum):
    FILE = "file"
    DATASET = "dataset"
    CONTAINER = "container"


class ReplicaState(StrEnum):
    COPYING = "COPYING"
    AVAILABLE = "AVAILABLE"
    UNAVAILABLE = "UNAVAILABLE"
    BAD = "BAD"
    BEING_DELETED = "BEING_DELETED"


class RuleState(StrEnum):
    REPLICATING = "REPLICATING"
    OK = "OK"
    STUCK = "STUCK"
    SUSPENDED = "SUSPENDED"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointCredential(_Input):
    """S3 keys (``kind: s3``) or a bearer token (``kind: bearer``); stored encrypted, never returned."""

    kind: Literal["s3", "bearer"]
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    token: SecretStr | None = None

    def secret(self) -> dict[str, str]:
        return {k: v.get_secret_value() for k, v in (("access_key", self.access_key), ("secret_key", self.secret_key),
                                                      ("token", self.token)) if v is not None}


class EndpointCreate(_Input):
    name: str = Field(pattern=ENDPOINT_NAME)
    protocol: str = Field(max_length=16, description="file, s3, or a plugin's protocol")
    location: str = Field(min_length=1, max_length=1024, description="a folder, or bucket[/prefix]")
    options: dict[str, str] = Field(default_factory=dict, description="non-secret settings, e.g. endpoint_url")
    attributes: dict[str, str] = Field(default_factory=dict, description="site, tier, type, any key=value")
    quota_bytes: int | None = Field(default=None, ge=0, le=MAX_BYTES)
    read: bool = True
    write: bool = True
    delete: bool = True
    credential: EndpointCredential | None = None


class EndpointUpdate(_Input):
    """Fields to change; ``attributes`` entries set (a null value removes the key)."""

    location: str | None = Field(default=None, min_length=1, max_length=1024)
    options: dict[str, str] | None = None
    attributes: dict[str, str | None] | None = None
    quota_bytes: int | None = Field(default=None, ge=0, le=MAX_BYTES)
    clear_quota: bool = False
    read: bool | None = None
    write: bool | None = None
    delete: bool | None = None
    credential: EndpointCredential | None = None
    clear_credential: bool = False


class EndpointRead(BaseModel):
    name: str
    protocol: str
    location: str
    options: dict[str, Any]
    attributes: dict[str, str]
    quota_bytes: int | None
    used_bytes: int
    replicas: int
    read: bool
    write: bool
    delete: bool
    credential: str | None = Field(description="the kind of credential stored (never the secret)")
    created_at: datetime


class EndpointPage(BaseModel):
    items: list[EndpointRead]
    total: int


class ReplicaRead(BaseModel):
    id: int
    did: str
    endpoint: str
    state: ReplicaState
    bytes: int | None
    path: str
    tombstone: datetime | None
    error: str | None
    verified_at: datetime | None
    updated_at: datetime


class DidCreate(_Input):
    did: str = Field(pattern=DID_PATTERN, description="scope:name")
    type: Literal["dataset", "container"]
    meta: dict[str, Any] = Field(default_factory=dict)
    geometry: dict[str, Any] | None = Field(default=None, description="GeoJSON geometry (datasets, for STAC)")
    bbox: tuple[float, float, float, float] | None = Field(default=None, description="west, south, east, north")
    start_time: Instant | None = None
    end_time: Instant | None = None
    group: str | None = Field(default=None, pattern=GROUP_NAME_PATTERN, max_length=64,
                              description="The group whose it is: its members read it (the caller must be one)")
    twin: str | None = Field(default=None, min_length=1, max_length=64,
                             description="The twin (id or name) whose data it is: those who may read the twin read "
                                         "it, and its files (the caller must be allowed to operate the twin)")


class CopyTerms(BaseModel):
    """How a copy of another participant's data, held under a data-space agreement, may be used here now."""

    agreement: str
    provider: str | None = None
    uses: int = Field(description="Uses counted so far of the copies landed under the agreement on this engine "
                                  "(downloads, EDR queries, runs' loads): its policy's count limits them")
    usable: bool = Field(description="Whether one more use is permitted now")
    refusal: str | None = Field(default=None, description="Why not, naming the term")


class DidRead(BaseModel):
    did: str
    scope: str
    name: str
    type: DidType
    bytes: int | None
    adler32: str | None
    sha256: str | None
    media_type: str | None
    meta: dict[str, Any]
    bbox: tuple[float, float, float, float] | None
    geometry: dict[str, Any] | None
    start_time: datetime | None
    end_time: datetime | None
    created_by: str
    owner_group: str | None = Field(default=None, description="The group whose it is (its members read it)")
    owner_twin: str | None = Field(default=None, description="The id of the twin whose data it is (those who may "
                                                             "read the twin read it)")
    created_at: datetime
    children: list[str] = Field(default_factory=list)
    replicas: list[ReplicaRead] = Field(default_factory=list)
    terms: CopyTerms | None = Field(default=None, description="A copy held under a data-space agreement: its uses "
                                                              "here and whether one more is permitted now")


class DidPage(BaseModel):
    items: list[DidRead]
    total: int


class AttachBody(_Input):
    children: list[str] = Field(min_length=1, max_length=10_000)


class UploadResult(BaseModel):
    created: bool = Field(description="False when the same bytes were already registered on that endpoint")
    file: DidRead


class RuleCreate(_Input):
    did: str = Field(pattern=DID_PATTERN)
    copies: int = Field(ge=1, le=100)
    endpoints: str = Field(min_length=1, max_length=500, description="Rucio endpoint expression")
    lifetime: str | None = Field(default=None, max_length=32, description="e.g. 7d, 12h (default: forever)")
    comment: str | None = Field(default=None, max_length=500)


class RuleRead(BaseModel):
    id: str
    did: str
    copies: int
    endpoints: str
    state: RuleState
    owner: str
    comment: str | None
    expires_at: datetime | None
    locks_ok: int
    locks_replicating: int
    locks_stuck: int
    percent: float = Field(description="share of locks that are OK, 0-100")
    last_error: str | None
    created_at: datetime
    evaluated_at: datetime | None


class RulePage(BaseModel):
    items: list[RuleRead]
    total: int


class TransferRead(BaseModel):
    id: int
    did: str
    source: str | None
    destination: str
    rule_id: str | None
    state: str
    attempts: int
    bytes_done: int
    last_error: str | None
    next_attempt_at: datetime
    updated_at: datetime


class VerifyRequest(_Input):
    did: str | None = Field(default=None, pattern=DID_PATTERN)
    endpoint: str | None = Field(default=None, pattern=ENDPOINT_NAME)


class VerifyResult(BaseModel):
    checked: int
    ok: int
    bad: list[ReplicaRead]
    repairs_queued: int


class ImportStac(_Input):
    url: str = Field(min_length=1, max_length=2000, description="the STAC API's landing page")
    collection: str = Field(min_length=1, max_length=256)
    endpoint: str = Field(pattern=ENDPOINT_NAME)
    scope: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    bbox: tuple[float, float, float, float] | None = None
    datetime: str | None = Field(default=None, max_length=100)
    limit: int = Field(default=100, ge=1, le=10_000)
    token: SecretStr | None = Field(default=None, description="the source's bearer token (used, never stored)")


class ImportResult(BaseModel):
    collection: str
    items: int
    files_registered: int
    files_present: int
    bytes: int
