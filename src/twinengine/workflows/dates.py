"""openEO's date processes on plain values: ``date_shift`` and ``date_between`` (openeo-processes 2.0.0-rc.2).

The library's own versions build their answers by pasting strings (a day past the 9th gained a second ``T``, a
shift by hours of a date without time failed), so they are written here on :mod:`datetime`, following the
specification's rules: a date without time is midnight UTC and stays a date; a date and time keeps its time zone
and its precision (milliseconds only where there are any); months and years move by the calendar, clamped to the
month's last day (31 January + 1 month is 29 February in a leap year); a leap second may be passed and is never
returned.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

from twinengine.errors import ProcessParameterInvalid

__all__ = ["date_between", "date_shift"]

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TIME = re.compile(r"^(\d{2}):(\d{2}):(\d{2})$")
_DATETIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:\d{2})$")
_UNITS = {"millisecond": timedelta(milliseconds=1), "second": timedelta(seconds=1), "minute": timedelta(minutes=1),
          "hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


def _parsed(value: Any, field: str) -> tuple[str, datetime | time, str]:
    """(kind, value, zone as written) of an openEO date (``date``), date and time (``date-time``) or time
    (``time``); a leap second (``:60``) is read as the second before it plus one second. The graph parser
    hands values that look like dates over typed (its ``Date``, ``DateTime`` and ``Time``): taken as they are."""
    typed = _typed(value)
    if typed is not None:
        return typed
    if not isinstance(value, str):
        raise ProcessParameterInvalid(f"{field}: expected a date, a date and time or a time as text, got "
                                      f"{type(value).__name__}")
    try:
        if found := _DATE.match(value):
            year, month, day = map(int, found.groups())
            return "date", datetime(year, month, day, tzinfo=UTC), "Z"
        if found := _TIME.match(value):
            hour, minute, second = map(int, found.groups())
            return "time", time(hour, minute, min(second, 59), tzinfo=UTC), "Z"
        if found := _DATETIME.match(value):
            year, month, day, hour, minute, second = map(int, found.groups()[:6])
            fraction, zone = found.group(7) or "", found.group(8)
            offset = UTC if zone in ("Z", "z") else _offset(zone)
            leap = second == 60
            moment = datetime(year, month, day, hour, minute, 59 if leap else second,
                              int((fraction + "000000")[:6]), tzinfo=offset)
            return "date-time", moment + timedelta(seconds=1) if leap else moment, "Z" if zone in ("Z", "z") else zone
    except ValueError as exc:
        raise ProcessParameterInvalid(f"{field}: {value!r} is not a valid date or time ({exc})") from None
    raise ProcessParameterInvalid(f"{field}: {value!r} is not a date (YYYY-MM-DD), a date and time (RFC 3339) or a "
                                  "time (HH:MM:SS)")


def _typed(value: Any) -> tuple[str, datetime | time, str] | None:
    from openeo_pg_parser_networkx.pg_schema import Date, DateTime, Time  # without graph.py: openeo_schema

    if isinstance(value, Date | DateTime):
        moment: datetime = value.root
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if isinstance(value, Date):
            return "date", datetime(moment.year, moment.month, moment.day, tzinfo=UTC), "Z"
        offset = moment.utcoffset() or timedelta(0)
        minutes = int(offset.total_seconds()) // 60
        zone = "Z" if minutes == 0 else f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        return "date-time", datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
                                     moment.microsecond, tzinfo=timezone(offset)), zone
    if isinstance(value, Time):
        clock: time = value.root
        return "time", clock.replace(tzinfo=clock.tzinfo or UTC), "Z"
    return None


def _offset(zone: str) -> timezone:
    sign = -1 if zone[0] == "-" else 1
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _written(moment: datetime, zone: str) -> str:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond % 1000 else \
            f".{moment.microsecond // 1000:03d}"
    return text + zone


def _plus_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise ProcessParameterInvalid("value: the date would leave the years 1 to 9999")
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def date_shift(date: Any, value: Any, unit: Any) -> str | None:
    """``date`` moved by ``value`` ``unit``s; a date stays a date (its time, midnight, is dropped again)."""
    if date is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProcessParameterInvalid(f"value: expected an integer, got {value!r}")
    kind, moment, zone = _parsed(date, "date")
    if kind == "time":
        raise ProcessParameterInvalid("date: a time without a date cannot be shifted")
    assert isinstance(moment, datetime)
    try:
        if unit in ("month", "year"):
            shifted = _plus_months(moment, value * (12 if unit == "year" else 1))
        elif unit in _UNITS:
            shifted = moment + value * _UNITS[unit]
        else:
            raise ProcessParameterInvalid(f"unit: {unit!r} is not one of {', '.join([*_UNITS, 'month', 'year'])}")
    except OverflowError:
        raise ProcessParameterInvalid("value: the date would leave the years 1 to 9999") from None
    if kind == "date":
        return shifted.date().isoformat()
    return _written(shifted, zone)


def date_between(x: Any, min: Any, max: Any, exclude_max: bool = False) -> bool | None:
    """Whether ``x`` lies between ``min`` and ``max`` (inclusive; ``max`` excluded with ``exclude_max``). Dates and
    dates with times compare as instants (a date is midnight UTC); times compare with times only."""
    if x is None:
        return None
    values = [_parsed(v, name) for v, name in ((x, "x"), (min, "min"), (max, "max"))]
    times = [kind == "time" for kind, _, _ in values]
    if any(times) and not all(times):
        raise ProcessParameterInvalid("x, min and max are all times of day, or none of them is")
    value, low, high = (moment for _, moment, _ in values)
    if low > high:  # type: ignore[operator]
        return False
    return bool(low <= value and (value < high if exclude_max else value <= high))  # type: ignore[operator]
