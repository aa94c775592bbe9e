"""Parsing the durations and instants people type: ``30d``, ``12h``, ``never``, ISO 8601 times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["Instant", "format_duration", "parse_duration", "parse_instant", "parse_setting_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_SHORT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdwy])\s*$", re.IGNORECASE)
_SECONDS = re.compile(r"^\s*\d+(\.\d+)?\s*$")
_ISO = re.compile(r"^\s*-?P", re.IGNORECASE)


def _short(text: str) -> timedelta | None:
    """``30d``, ``12h``, ``1.5h`` as a timedelta; None for anything else."""
    match = _SHORT.match(text)
    return None if match is None else timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_duration(text: str) -> timedelta | None:
    """``30d`` → 30 days; ``never`` → None (no expiry). Raises ValueError naming the accepted forms."""
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
