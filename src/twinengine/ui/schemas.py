"""What a view of a twin answers in words: its summary, how far to trust its forecasts, the model behind them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = ["ForecastBrief", "ModelBrief", "SkillRead", "ViewRead"]


class SkillRead(BaseModel):
    """The verification the view states: forecasts of ``property`` at ``lead_seconds``, over the window."""

    available: bool = Field(description="False: no forecast was matched with observations in the window yet.")
    text: str = Field(description="The skill in one sentence, or why there is none.")
    property: str | None
    lead_seconds: int | None = Field(description="The lead verified: the view's `skill.lead`.")
    window_days: float
    n: int = 0
    coverage: float | None = None
    interval_level: float | None = None
    nse: float | None = None
    kge: float | None = None
    crps: float | None = None
    workflow: str | None = None
    model_version: str | None = None
    members: int | None = None


class ModelBrief(BaseModel):
    """The newest trained version of the view's model and what the gate decided on it."""

    name: str
    version: str | None
    accepted: bool | None
    reason: str | None
    text: str


class ForecastBrief(BaseModel):
    """The latest recorded forecast the summary speaks of."""

    id: str
    run_id: str | None
    property: str
    issued_at: datetime
    steps: int
    members: int | None
    exceeding: int | None = Field(description="Members whose forecast crosses the view's threshold.")
    threshold: float | None
    peak: float | None


class ViewRead(BaseModel):
    """A view of a twin, answered: the summary template filled from the twin's state, latest forecast and
    verification, rendered by the engine so the portal, the SDK and the CLI say the same words."""

    twin_id: str
    twin_name: str
    name: str
    title: str
    description: str | None
    summary: str | None = Field(description="The view's summary template, as the manifest declares it.")
    summary_text: str | None = Field(description="The summary filled in (null: the view declares none).")
    stale: list[str] = Field(description="Reported properties of the twin whose values are stale now.")
    stale_text: str | None = Field(description="The stale values, said in words (null: none is stale).")
    skill: SkillRead | None = Field(description="Null: the view shows no forecast to verify.")
    model: ModelBrief | None = Field(description="Null: the view names no model and the app declares none.")
    forecast: ForecastBrief | None
    as_of: datetime = Field(description="The time ages and staleness are judged at.")
