"""What the crates' API answers: a rerun started, and a rerun's diff against its original."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["OutputDiff", "RerunDiff", "RerunStarted"]

Verdict = Literal["identical", "within_tolerance", "different"]


class RerunStarted(BaseModel):
    original: str = Field(description="The run run again (from the store, or named by the crate).")
    rerun: str = Field(description="The new run: its diff is at /api/v1/runs/{rerun}/diff once it ended.")
    kind: str
    from_crate: bool = False


class OutputDiff(BaseModel):
    name: str
    verdict: Verdict
    original_sha256: str | None = None
    rerun_sha256: str | None = None
    largest_difference: dict[str, float] | None = Field(
        default=None, description="Per variable, the largest absolute difference (outputs compared value by value).")
    why: str | None = None


class RerunDiff(BaseModel):
    original: str
    rerun: str
    kind: str
    status: str = Field(description="How the rerun ended.")
    verdict: Verdict = Field(description="identical: every output has the original's SHA-256; within_tolerance: "
                                         "every number within the tolerance; different: see why.")
    tolerance: dict[str, float]
    outputs: list[OutputDiff]
    why: list[str] = Field(default_factory=list, description="What differs between the two runs' inputs, app, "
                                                             "engine and model versions, or what the app declares.")
