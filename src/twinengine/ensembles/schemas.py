"""Request and response models of ensembles, and the ``ensemble:`` block a workflow declares in a manifest."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from twinengine.quality.perturb import Distribution
from twinengine.workflows.schemas import RunOptions, RunStart, RunStatus, StartRead

__all__ = ["EnsembleCreate", "EnsembleDeclaration", "EnsembleRead", "MemberRead", "Threshold"]

Name = str


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Threshold(_Input):
    """A threshold given as a number, or as the value of one of the run's parameters (the alert level)."""

    value: float | None = None
    parameter: str | None = Field(default=None, max_length=64)


class EnsembleDeclaration(_Input):
    """``workflows.<name>.ensemble`` in the manifest: what may be perturbed and how, and what the
    statistics are written to."""

    perturb: dict[Name, Distribution] = Field(default_factory=dict, max_length=64,
                                              description="parameter → distribution of its member values")
    threshold: Threshold | None = None
    quantiles: list[float] | None = Field(default=None, min_length=1, max_length=20)
    state: dict[Literal["probability", "summary", "mean_peak", "spread_peak"], Name] = Field(
        default_factory=dict, description="statistic → state property it is written to")


class EnsembleCreate(_Input):
    workflow: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)
    members: int | None = Field(default=None, ge=1, description="How many members (perturbed parameters).")
    parameters: dict[str, JsonValue] = Field(default_factory=dict, max_length=200,
                                             description="Run parameters every member shares.")
    perturb: dict[Name, Distribution] | None = Field(
        default=None, max_length=64, description="Distributions per parameter; default: the app's declaration.")
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1, description="Default: a random seed (reported).")
    forks: list[str] | None = Field(default=None, min_length=1, description="One member per twin (forks).")
    parameter_sets: list[dict[str, JsonValue]] | None = Field(default=None, min_length=1,
                                                              description="One member per set of parameters.")
    threshold: float | None = Field(default=None, description="Default: the app's declared threshold.")
    quantiles: list[float] | None = Field(default=None, min_length=1, max_length=20)
    options: RunOptions = Field(default_factory=RunOptions)
    mode: Literal["async", "sync"] = "async"
    start: RunStart | None = Field(default=None, description="Where the members start (the parameters the app maps "
                                                             "from the twin's state): default, the state now; a "
                                                             "value carrying its spread (an analysis) gives each "
                                                             "member its own start.")

    @field_validator("quantiles")
    @classmethod
    def _probabilities(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(not 0 <= q <= 1 for q in value):
            raise ValueError("quantiles are probabilities between 0 and 1")
        return value


class MemberRead(BaseModel):
    index: int
    run_id: str
    status: RunStatus
    twin_id: str | None
    parameters: dict[str, Any] = Field(description="What differs from the shared parameters.")


class EnsembleRead(BaseModel):
    id: str
    status: RunStatus
    progress: float
    twin_id: str | None
    twin_name: str | None
    workflow: str | None
    mode: str
    seed: int | None
    threshold: float | None
    members: list[MemberRead]
    statistics: dict[str, Any] | None = Field(default=None, description="mean, spread, quantiles, exceedance")
    assets: list[dict[str, Any]] = Field(default_factory=list)
    error: dict[str, Any] | None = None
    created_at: datetime
    finished_at: datetime | None
    start: StartRead | None = Field(default=None, description="The twin's state the members started from (the "
                                                              "app's initial_state; null: the workflow maps none).")
