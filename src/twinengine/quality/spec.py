"""What an app declares about the quality of its streams' input: checks per field (``quality:`` under a
stream in ``twinapp.yaml``) and, for consumers, which flags to leave out (``quality: {exclude: [bad]}``).

The checks are data only; ``quality.plan`` turns them into vectorised functions over a batch. Errors name
the field as a developer wrote it (``streams.gauges.quality[1].max``): the catalogue drops the check kind
pydantic puts in union locations.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from twinengine.quality.expr import MAX_EXPR_CHARS, Expression, parse_expr

__all__ = [
    "CHECK_KINDS",
    "MAX_STATE_GAP",
    "STATE_CHECK_KINDS",
    "Check",
    "CompletenessCheck",
    "ConsistencyCheck",
    "Duration",
    "Flag",
    "FlatlineCheck",
    "GapCheck",
    "QualityPolicy",
    "RangeCheck",
    "SpikeCheck",
    "StateCheck",
    "StateGapCheck",
    "parse_duration",
]


class Flag(StrEnum):
    """A record's quality: it passed every check, failed a check that only raises doubt, or failed one that
    makes it unusable. The order is the severity (codes 0, 1, 2 in the log)."""

    GOOD = "good"
    SUSPECT = "suspect"
    BAD = "bad"


FLAGS: tuple[Flag, ...] = (Flag.GOOD, Flag.SUSPECT, Flag.BAD)
_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h|d|w)\s*$", re.IGNORECASE)


def parse_duration(value: Any) -> Any:
    """``15min``, ``15m``, ``1h``, ``30s``, ``2d``, seconds as a number, or ISO 8601 (left to pydantic)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return timedelta(seconds=float(value))
        except OverflowError:
            raise ValueError(f"{value!r} seconds is longer than any duration this engine keeps") from None
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            try:
                return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])
            except OverflowError:
                raise ValueError(f"{value!r} is longer than any duration this engine keeps") from None
        if not value.strip().upper().startswith(("P", "-P")):
            raise ValueError(f"{value!r} is not a duration; use e.g. 15min, 30s, 1h, 2d or ISO 8601 (PT15M)")
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("a duration here must be positive")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
_Field = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
_Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$", max_length=64)]
Severity = Literal["suspect", "bad"]


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: _Name | None = Field(default=None, description="Reason recorded on a failing record; default "
                                                         "'<check>:<field>' or '<check>'.")

    @property
    def label(self) -> str:
        field = getattr(self, "field", None)
        return self.name or (f"{self.check}:{field}" if field else self.check)  # type: ignore[attr-defined]

    @property
    def fields(self) -> list[str]:
        """Stream fields the check reads (checked against the declaration by the catalogue)."""
        return list(dict.fromkeys(field for _part, field, _position in self.reads()))

    @property
    def expressions(self) -> list[Expression]:
        """The conditions the check evaluates (its ``expr``, its ``when``)."""
        return []

    def reads(self) -> list[tuple[str, str, int | None]]:
        """Each field read: the parameter naming it, the field, and its position in an expression."""
        field = getattr(self, "field", None)
        return [("field", field, None)] if field else []


def _expression(value: str | None) -> str | None:
    """An expression that parses (the error says what is wrong and where)."""
    if value is not None:
        parse_expr(value)
    return value


_Expr = Annotated[str, Field(min_length=1, max_length=MAX_EXPR_CHARS)]


class _Flagging(_Check):
    """A check that flags records, which ``when`` can suspend: where the condition is known to be false
    (e.g. ``rate == prev.rate`` after a pump-rate change), the check flags nothing."""

    when: _Expr | None = Field(
        default=None, description="Condition under which the check judges a record, over its fields and "
                                  "the previous record's of the same source (prev.<field>); a record where it "
                                  "is false is not flagged by this check (see docs/quality.md).")

    _when = field_validator("when")(_expression)

    @property
    def condition(self) -> Expression | None:
        """``when`` parsed (None: the check always judges)."""
        return None if self.when is None else parse_expr(self.when)

    @property
    def expressions(self) -> list[Expression]:
        return [] if self.condition is None else [self.condition]

    def reads(self) -> list[tuple[str, str, int | None]]:
        condition = self.condition
        whens: list[tuple[str, str, int | None]] = [] if condition is None else [
            ("when", r.field, r.position) for r in condition.references]
        return [*super().reads(), *whens]


