"""Request and response models of calibrations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from twinengine.calibration.methods import Method
from twinengine.calibration.objectives import Objective
from twinengine.catalog.calibration_spec import MAX_RUNS, MAX_SECONDS

__all__ = ["MAX_WORKERS", "CalibrationCreate", "CalibrationPage", "CalibrationRead", "CalibrationRunPage",
           "CalibrationRunRead"]

MAX_WORKERS = 64
Ident = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class CalibrationCreate(BaseModel):
    """A calibration to start; what is left out comes from the app's ``calibration:`` section."""

    model_config = ConfigDict(extra="forbid")

    params: list[Ident] | None = Field(default=None, min_length=1, max_length=32,
                                       description="Parameters to fit (default: all the app declares).")
    bounds: dict[Ident, tuple[Finite, Finite]] = Field(
        default_factory=dict, max_length=32, description="Bounds [min, max] per parameter, within the schema's.")
    method: Method | None = Field(default=None, description="sceua, de, dream or emcee (default: the app's).")
    objective: Objective | None = Field(default=None, description="nse, kge, rmse or likelihood.")
    runs: int | None = Field(default=None, ge=1, le=MAX_RUNS, description="Budget of model runs.")
    seconds: float | None = Field(default=None, gt=0, le=MAX_SECONDS, description="Budget of time.")
    workers: int = Field(default=1, ge=1, le=MAX_WORKERS, description="Model runs in parallel.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="The same seed proposes the same runs.")
    since: datetime | None = Field(default=None, description="Observations from this time on (default: all).")
    until: datetime | None = Field(default=None, description="Observations before this time (default: all).")
    posterior_share: float = Field(default=0.2, ge=0.0, lt=1.0,
                                   description="Share of an optimiser's budget spent sampling the posterior.")
    site: str | None = Field(default=None, min_length=1, max_length=64,
                             description="Compute site whose Dask cluster runs the model (a dask or slurm site; "
                                         "default: the engine's own workers).")


class CalibrationRead(BaseModel):
    """A calibration: its settings, progress (percent of the budget), result and the decision on it."""

    id: str
    twin: str
    twin_id: str
    owner: str
    status: str
    decision: str
    method: str
    objective: str
    seed: int
    parameters: list[str]
    bounds: dict[str, tuple[float, float]]
    runs: int
    seconds: float | None
    workers: int
    site: str = Field(default="local", description="Where the model runs: local (the engine's own workers) or "
                                                   "the compute site named when it was started.")
    runs_done: int
    percent: float
    best_score: float | None
    best: dict[str, float] | None = None
    summary: dict[str, Any] | None = None
    stopped: str | None = None
    fork: str | None = Field(default=None, description="The proposed twin: a fork with the best parameters.")
    figure: str | None = Field(default=None, description="Address of the figure (PNG) once done.")
    error: dict[str, Any] | None = None
    core_seconds: float | None = Field(default=None, description="Core-seconds it used once done (every attempt: "
                                                                  "the engine's share and its model runs' CPU).")
    created_at: datetime
    finished_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None


class CalibrationPage(BaseModel):
    items: list[CalibrationRead]
    total: int


class CalibrationRunRead(BaseModel):
    number: int
    params: dict[str, float]
    score: float | None
    log_likelihood: float | None


class CalibrationRunPage(BaseModel):
    items: list[CalibrationRunRead]
    total: int
