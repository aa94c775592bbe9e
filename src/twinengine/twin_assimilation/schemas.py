"""Requests and answers of the assimilation service: run cycles on a twin, read its cycle records."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from twinengine.catalog.assimilation_spec import MAX_MEMBERS, Method
from twinengine.quality.spec import Duration

__all__ = ["MAX_CYCLES", "AssimilationRequest", "AssimilationResult", "CyclePage", "CycleRead", "InnovationRead",
           "ScheduleRead", "ScheduleWrite"]

MAX_CYCLES = 1000  # cycles one request runs (a few seconds of a small model); the CLI asks again for the rest
TWIN_NAME = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"


class AssimilationRequest(BaseModel):
    """Run up to ``cycles`` cycles on the observations that arrived since the twin's last cycle."""

    model_config = ConfigDict(extra="forbid")

    method: Method | None = Field(default=None, description="enkf, etkf, letkf, pf or 3dvar (default: the "
                                                            "app's assimilation.method).")
    members: int | None = Field(default=None, ge=2, le=MAX_MEMBERS, description="Ensemble size (default: the "
                                                                               "app's, or the kept ensemble's); "
                                                                               "another size draws new members "
                                                                               "from the kept ones' mean and "
                                                                               "covariance.")
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1, description="Seed (default: the app's); the same "
                                                                            "seed gives the same analysis.")
    cycles: int = Field(default=1, ge=1, le=MAX_CYCLES, description=f"At most this many cycles (1 to "
                                                                    f"{MAX_CYCLES}); one per observation time.")
    what_if: str | None = Field(default=None, pattern=TWIN_NAME, max_length=64,
                                description="Run on a new fork of this name: the twin's own state is not touched.")
    answer: Literal["cycles", "summary"] = Field(
        default="cycles", description="cycles: the answer lists every cycle's record; summary: their count and "
                                      "the last one's only (the answer to a thousand cycles stays small; the "
                                      "history export gives them all in bulk).")


class InnovationRead(BaseModel):
    """Observation minus background mean, against what the filter expected: sqrt(var(H x_f) + R)."""

    observed: float
    background: float
    innovation: float
    expected: float
    std: float = Field(description="The observation error's std.")


class CycleRead(BaseModel):
    id: str
    twin: str
    number: int
    method: Method
    members: int
    seed: int
    tuning: dict[str, Any]
    valid_time: datetime = Field(description="The time of the observations the analysis is valid at.")
    obs_count: int
    offsets: dict[str, list[int]] = Field(description="Stream → [first, end) offsets of the records read.")
    innovation_mean: float | None
    innovation_rms: float | None
    expected_rms: float | None = Field(description="RMS of the expected innovation spreads: an innovation RMS "
                                                   "well above it means a bad sensor or a diverging filter.")
    spread: float = Field(description="Mean analysis std over the state vector.")
    revision: int = Field(description="The state revision the analysis was written as.")
    origin_cycle: str | None = None
    created_at: datetime
    innovations: dict[str, InnovationRead] | None = None
    observations: list[dict[str, Any]] | None = None
    analysis: dict[str, dict[str, float]] | None = Field(default=None, description="Entry → mean and std.")
    provenance: dict[str, Any] | None = None


class AssimilationResult(BaseModel):
    twin: str = Field(description="The twin the cycles ran on (the fork, with what_if).")
    cycles: list[CycleRead] = Field(description="Each cycle that ran, oldest first (none with answer summary).")
    count: int = Field(default=0, description="How many cycles ran.")
    last: CycleRead | None = Field(default=None, description="The last cycle that ran (the twin's analysis now).")
    pending: int = Field(description="Observation times still waiting for a cycle.")


class CyclePage(BaseModel):
    items: list[CycleRead]
    total: int


class ScheduleWrite(BaseModel):
    """Set, for one twin, when its cycles run by themselves (overrides the app's ``assimilation.run``)."""

    model_config = ConfigDict(extra="forbid")

    on: Literal["arrival", "schedule", "off"] = Field(description="arrival (once per batch of new records), "
                                                                  "schedule (every ``every``) or off.")
    every: Duration | None = Field(default=None, description="schedule: the interval (needed); arrival: the "
                                                             "least time between two passes.")

    def every_seconds(self) -> float | None:
        if self.every is None:
            return None
        if not timedelta(seconds=1) <= self.every <= timedelta(days=366):
            raise ValueError("every must be between 1 s and 366 days")
        return self.every.total_seconds()


class ScheduleRead(BaseModel):
    """When a twin's cycles run by themselves and how the last pass ended."""

    twin: str
    on: Literal["arrival", "schedule", "off"]
    every_seconds: float | None
    source: str = Field(description="manifest (the app's assimilation.run) or twin (set for this twin).")
    owner: str = Field(description="The identity the cycles run as.")
    next_due_at: datetime | None = Field(description="Not before then (a schedule's tick, a throttle, a retry).")
    seen_end: int = Field(description="The observed stream's offset the last pass read up to.")
    running: bool = Field(description="An engine holds the twin now.")
    last_run_at: datetime | None
    last_cycles: int
    failures: int = Field(description="Passes failed in a row; each retry waits twice as long (5 s to 1 h).")
    last_error: str | None
    last_error_at: datetime | None
