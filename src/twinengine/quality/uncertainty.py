"""Uncertainty carried by a value: a standard deviation, quantiles, or ensemble members.

An app declares per state property which forms a value may carry (``uncertainty: std`` or a list). A
value then travels as ``{"value": 2.1, "unit": "m", "uncertainty": {"std": 0.3}}``; the state log keeps
it inside the value's JSON (``quality.stored``), so plain values stay exactly as they were stored before.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = ["Uncertainty", "UncertaintyForm", "convert_uncertainty", "describe"]


class UncertaintyForm(StrEnum):
    STD = "std"  # one standard deviation around the value
    QUANTILES = "quantiles"  # levels in (0, 1) → values
    MEMBERS = "members"  # the ensemble members the value summarises


def _level(text: str) -> str:
    try:
        level = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a quantile level (a number in (0, 1) such as '0.05')") from None
    if not 0 < level < 1:
        raise ValueError(f"quantile level {text} is outside (0, 1)")
    return text


def _ordered(quantiles: dict[str, float]) -> dict[str, float]:
    for (a, qa), (b, qb) in pairwise(quantiles.items()):
        if float(b) <= float(a):
            raise ValueError(f"quantile levels must increase: {b} follows {a}")
        if qb < qa:
            raise ValueError(f"quantiles must not decrease as the level grows: {qb} at {b} is below {qa} at {a}")
    return quantiles


# Strict: "1.5" (text) or true are not numbers here; non-finite numbers are refused.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Level = Annotated[str, Field(max_length=32), AfterValidator(_level)]


def _absent(value: Any) -> bool:
    return value is None


class Uncertainty(BaseModel):
    """One or more forms; each a value may carry must be declared by its property."""

    model_config = ConfigDict(extra="forbid")

    std: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)] | None = Field(
        default=None, exclude_if=_absent, description="Standard deviation, in the value's unit.")
    quantiles: Annotated[dict[Level, Number], AfterValidator(_ordered)] | None = Field(
        default=None, min_length=1, max_length=99, exclude_if=_absent,
        description="Quantile level (in (0, 1), increasing) → value, in the value's unit.")
    members: list[Number] | None = Field(
        default=None, min_length=1, max_length=10_000, exclude_if=_absent,
        description="Ensemble members, in the value's unit.")

    @model_validator(mode="after")
    def _consistent(self) -> Uncertainty:
        if self.std is None and self.quantiles is None and self.members is None:
            raise ValueError("give at least one of std, quantiles, members")
        return self

    def forms(self) -> list[UncertaintyForm]:
        return [f for f in UncertaintyForm if getattr(self, f.value) is not None]

    def plain(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def describe(uncertainty: Uncertainty | None) -> str:
    """A short text for tables (4 significant digits): ``±0.3``, ``q0.05=1.7 q0.5=2.1 q0.95=2.6``, ``20 members``."""
    if uncertainty is None:
        return ""
    parts = []
    if uncertainty.std is not None:
        parts.append(f"±{uncertainty.std:.4g}")
    if uncertainty.quantiles is not None:
        parts.append(" ".join(f"q{k}={v:.4g}" for k, v in uncertainty.quantiles.items()))
    if uncertainty.members is not None:
        parts.append(f"{len(uncertainty.members)} members")
    return ", ".join(parts)


def convert_uncertainty(uncertainty: dict[str, Any], convert: Callable[[float], float]) -> dict[str, Any]:
    """The same uncertainty in another unit: quantiles and members convert as values do, a standard
    deviation only scales (an offset such as °C → K moves the value, not its spread)."""
    out: dict[str, Any] = {}
    if "std" in uncertainty:
        out["std"] = abs(convert(uncertainty["std"]) - convert(0.0))
    if "quantiles" in uncertainty:
        out["quantiles"] = {k: convert(v) for k, v in uncertainty["quantiles"].items()}
    if "members" in uncertainty:
        out["members"] = [convert(v) for v in uncertainty["members"]]
    return out
