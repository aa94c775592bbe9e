"""Request and response models of the compute API: sites, usage, quotas."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = ["QuotaPage", "QuotaRead", "QuotaSet", "SiteCreate", "SiteCredential", "SiteKind", "SitePage",
           "SiteRead", "SiteStatus", "StorageUse", "UsageGroup", "UsageKey", "UsagePage", "UsageRead", "UsageSummary"]

SITE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
LABEL = r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,199}$"
MAX_BYTES = 2**63 - 1


class SiteKind(StrEnum):
    LOCAL = "local"  # the engine's own executor (processes and threads of this host)
    DASK = "dask"  # a Dask cluster by its scheduler's address
    SLURM = "slurm"  # a Slurm cluster (sinfo, sbatch, sacct)
    ENGINE = "engine"  # another twinengine by its API URL


class SiteStatus(StrEnum):
    HEALTHY = "healthy"
    DRAINING = "draining"
    DOWN = "down"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteCredential(_Input):
    """A bearer token (another engine's, slurmrestd's) or a user name and password; stored encrypted, never
    returned."""

    kind: Literal["bearer", "basic"]
    token: SecretStr | None = None
    username: str | None = Field(default=None, max_length=128)
    password: SecretStr | None = None

    def secret(self) -> dict[str, str]:
        values = {"token": self.token, "password": self.password}
        out = {k: v.get_secret_value() for k, v in values.items() if v is not None}
        if self.username is not None:
            out["username"] = self.username
        return out


class SiteCreate(_Input):
    name: str = Field(pattern=SITE_NAME)
    kind: SiteKind
    address: str | None = Field(default=None, max_length=1024,
                                description="dask: tcp://host:port; engine: https://host[:port]; slurm: none")
    options: dict[str, str] = Field(default_factory=dict, description="non-secret settings: partition, account")
    cores: int = Field(ge=1, le=10_000_000)
    memory_bytes: int = Field(ge=0, le=MAX_BYTES)
    gpus: int = Field(default=0, ge=0, le=1_000_000)
    environments: list[str] = Field(default_factory=list, max_length=200,
                                     description="app environments or container images the site runs")
    endpoints: list[str] = Field(default_factory=list, max_length=200, description="lake endpoints near it")
    credential: SiteCredential | None = None


class SiteRead(BaseModel):
    name: str
    kind: SiteKind
    address: str | None
    options: dict[str, str]
    cores: int
    memory_bytes: int
    gpus: int
    environments: list[str]
    endpoints: list[str]
    status: SiteStatus
    health_error: str | None
    heartbeat_at: datetime | None
    credential: str | None = Field(description="the kind of credential stored (never the secret)")
    created_by: str
    created_at: datetime


class SitePage(BaseModel):
    items: list[SiteRead]
    total: int


class UsageKey(StrEnum):
    IDENTITY = "identity"
    TWIN = "twin"
    APP = "app"
    SITE = "site"
    GROUP = "group"
    KIND = "kind"  # run, member, calibration, training, function...


class UsageRead(BaseModel):
    """One execution's usage record."""

    run_id: str
    kind: str
    status: str
    identity: str
    groups: list[str]
    twin: str | None
    app: str | None
    site: str
    executor: str | None
    started_at: datetime
    finished_at: datetime
    wall_seconds: float
    core_seconds: float
    remote_core_seconds: float
    cores: int
    peak_memory_bytes: int
    bytes_read: int
    bytes_written: int
    bytes_transferred: int = 0  # copied between lake endpoints by the run's staging
    bytes_stored: int = 0  # its outputs' sizes in the lake
    gpu_seconds: float = 0.0  # GPUs its sandboxed workers held x the seconds of the calls that held them
    source: str


class UsageGroup(BaseModel):
    """Usage summed over the records that share a key (``key``: the value, e.g. an identity's name)."""

    key: str
    runs: int
    wall_seconds: float
    core_seconds: float
    core_hours: float
    peak_memory_bytes: int
    bytes_read: int
    bytes_written: int
    bytes_transferred: int = 0  # copied between lake endpoints by the run's staging
    bytes_stored: int = 0  # its outputs' sizes in the lake
    gpu_seconds: float = 0.0
    gpu_hours: float = 0.0


class StorageUse(BaseModel):
    """A lake endpoint's storage use beside its quota (``twin usage`` shows them next to compute use)."""

    endpoint: str
    used_bytes: int
    quota_bytes: int | None


class UsageSummary(BaseModel):
    by: UsageKey
    since: datetime | None
    until: datetime | None
    groups: list[UsageGroup]
    storage: list[StorageUse] = Field(default_factory=list)


class UsagePage(BaseModel):
    items: list[UsageRead]
    total: int


class QuotaSet(_Input):
    subject: str = Field(pattern=r"^(group:)?[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$",
                         description="an identity, or group:<name>")
    site: str = Field(default="*", pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$", description="a site or *")
    core_hours: float = Field(ge=0, le=1e12, allow_inf_nan=False)
    period: Literal["day", "week", "month", "year", "total"] = "month"


class QuotaRead(BaseModel):
    subject: str
    site: str
    core_hours: float
    period: str
    used_core_hours: float = Field(description="used in the current period")
    period_start: datetime | None
    created_by: str
    updated_at: datetime


class QuotaPage(BaseModel):
    items: list[QuotaRead]
    total: int
