"""Answers of the assimilation skill read: forecast skill per lead time from the analyses and without
assimilation (the open loop), and how the filter's innovations compare with the spread it expected."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from twinengine.twins.forecast_schemas import LeadScores

__all__ = ["AssimilationSkillRead", "FilterHealth", "InnovationPoint"]


class InnovationPoint(BaseModel):
    """One cycle's innovation (observation minus background, averaged over its observations) and the spread
    that mean was expected to have."""

    number: int
    valid_time: datetime
    obs_count: int
    innovation: float
    expected: float = Field(description="Expected std of ``innovation``: the cycle's expected RMS over "
                                        "sqrt(observations).")


class FilterHealth(BaseModel):
    """Whether the filter's innovations stay within the spread it expects, over its latest cycles."""

    cycles: int = Field(description="Cycles on record.")
    latest_analysis: datetime | None = Field(description="Valid time of the newest analysis.")
    latest_revision: int | None
    judged: int = Field(description="Latest cycles with observations the ratio is taken over.")
    ratio: float | None = Field(description="RMS of the innovations over the RMS of their expected spread: "
                                            "about 1 for a filter whose error model fits.")
    diverging: bool = Field(description="The innovations are well beyond their expected spread (ratio above "
                                        "the threshold): a diverging filter or a bad sensor.")
    threshold: float
    words: str
    innovations: list[InnovationPoint] = Field(description="The latest cycles' innovations, oldest first.")


class AssimilationSkillRead(BaseModel):
    """Skill of forecasts of one observed quantity started from the twin's analyses against the same model
    run without assimilation, each scored against the observations (the engine's verification scores)."""

    twin: str
    property: str = Field(description="The observation verified (a field the assimilation observes).")
    unit: str | None
    starts: int = Field(description="Analyses forecasts were started from.")
    open_loop_from: datetime | None = Field(description="When the open loop starts: the first analysis's time, "
                                                        "from the state the twin held before it.")
    tolerance_seconds: float
    observations: int
    assimilated: list[LeadScores] = Field(description="Forecasts from the analysis ensembles, per lead.")
    open_loop: list[LeadScores] = Field(description="The model run alone from the first guess, per lead.")
    sentence: str = Field(description="The comparison in words, at one lead.")
    filter: FilterHealth
