"""What a view of a twin answers in words: its summary, how far to trust its forecasts, the model behind them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = ["ForecastBrief", "LeadOutlook", "LeadSkill", "ModelBrief", "OfficialRead", "OutlookRead", "SkillRead",
           "StartBrief", "ViewRead"]


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


class StartBrief(BaseModel):
    """The twin's state the forecast's run started from (its app's ``initial_state``)."""

    revision: int | None
    time: datetime | None = Field(description="When that state was valid (its newest value's time).")
    text: str = Field(description="In words: `started from revision 101 (storage 13.8 mm at 2026-03-02 00:00 UTC)`.")


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
    start: StartBrief | None = Field(default=None, description="The state its run started from (null: the run "
                                                               "recorded none, e.g. a forecast posted by hand).")


class LeadSkill(BaseModel):
    """How good past forecasts were at one lead: the verification of the same forecasting system."""

    n: int = Field(description="Forecast values checked against what was observed.")
    members: int | None
    nse: float | None = None
    crps: float | None = None
    coverage: float | None = None
    interval_level: float | None = None
    brier: float | None = Field(default=None, description="Brier score of exceeding the threshold (0 is perfect).")
    text: str


class LeadOutlook(BaseModel):
    """One lead time of the outlook: the chance of crossing the threshold by then, and the spread there."""

    lead_seconds: int
    label: str = Field(description="The lead in words (`24 h`); the summary's names use its key (`outlook.24h`).")
    key: str
    valid_time: datetime | None = Field(description="The forecast's time at this lead.")
    reached: bool = Field(description="False: the forecast ends before this lead.")
    probability: float | None = Field(description="Share of members above the threshold at some time up to this "
                                                  "lead (0 or 1 for a forecast without members).")
    probability_at: float | None = Field(description="Share of members above the threshold at this lead.")
    exceeding: int | None = Field(description="Members above the threshold at some time up to this lead.")
    mean: float | None
    spread: float | None = Field(description="The members' standard deviation at this lead.")
    low: float | None = Field(description="The lower end of the ensemble's band at this lead (its outermost "
                                          "quantile, else its lowest member).")
    high: float | None
    skill: LeadSkill | None = Field(description="Past forecasts at this lead (null: none was checked yet).")


class OutlookRead(BaseModel):
    """Will the forecast property cross the threshold, how sure is the ensemble, and how good were past
    forecasts: per lead time (the view's ``outlook.leads``)."""

    property: str
    unit: str | None
    threshold: float
    issued_at: datetime
    run_id: str | None
    members: int | None
    band: str | None = Field(description="What low and high are: `5-95 %` (quantiles) or `members' range`.")
    leads: list[LeadOutlook]
    text: str = Field(description="The chance per lead, in a sentence.")
    skill_text: str = Field(description="Past forecasts' skill at these leads, in a sentence.")


class OfficialRead(BaseModel):
    """Which twin at this place is the official one (tagged ``official``): the one people are sent to."""

    official: bool = Field(description="This twin is tagged official.")
    place: str | None
    twins: list[str] = Field(description="The official twins at this place that you may read (other than this one).")
    text: str | None = Field(description="In words, for a page (null: no twin at this place is tagged official).")


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
    outlook: OutlookRead | None = Field(default=None, description="Exceedance by lead time (null: no forecast with "
                                                                  "a threshold yet).")
    official: OfficialRead | None = Field(default=None, description="Whether this twin is its place's official "
                                                                    "one.")
    as_of: datetime = Field(description="The time ages and staleness are judged at.")
