"""Parsing the durations and instants people type: ``30d``, ``12h``, ``never``, ISO 8601 times."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

from pydantic import BeforeValidator

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Instant", "TimeLike", "as_instant", "format_duration", "iso_instant", "parse_duration", "parse_instant",
           "parse_setting_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_SHORT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdwy])\s*$", re.IGNORECASE)
_SECONDS = re.compile(r"^\s*\d+(\.\d+)?\s*$")
_ISO = re.compile(r"^\s*-?P", re.IGNORECASE)


# The longest duration people may type: an expiry this far ahead still has a date (datetime ends at year 9999).
MAX_DURATION = timedelta(days=1000 * 365)


def _short(text: str) -> timedelta | None:
    """``30d``, ``12h``, ``1.5h`` as a timedelta; None for anything else; ValueError beyond ``MAX_DURATION``."""
    match = _SHORT.match(text)
    if match is None:
        return None
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{text.strip()[:40]!r} is longer than the longest duration, 1000y; use 'never' for none")
    return timedelta(seconds=seconds)


def parse_duration(text: str) -> timedelta | None:
    """``30d`` → 30 days; ``never`` → None (no expiry). Raises ValueError naming the accepted forms or the
    longest duration."""
    if text.strip().lower() in {"never", "none", "0"}:
        return None
    value = _short(text)
    if value is None or value <= timedelta(0):
        raise ValueError(f"{text!r} is not a duration; use a positive number with s, m, h, d, w or y, or 'never'")
    return value


def parse_setting_duration(value: Any, field: str) -> Any:
    """A duration setting as seconds, ``30d``/``12h``/``15m``/``45s``/``2w``, or ISO 8601 (left to pydantic,
    which names the field if it cannot parse it); a bad string is a ValueError naming ``field``."""
    if not isinstance(value, str):
        return value
    if _SECONDS.match(value):
        return timedelta(seconds=float(value))
    short = _short(value)
    if short is not None:
        return short
    if _ISO.match(value):
        return value
    raise ValueError(f"{field}: {value!r} is not a duration; use seconds (90), 30d, 12h, 15m, 45s, 2w "
                     "or ISO 8601 (PT30S)")


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("y", "w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0 and seconds >= _UNITS[unit]:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant; a time without zone is taken as UTC (and said so in the docs)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


TimeLike: TypeAlias = "str | datetime | date | np.datetime64"
"""What the SDK takes as a time: ISO 8601 text, a datetime or date, a pandas Timestamp, a numpy datetime64."""


def as_instant(value: Any, name: str = "time") -> datetime:
    """An instant from what a caller has at hand: an ISO 8601 string, a ``datetime`` or ``date``, a pandas
    ``Timestamp`` or a numpy ``datetime64``; without a zone it is UTC. Anything else (epoch numbers
    included: seconds or nanoseconds, nobody can tell) is a ValidationFailed naming ``name``."""
    from twinengine.errors import ValidationFailed

    if isinstance(value, str):
        try:
            return parse_instant(value)
        except ValueError:
            raise ValidationFailed.one(name, f"{value!r} is not an ISO 8601 time, e.g. 2026-03-01T06:00:00Z"
                                       ) from None
    if type(value).__module__ == "numpy" and hasattr(value, "dtype") and value.dtype.kind == "M":
        if value != value:  # NaT
            raise ValidationFailed.one(name, "NaT is not a time")
        value = value.astype("datetime64[us]").item()  # a naive datetime (UTC by numpy's convention)
    if isinstance(value, datetime):
        if value != value:  # pandas' NaT is a datetime that equals nothing
            raise ValidationFailed.one(name, "NaT is not a time")
        plain: datetime = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value  # (a pandas Timestamp)
        return plain.replace(tzinfo=UTC) if plain.tzinfo is None else plain.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ValidationFailed.one(name, f"{type(value).__name__} {value!r} is not a time; give an ISO 8601 string, "
                                     "a datetime, a pandas Timestamp or a numpy datetime64")


def iso_instant(value: Any, name: str = "time") -> str | None:
    """``as_instant`` as the ISO 8601 text a request carries (``...Z``); None stays None."""
    if value is None:
        return None
    return as_instant(value, name).isoformat().replace("+00:00", "Z")


def _instant_param(value: Any) -> Any:
    """Query parameters arrive as text, and JSON may carry a number; pydantic would read ``0.5`` as seconds
    since 1970, which nobody means."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value!r} is a number, not an RFC 3339 / ISO 8601 time such as 2026-03-01T06:00:00Z")
    if not isinstance(value, str):
        return value
    try:
        return parse_instant(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 / ISO 8601 time, e.g. 2026-03-01T06:00:00Z "
                         "(numbers are not read as epoch seconds)") from None


Instant = Annotated[datetime, BeforeValidator(_instant_param)]
"""An instant given as an ISO 8601 string (without a zone it is UTC), for query parameters and request fields."""