class RangeCheck(_Flagging):
    """Values outside [min, max] are physically implausible."""

    check: Literal["range"]
    field: _Field
    min: float | None = None
    max: float | None = None
    severity: Severity = "bad"

    @field_validator("max")
    @classmethod
    def _above_min(cls, value: float | None, info: ValidationInfo) -> float | None:
        low = info.data.get("min")
        if value is not None and low is not None and value < low:
            raise ValueError(f"max {value} is below min {low}")
        return value

    @model_validator(mode="after")
    def _a_bound(self) -> RangeCheck:
        if self.min is None and self.max is None:
            raise ValueError("a range check needs min, max or both")
        return self


class SpikeCheck(_Flagging):
    """A change from the previous value larger than ``max_change`` per record, or per ``per`` of event
    time. The return from a one-record spike is not flagged again."""

    check: Literal["spike"]
    field: _Field
    max_change: float = Field(gt=0)
    per: Literal["record"] | Duration = "record"
    severity: Severity = "suspect"

    @field_validator("per")
    @classmethod
    def _per(cls, value: Any) -> Any:
        return _positive(value) if isinstance(value, timedelta) else value


class FlatlineCheck(_Flagging):
    """A stuck sensor: the same value (within ``tolerance``) for ``records`` readings in a row, or for at
    least ``duration`` of event time. Flags from the N-th identical reading on."""

    check: Literal["flatline"]
    field: _Field
    records: int | None = Field(default=None, ge=2, le=1_000_000)
    duration: Duration | None = None
    tolerance: float = Field(default=0.0, ge=0)
    severity: Severity = "suspect"

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: timedelta | None) -> timedelta | None:
        return None if value is None else _positive(value)

    @model_validator(mode="after")
    def _one_limit(self) -> FlatlineCheck:
        if (self.records is None) == (self.duration is None):
            raise ValueError("a flatline check needs records or duration (one of them)")
        return self


class GapCheck(_Flagging):
    """The expected cadence: a record whose event time follows the previous one (same key) by more than
    ``every + tolerance`` is flagged ``gap``; one that arrives more than ``max_delay`` after its event time
    is flagged ``late``."""

    check: Literal["gap"]
    every: Duration
    tolerance: Duration = timedelta(0)
    max_delay: Duration | None = None
    severity: Severity = "suspect"

    @field_validator("every", "max_delay")
    @classmethod
    def _durations(cls, value: timedelta | None) -> timedelta | None:
        return None if value is None else _positive(value)

    @field_validator("tolerance")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("a tolerance cannot be negative")
        return value


class CompletenessCheck(_Check):
    """Share of the expected records (one per ``every`` per key) received in each ``window``; a window below
    ``min`` is reported by the indicators. It flags no record: a missing record has nothing to flag."""

    check: Literal["completeness"]
    every: Duration | None = Field(default=None, description="Default: the stream's gap check cadence.")
    window: Duration = timedelta(hours=1)
    min: float = Field(default=0.9, ge=0, le=1)

    @field_validator("every", "window")
    @classmethod
    def _durations(cls, value: timedelta | None) -> timedelta | None:
        return None if value is None else _positive(value)


class ConsistencyCheck(_Flagging):
    """A condition over the record's fields and the previous record's that must hold, e.g. ``low <= high``,
    ``0 <= rain < 500`` or ``abs(head - prev.head) < 0.5 or rate != prev.rate`` (a small grammar, never
    ``eval``)."""

    check: Literal["consistency"]
    expr: _Expr
    severity: Severity = "bad"

    _expr = field_validator("expr")(_expression)

    @property
    def comparison(self) -> Expression:
        """``expr`` parsed."""
        return parse_expr(self.expr)

    @property
    def expressions(self) -> list[Expression]:
        return [self.comparison, *super().expressions]

    def reads(self) -> list[tuple[str, str, int | None]]:
        return [("expr", r.field, r.position) for r in self.comparison.references] + super().reads()


