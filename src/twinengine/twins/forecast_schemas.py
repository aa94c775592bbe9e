"""Request and response models of issued forecasts and their verification."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from twinengine.quality.spec import Duration

__all__ = ["ForecastRead", "ForecastValueRead", "ForecastWrite", "LeadScores", "PairRead", "PeriodScores",
           "ReliabilityBin", "ScoreHistoryRead", "VerificationRead"]

_MAX_STEPS = 10_000


class ForecastWrite(BaseModel):
    """A forecast of one property: ``values[i]`` is valid at ``issued_at + (i + 1) * step`` unless
    ``valid_times`` says otherwise. Members, quantiles, interval bounds and probabilities are optional and
    aligned with ``values``."""

    model_config = ConfigDict(extra="forbid")

    property: str = Field(max_length=64)
    issued_at: datetime = Field(description="Reference time of the forecast; leads count from it.")
    values: list[float] = Field(min_length=1, max_length=_MAX_STEPS)
    step: Duration | None = Field(default=None, description="Spacing of the values (e.g. 1h) when no valid_times.")
    valid_times: list[datetime] | None = Field(default=None, max_length=_MAX_STEPS)
    members: list[list[float]] | None = Field(default=None, description="Ensemble members per value.")
    quantiles: dict[str, list[float]] | None = Field(default=None, description="Quantile level → one per value.")
    lower: list[float] | None = None
    upper: list[float] | None = None
    interval_level: float | None = Field(default=None, gt=0, lt=1, description="Nominal level of lower/upper.")
    probabilities: dict[str, list[float]] | None = Field(
        default=None, description="Threshold → probability of exceeding it, one per value.")
    unit: str | None = Field(default=None, max_length=64)
    workflow: str | None = Field(default=None, max_length=64)
    run_id: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, max_length=64)
    model_version: str | None = Field(default=None, max_length=32)

    @model_validator(mode="after")
    def _times(self) -> ForecastWrite:
        if self.valid_times is None and self.step is None:
            raise ValueError("give step (e.g. 1h) or valid_times")
        return self


class ForecastValueRead(BaseModel):
    valid_time: datetime
    lead_seconds: int
    value: float
    members: list[float] | None = None
    quantiles: dict[str, float] | None = None
    lower: float | None = None
    upper: float | None = None
    probabilities: dict[str, float] | None = None


class ForecastRead(BaseModel):
    id: str
    twin_id: str
    property: str
    issued_at: datetime
    recorded_at: datetime
    workflow: str | None
    run_id: str | None
    model: str | None
    model_version: str | None
    unit: str | None
    interval_level: float | None
    steps: int
    values: list[ForecastValueRead] | None = None


class PairRead(BaseModel):
    valid_time: datetime
    forecast: float
    observed: float


class ReliabilityBin(BaseModel):
    """One bin of a reliability diagram: a reliable forecast has ``observed`` close to ``forecast``."""

    forecast: float = Field(description="The mean forecast probability of the bin.")
    observed: float = Field(description="How often the event happened.")
    count: int


class LeadScores(BaseModel):
    """Scores of one (workflow, model version, ensemble size, lead time); a score the pairs cannot give is
    null."""

    workflow: str | None
    model_version: str | None
    lead_seconds: int
    members: int | None = Field(default=None, description="The ensemble's size (null: forecasts without members).")
    n: int
    rmse: float | None = None
    mae: float | None = None
    bias: float | None = None
    nse: float | None = None
    kge: float | None = None
    crps: float | None = None
    spread_skill: float | None = None
    brier: float | None = None
    coverage: float | None = None
    interval_level: float | None = None
    rank_histogram: list[float] | None = Field(
        default=None, description="Relative frequency of the observation's rank among the members (members + 1 "
                                  "ranks): flat when the ensemble is calibrated.")
    reliability: list[ReliabilityBin] | None = Field(
        default=None, description="With a threshold: the reliability diagram of exceeding it, in bins of forecast "
                                  "probability (from the forecast's probabilities, or its members).")
    pairs: list[PairRead] | None = None


class VerificationRead(BaseModel):
    twin_id: str
    property: str
    unit: str | None
    tolerance_seconds: float
    threshold: float | None
    forecast_values: int = Field(description="Forecast values in the window (matched or not).")
    observations: int = Field(description="Observations read to match them.")
    leads: list[LeadScores]


class PeriodScores(LeadScores):
    """The scores of one forecasting system and lead over one period of valid time (kept)."""

    period_start: datetime = Field(description="Start of the period of valid time (periods count from 1970, UTC).")


class ScoreHistoryRead(BaseModel):
    """Kept scores per period of valid time, oldest first."""

    twin_id: str
    property: str
    unit: str | None
    period_seconds: int
    tolerance_seconds: float
    items: list[PeriodScores]
