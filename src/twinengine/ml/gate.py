"""The validation gate: a new model version becomes champion only if its held-out metrics pass the app's rules.

Rules: absolute thresholds per metric, better than (or within a margin of) the current champion on one
metric, for sampler models (normalising flows...) an acceptance-rate band, and for models with prediction
intervals their held-out coverage within a band of the nominal level. With ``champion_skill``, the verified
skill of the forecasts the champion issued (``twin verify``) takes part: when it breaks the rule, the champion
is failing in operation and the comparison with it is waived (the candidate still meets every other rule).
The decision keeps its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from twinengine.quality.verification import SkillRule

__all__ = ["Decision", "GateSpec", "IntervalRule", "Threshold", "evaluate"]


class Threshold(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max: float | None = None
    min: float | None = None


class IntervalRule(BaseModel):
    """The held-out coverage of the version's prediction interval is within ``within`` of its nominal level."""

    model_config = ConfigDict(extra="forbid")

    within: float = Field(default=0.05, gt=0, lt=1, description="e.g. 0.03: a 90 % interval covers 87-93 %.")


class GateSpec(BaseModel):
    """What an app declares (``gate:`` of its model task); all parts optional."""

    model_config = ConfigDict(extra="forbid")

    thresholds: dict[str, Threshold] = Field(default_factory=dict, description="metric -> {min, max}")
    compare: str | None = Field(default="val_loss", description="Metric compared with the champion's.")
    mode: Literal["min", "max"] = "min"
    margin: float = Field(default=0.0, ge=0, description="Relative slack: within margin of the champion passes.")
    acceptance_rate: Threshold | None = Field(default=None, description="Band for metric 'acceptance_rate'.")
    interval: IntervalRule | None = Field(default=None, description="Held-out coverage of the prediction interval.")
    champion_skill: SkillRule | None = Field(
        default=None, description="A rule on the verified skill of the forecasts the champion issued (those "
        "recorded with this model and the champion's version): broken, the comparison with the champion is waived.")


@dataclass
class Decision:
    accepted: bool
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what else decided it (a waived comparison)

    @property
    def reason(self) -> str:
        said = "; ".join(self.reasons) if self.reasons else "passed every rule"
        return "; ".join([said, *self.notes])


def _bound(name: str, value: float | None, rule: Threshold, reasons: list[str]) -> None:
    if value is None:
        reasons.append(f"{name} was not measured")
        return
    if rule.max is not None and value > rule.max:
        reasons.append(f"{name} {value:.6g} > max {rule.max:g}")
    if rule.min is not None and value < rule.min:
        reasons.append(f"{name} {value:.6g} < min {rule.min:g}")


def evaluate(spec: GateSpec, candidate: dict[str, float], champion: dict[str, float] | None,
             champion_skill: dict[str, Any] | None = None) -> Decision:
    """Check ``candidate`` (held-out metrics) against ``spec`` and the champion's metrics (None: no champion);
    ``champion_skill`` is the verdict of ``spec.champion_skill`` on the champion's verified forecasts."""
    reasons: list[str] = []
    notes: list[str] = []
    for name, rule in sorted(spec.thresholds.items()):
        _bound(name, candidate.get(name), rule, reasons)
    if spec.acceptance_rate is not None:
        _bound("acceptance_rate", candidate.get("acceptance_rate"), spec.acceptance_rate, reasons)
    if spec.interval is not None:
        covered, level = candidate.get("interval_coverage"), candidate.get("interval_level")
        if covered is None or level is None:
            reasons.append("interval_coverage was not measured (the model gives no predictions to calibrate)")
        elif abs(covered - level) > spec.interval.within:
            reasons.append(f"interval_coverage {covered:.3f} is not within {spec.interval.within:g} of the "
                           f"nominal {level:g}")
    waived = bool(champion_skill and champion_skill.get("broken"))
    if waived and champion_skill is not None:
        notes.append(f"the champion's verified {champion_skill['metric']} {champion_skill['value']:.3g} over "
                     f"{champion_skill['pairs']} forecast pairs breaks the skill rule: the comparison with it "
                     "is waived")
    if spec.compare and champion is not None and spec.compare in champion and not waived:
        new, old = candidate.get(spec.compare), champion[spec.compare]
        if new is None:
            reasons.append(f"{spec.compare} was not measured")
        else:
            slack = abs(old) * spec.margin
            worse = new > old + slack if spec.mode == "min" else new < old - slack
            if worse:
                reasons.append(f"{spec.compare} {new:.6g} is worse than the champion's {old:.6g}"
                               + (f" beyond the {spec.margin:.0%} margin" if spec.margin else ""))
    return Decision(accepted=not reasons, reasons=reasons, notes=notes)
