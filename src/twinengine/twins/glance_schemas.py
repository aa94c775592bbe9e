"""What a list of twins shows of each twin at a glance (``GET /twins?glance=true``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["Status", "TwinGlance"]

Status = Literal["alert", "stale", "ok"]


class TwinGlance(BaseModel):
    """What a list of twins shows of each: status ``alert`` (a boolean alert property is on) before
    ``stale`` (a reported value is older than its gap check allows) before ``ok``."""

    title: str | None = Field(description="The title of the twin's app.")
    place: str | None = Field(description="Where the twin is: a station or site parameter, else its location.")
    official: bool = Field(default=False, description="Tagged `official`: the twin of its place that people are "
                                                      "sent to (of several twins at one gauge, the one to trust).")
    status: Status
    reasons: list[str] = Field(description="Why the status is not ok, in words (alerts, stale and flagged values).")
    alerts: list[str] = Field(description="Boolean alert properties that are on.")
    stale: list[str] = Field(description="Reported values older than their gap check allows, now.")
    flagged: dict[str, str] = Field(description="Reported values whose newest value is flagged: property → flag.")
    last_reading: datetime | None = Field(description="The newest time among the twin's readings: the reported "
                                                      "properties with a gap check when the app declares any "
                                                      "(those it expects regularly), else all reported ones.")
    last_property: str | None = Field(description="The property reported at ``last_reading``.")
