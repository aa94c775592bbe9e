"""Requests and answers of the assimilation service: run cycles on a twin, read its cycle records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from twinengine.catalog.assimilation_spec import MAX_MEMBERS, Method

__all__ = ["MAX_CYCLES", "AssimilationRequest", "AssimilationResult", "CyclePage", "CycleRead", "InnovationRead"]

MAX_CYCLES = 200  # cycles one request runs: a request stays short; the CLI asks again for the rest
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
    cycles: list[CycleRead]
    pending: int = Field(description="Observation times still waiting for a cycle.")


class CyclePage(BaseModel):
    items: list[CycleRead]
    total: int
