"""Request and response models of the workflows API (runs, nodes, logs, triggers)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from twinengine.quality.verification import SkillRule
from twinengine.types import INT32_MAX

__all__ = ["LogRead", "NodeRead", "RunCreate", "RunPage", "RunRead", "RunStart", "RunStatus", "RunSummary",
           "StartRead", "StartValue", "TriggerCreate", "TriggerCreated", "TriggerRead", "TwinRunCreate", "WhatIf"]


class RunStatus(StrEnum):
    CREATED = "created"
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    ERROR = "error"
    CANCELED = "canceled"


FINAL = frozenset({RunStatus.FINISHED, RunStatus.ERROR, RunStatus.CANCELED})


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetryOptions(_Input):
    max_attempts: int = Field(default=1, ge=1, le=10)
    backoff_seconds: float = Field(default=0.0, ge=0, le=600)


class RunOptions(_Input):
    no_cache: bool = Field(default=False, description="Do not reuse cached node results (still refresh them).")
    retry: RetryOptions | None = Field(default=None, description="Default retry policy of every node.")
    node_retry: dict[str, RetryOptions] = Field(default_factory=dict, max_length=1000,
                                                description="Retry policy per node id.")
    site: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                             description="Run on this compute site (else the engine places it: docs/compute.md).")
    exclude_sites: list[str] = Field(default_factory=list, max_length=100,
                                     description="Compute sites the run must not be placed on.")
    gpus: int = Field(default=0, ge=0, le=1024, description="GPUs the run needs on its site.")


class WhatIf(_Input):
    """Run on a new fork of the twin instead of the twin: whatever the workflow writes (state, forecasts)
    lands on the fork, so the twin's own state stays as it was."""

    name: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$", max_length=64,
                             description="Name of the fork (default: `{twin}-what-if`, numbered when taken).")
    at_revision: int | None = Field(default=None, ge=0, le=INT32_MAX,
                                    description="Revision of the twin the fork starts from (default: its head).")


class RunStart(_Input):
    """Where a run of a twin's workflow starts, for the parameters its app maps from the twin's state
    (``workflows.<name>.initial_state``): the state now (default), as of a revision or a time, or not at all."""

    revision: int | None = Field(default=None, ge=0, le=INT32_MAX,
                                 description="Start from the twin's state as of this revision.")
    at: datetime | None = Field(default=None, description="Start from the twin's state as of this time: the values "
                                                          "reported for a time not after it (a hindcast).")
    state: bool = Field(default=True, description="False: start from the graph's defaults, not the twin's state.")

    @model_validator(mode="after")
    def _one_way(self) -> RunStart:
        if self.revision is not None and self.at is not None:
            raise ValueError("give revision or at, not both")
        if not self.state and (self.revision is not None or self.at is not None):
            raise ValueError("state: false starts from the graph's defaults; leave out revision and at")
        return self


class StartValue(BaseModel):
    """One parameter of a run's start: the state property it came from and the value it took."""

    property: str
    title: str | None = Field(default=None, description="The property's title in the app's manifest, if any.")
    source: Literal["state", "request", "default"] = Field(
        description="state: the twin's value; request: the run's request gave it; default: the graph's default "
                    "(no value of the property was there to start from, or the request asked for defaults).")
    value: Any = None
    revision: int | None = Field(default=None, description="The revision that wrote the value.")
    timestamp: datetime | None = Field(default=None, description="The time the value is valid at.")
    unit: str | None = Field(default=None, description="The value's unit.")
    uncertainty: dict[str, Any] | None = Field(default=None, description="The uncertainty the value carried.")


class StartRead(BaseModel):
    """Which state of the twin a run started from (its app's ``initial_state``), as recorded when it was
    submitted: shown on the page as "started from revision N at TIME"."""

    revision: int | None = Field(description="The twin's revision the run started from (null: none, e.g. "
                                             "defaults asked for or no value there yet).")
    time: datetime | None = Field(description="When the state it started from was valid: its newest value's time.")
    asked: Literal["now", "revision", "at", "defaults"] = Field(description="What the request asked for.")
    parameters: dict[str, StartValue]
    text: str = Field(default="", description="In words: `started from revision 99 (storage 13.83 mm at "
                                              "2026-03-04 00:00 UTC)`.")


