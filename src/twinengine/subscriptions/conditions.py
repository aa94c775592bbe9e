"""The conditions a person can subscribe to, parsed from one line of text (``--when``) and judged on values.

    <property> changes            an alert-like value changes (true → false, "low" → "high")
    <property> > 0.5              a number crosses a threshold: told when it comes to hold (also >=, <, <=)
    <property> stale 30m          no reported value for a duration (s, m, h, d, w or ISO 8601)

The property must be one the twin's app declares (``name[key]`` for a keyed one) and the twin reports: values
are the reported state (what the physical twin and its workflows write), so a ``desired_only`` property (a
setting users give, such as an alert threshold) is refused, as a condition on it could never fire. A threshold
needs a number or integer property.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from twinengine.catalog import state_keys
from twinengine.catalog.manifest import Manifest, StateType
from twinengine.errors import ValidationFailed
from twinengine.quality.stored import unpack
from twinengine.timeutil import format_duration, parse_setting_duration

__all__ = ["Condition", "parse", "watchable"]

_PROPERTY = r"(?P<prop>[A-Za-z_][A-Za-z0-9_]*(?:\[[A-Za-z0-9][A-Za-z0-9_.:-]*\])?)"
_CHANGES = re.compile(rf"^{_PROPERTY}\s+changes$")
_COMPARE = re.compile(rf"^{_PROPERTY}\s*(?P<op>>=|<=|>|<)\s*(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$")
_STALE = re.compile(rf"^{_PROPERTY}\s+stale(?:\s+for)?\s+(?P<duration>\S+)$")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt,
                                                         "<=": operator.le}
_HELP = ("write '<property> changes', '<property> > <number>' (or >=, <, <=) or '<property> stale <duration>', "
         "e.g. 'forecast_alert changes'")
_TIMEDELTA = TypeAdapter(timedelta)


@dataclass(frozen=True)
class Condition:
    """A parsed condition: ``kind`` changes, above, below or stale."""

    prop: str
    kind: str
    operator: str | None = None
    threshold: float | None = None
    stale_seconds: float | None = None

    @property
    def text(self) -> str:
        """The condition written back in its one canonical form."""
        if self.kind == "changes":
            return f"{self.prop} changes"
        if self.kind == "stale":
            return f"{self.prop} stale {format_duration(timedelta(seconds=self.stale_seconds or 0))}"
        return f"{self.prop} {self.operator} {self.threshold:g}"

    def met(self, value: Any) -> bool | None:
        """Whether a threshold condition holds for ``value`` (None: the value is not a number)."""
        plain = unpack(value).value
        if self.operator is None or isinstance(plain, bool) or not isinstance(plain, int | float):
            return None
        number = float(plain)
        if not math.isfinite(number):
            return None
        return _OPERATORS[self.operator](number, self.threshold or 0.0)


def watchable(manifest: Manifest) -> list[str]:
    """The properties a condition can fire on: those the twin reports (not ``desired_only``); a keyed one is
    watched per key (``name[key]``)."""
    return [name for name, p in (manifest.state or {}).items() if not p.desired_only]


def _duration(text: str) -> float:
    try:
        parsed = _TIMEDELTA.validate_python(parse_setting_duration(text, "when"))
    except (ValueError, ValidationError):
        raise ValidationFailed.one("when", f"{text!r} is not a duration; use 90s, 15m, 12h, 2d or ISO 8601 "
                                           "(PT30M)") from None
    seconds = parsed.total_seconds()
    if seconds < 1 or seconds > 366 * 86400:
        raise ValidationFailed.one("when", "a staleness duration is from 1 second to a year")
    return seconds


def parse(text: str, manifest: Manifest) -> Condition:
    """The condition ``text`` states, checked against the properties ``manifest`` declares (422 naming
    ``when`` otherwise)."""
    line = " ".join(text.split())
    if len(line) > 200 or not line:
        raise ValidationFailed.one("when", f"a condition is 1 to 200 characters; {_HELP}")
    condition: Condition | None = None
    if found := _CHANGES.match(line):
        condition = Condition(found["prop"], "changes")
    elif found := _COMPARE.match(line):
        threshold = float(found["number"])
        if not math.isfinite(threshold):
            raise ValidationFailed.one("when", "the threshold is not a finite number")
        kind = "above" if found["op"].startswith(">") else "below"
        condition = Condition(found["prop"], kind, operator=found["op"], threshold=threshold)
    elif found := _STALE.match(line):
        condition = Condition(found["prop"], "stale", stale_seconds=_duration(found["duration"]))
    if condition is None:
        raise ValidationFailed.one("when", f"{text!r} is not a condition; {_HELP}")
    try:
        name, declared, _key = state_keys.resolve(manifest, condition.prop)
    except state_keys.KeyProblem as exc:
        raise ValidationFailed.one("when", str(exc)) from None
    if declared.desired_only:
        raise ValidationFailed.one("when", f"{name!r} is set by users as desired state only (desired_only): the "
                                           "twin never reports it, so a condition on it could never fire; watch "
                                           f"one of {', '.join(watchable(manifest)) or 'no property'}")
    if condition.operator is not None and declared.type not in (StateType.NUMBER, StateType.INTEGER):
        raise ValidationFailed.one("when", f"{condition.prop!r} holds {declared.type.value} values: a threshold "
                                           "needs a number or integer property; use 'changes'")
    return condition