Check = Annotated[RangeCheck | SpikeCheck | FlatlineCheck | GapCheck | CompletenessCheck | ConsistencyCheck,
                  Field(discriminator="check")]
CHECK_KINDS = frozenset({"range", "spike", "flatline", "gap", "completeness", "consistency"})
STATE_FIELD = "value"  # what a state property's check judges: the property's own value
MAX_STATE_GAP = timedelta(days=366)  # a state property's longest declared silence (every + tolerance)


class StateGapCheck(GapCheck):
    """A state property's expected cadence: a value reported more than ``every + tolerance`` after the newest
    one before it is flagged ``gap:<property>`` (one that arrives more than ``max_delay`` after its timestamp,
    ``late:<property>``), and a read says the property is stale once that long has passed without a report."""

    when: SkipJsonSchema[None] = Field(default=None, exclude=True)  # a state property's checks take no condition

    @field_validator("every", "tolerance", "max_delay")
    @classmethod
    def _not_absurd(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value > MAX_STATE_GAP:
            raise ValueError(f"{value.total_seconds() / 86400:g} days is longer than a state property's gap check "
                             f"allows ({MAX_STATE_GAP.days} days)")
        return value

    @model_validator(mode="after")
    def _bounded(self) -> StateGapCheck:
        if self.every + self.tolerance > MAX_STATE_GAP:
            raise ValueError(f"every + tolerance is longer than a state property's gap check allows "
                             f"({MAX_STATE_GAP.days} days)")
        return self

    @property
    def limit(self) -> timedelta:
        """The longest silence that is not a gap."""
        return self.every + self.tolerance


def _own_value(item: Any) -> Any:
    """A state property's check judges the property itself: it names no field (range, spike and flatline
    models' ``field`` is filled with a placeholder; a gap check reads only the values' timestamps); a record's
    checks (completeness, consistency) do not apply to state."""
    if isinstance(item, dict):
        kind = item.get("check")
        if item.get("when") is not None:
            raise ValueError("'when' is for checks of stream records; a state property's check judges every "
                             "value reported to it")
        if kind == "gap":
            if "field" in item:
                raise ValueError("a gap check of a state property judges when that property is reported: "
                                 "leave out 'field'")
            return item
        if item.get("field", STATE_FIELD) != STATE_FIELD:  # (a stored manifest has the placeholder back)
            raise ValueError("a check of a state property judges that property: leave out 'field'")
        if kind in CHECK_KINDS and kind not in STATE_CHECK_KINDS:
            raise ValueError(f"a {kind} check is for stream records; a state property takes "
                             f"{', '.join(sorted(STATE_CHECK_KINDS))}")
        return {**item, "field": STATE_FIELD}
    return item


STATE_CHECK_KINDS = frozenset({"range", "spike", "flatline", "gap"})
StateCheck = Annotated[RangeCheck | SpikeCheck | FlatlineCheck | StateGapCheck, Field(discriminator="check"),
                       BeforeValidator(_own_value)]


class QualityPolicy(BaseModel):
    """What a consumer of a stream (a function on arrival, a retraining buffer) leaves out."""

    model_config = ConfigDict(extra="forbid")

    exclude: list[Flag] = Field(default_factory=list, max_length=2,
                                description="Flags whose records are skipped, e.g. [bad] or [suspect, bad].")

    @field_validator("exclude")
    @classmethod
    def _not_good(cls, value: list[Flag]) -> list[Flag]:
        if Flag.GOOD in value:
            raise ValueError("good records cannot be excluded")
        return sorted(set(value), key=FLAGS.index)
