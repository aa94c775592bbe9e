"""Request and response models of the ml API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from twinengine.ml.drift import DriftSpec
from twinengine.quality.spec import Flag
from twinengine.quality.verification import SkillRule

__all__ = [
    "FINAL",
    "DataSelection",
    "DecisionRead",
    "ModelVersionRead",
    "PolicyRead",
    "PolicyWrite",
    "TrailEntry",
    "TrainingRequest",
    "TrainingRunPage",
    "TrainingRunRead",
    "TrainingStatus",
    "TuneRequest",
    "TwinModelRead",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSelection(_Strict):
    """Which records train the model: a stream's offsets [start, end) or a sealed buffer fill."""

    stream: str | None = Field(default=None, max_length=64, description="Default: the app's first stream.")
    start: int = Field(default=0, ge=0)
    end: int | None = Field(default=None, ge=0, description="Exclusive; default: the stream's end now.")
    buffer: str | None = Field(default=None, max_length=64)
    fill: int | None = Field(default=None, ge=1)
    exclude_quality: list[Flag] = Field(default_factory=list, max_length=2,
                                        description="Leave out records with these quality flags (e.g. [bad]).")


class TuneRequest(_Strict):
    """Search hyper-parameters first (Optuna), then train and register the best trial's configuration."""

    trials: int = Field(default=20, ge=1, le=10_000)
    parallel: int = Field(default=1, ge=1, le=64, description="Trials at once.")
    space: dict[str, Any] | None = Field(default=None, description="Search space; default: the app's.")
    metric: str = Field(default="val_loss", max_length=64)
    direction: Literal["minimize", "maximize"] = "minimize"


class TrainingRequest(_Strict):
    config: dict[str, Any] = Field(default_factory=dict, description="Overrides of the app's TrainingConfig.")
    nproc: int = Field(default=1, ge=1, le=64, description="Local processes (torch.distributed DDP).")
    data: DataSelection = Field(default_factory=DataSelection)
    trigger: dict[str, Any] = Field(default_factory=lambda: {"kind": "manual"})
    tune: TuneRequest | None = None
    site: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                             description="Train on this compute site (default: the engine's own site, or the "
                                         "site placement chooses when gpus or exclude_sites are "
                                         "given; docs/compute.md).")
    exclude_sites: list[str] = Field(default_factory=list, max_length=64, description="Sites it may not go to.")
    gpus: int = Field(default=0, ge=0, le=64, description="GPUs the training needs on its site.")


TrainingStatus = Literal["queued", "running", "stopping", "succeeded", "failed", "canceled"]
FINAL: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})
"""The statuses a training run ends in (spelled as a workflow run's and openEO's ``canceled``)."""


class TrainingRunRead(BaseModel):
    id: str
    twin_id: str
    model: str
    status: TrainingStatus
    progress: float = Field(description="Percent done (0-100).")
    epoch: int
    epochs: int
    nproc: int
    config: dict[str, Any]
    inputs: dict[str, Any]
    trigger: dict[str, Any]
    metrics: dict[str, float]
    history: list[dict[str, float]]
    mlflow_run_id: str | None
    model_version: str | None
    error: str | None
    site: str | None = Field(default=None, description="The compute site it trains on (null: the engine's own).")
    placement: dict[str, Any] | None = Field(default=None, description="Why it went there (docs/compute.md).")
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TrainingRunPage(BaseModel):
    items: list[TrainingRunRead]
    total: int


class DecisionRead(BaseModel):
    version: str
    run_id: str
    accepted: bool
    reason: str
    metrics: dict[str, float]
    champion_before: str | None
    created_at: datetime


class ModelVersionRead(BaseModel):
    version: str
    aliases: list[str]
    run_id: str | None
    tags: dict[str, str]
    decision: DecisionRead | None = None


class TwinModelRead(BaseModel):
    name: str
    registered_name: str
    description: str | None
    champion: str | None
    versions: list[ModelVersionRead]


class PolicyWrite(_Strict):
    every_seconds: float | None = Field(default=None, gt=0, description="Retrain on this schedule.")
    buffer: str | None = Field(default=None, max_length=64, description="Retrain on each sealed fill of it.")
    drift: DriftSpec | None = Field(default=None, description="Retrain when the model's inputs drift.")
    stream: str | None = Field(default=None, max_length=64, description="Stream the drift detector watches.")
    window: int = Field(default=500, ge=10, le=1_000_000, description="Recent records the detector compares.")
    skill: SkillRule | None = Field(default=None, description="Retrain when the verified skill of the twin's "
                                                              "forecasts breaks this rule (e.g. 24h NSE below 0.8).")
    enabled: bool = True


class PolicyRead(PolicyWrite):
    model_config = ConfigDict(extra="ignore")

    model: str
    last_triggered_at: datetime | None
    last_check: dict[str, Any] | None


class TrailEntry(BaseModel):
    """One link of the trail: what triggered, which data, which run, which version, what the gate said."""

    trigger: dict[str, Any]
    inputs: dict[str, Any]
    run: str
    status: str
    version: str | None
    decision: DecisionRead | None
    created_at: datetime