class TwinRunCreate(_Input):
    workflow: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)
    parameters: dict[str, JsonValue] = Field(default_factory=dict, max_length=200)
    start: RunStart | None = Field(default=None, description="Where the run starts (the parameters the app maps "
                                                             "from the twin's state): default, the state now.")
    options: RunOptions = Field(default_factory=RunOptions)
    mode: Literal["async", "sync"] = "async"
    what_if: WhatIf | None = Field(default=None, description="Run as a what-if, on a new fork of the twin: "
                                                             "the twin's state is never written.")


class RunCreate(_Input):
    process: dict[str, JsonValue] = Field(description="{process_graph, parameters?} (openEO)")
    parameters: dict[str, JsonValue] = Field(default_factory=dict, max_length=200)
    twin: str | None = Field(default=None, max_length=64, description="Twin the run acts on (optional).")
    title: str | None = Field(default=None, max_length=200)
    options: RunOptions = Field(default_factory=RunOptions)
    mode: Literal["async", "sync"] = "async"


class NodeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    node_id: str
    process_id: str
    namespace: str | None
    status: str
    attempts: int
    seconds: float | None
    error: str | None


class RunSummary(BaseModel):
    """A run as lists show it: what it is, where it stands and links to its results; never its value,
    parameters or nodes (``GET /api/v1/runs/{id}`` has those)."""

    id: str
    kind: str
    status: RunStatus
    progress: float
    owner: str
    title: str | None
    twin_id: str | None
    twin_name: str | None
    what_if_of: str | None = Field(default=None, description="The twin whose fork this run's twin is: the run "
                                                             "is a what-if of that twin and never wrote its state.")
    app: str | None
    workflow: str | None
    graph_sha256: str
    trigger_id: str | None
    executor: str | None
    error: dict[str, Any] | None
    assets: list[dict[str, Any]] = Field(description="Its result files (name, type, size, sha256), each "
                                                     "downloaded from its link of rel item.")
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: list[dict[str, str]] = Field(default_factory=list)


class RunRead(RunSummary):
    """One run in full: its summary with its parameters, per-node status and JSON value."""

    parameters: dict[str, Any]
    value: Any = Field(description="The run's JSON value when it takes at most 1 MiB; a larger one is in its "
                                   "result.json asset only (null here).")
    nodes: list[NodeRead] = Field(default_factory=list)
    staging: dict[str, Any] | None = Field(default=None, description="Inputs replicated near the run's site "
                                                                     "before it started, with a percent "
                                                                     "(docs/compute.md#staging).")
    start: StartRead | None = Field(default=None, description="The twin's state the run started from (its app's "
                                                              "initial_state; null: the workflow maps none).")


class RunPage(BaseModel):
    items: list[RunSummary]
    total: int


class LogRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    level: str
    node_id: str | None
    message: str


class TriggerCreate(_Input):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)
    kind: Literal["cron", "webhook", "dataset", "stream_window", "drift"]
    workflow: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)
    schedule: str | None = Field(default=None, max_length=120, description="cron expression (kind cron)")
    misfire: Literal["run_once", "skip"] = Field(default="run_once",
                                                 description="What a cron trigger does with ticks missed while "
                                                             "the engine was down")
    collection: str | None = Field(default=None, max_length=200,
                                   description="collection id or glob pattern (kind dataset)")
    stream: str | None = Field(default=None, max_length=64,
                               description="stream of the twin (kind stream_window): a run every `count` records")
    count: int | None = Field(default=None, ge=1, le=100_000_000, description="records per window (kind "
                                                                             "stream_window with a stream)")
    parameters: dict[str, JsonValue] = Field(default_factory=dict, description="Fixed run parameters")
    bind: dict[str, str] = Field(default_factory=dict,
                                 description="run parameter → field of the event's data (dotted path)")
    skill: SkillRule | None = Field(default=None, description="kind drift: fire when the verified skill of the "
                                                              "twin's forecasts breaks this rule (else: on the "
                                                              "drift verdicts of its retraining policies)")


class TriggerRead(BaseModel):
    id: str
    twin_id: str
    name: str
    kind: str
    workflow: str
    source: str
    enabled: bool
    config: dict[str, Any]
    next_fire_at: datetime | None
    webhook_url: str | None = None


class TriggerCreated(TriggerRead):
    secret: str | None = Field(default=None, description="Webhook secret, shown once (X-Twin-Trigger-Secret).")
