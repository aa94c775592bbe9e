"""Recognising a re-sent file: which of a producer's records the stream already holds.

A producer that sends a file again (the same file, or one that grew since) numbers it from where its sequence
stands, so sequence numbers alone would append every record a second time. What the stream holds says
otherwise: a record equal to one it holds (the same event time and the same value in every declared field)
was acknowledged before. ``held`` finds those among a file's records from the stream's records over the
file's time span (read back by the caller), comparing values as the engine stores them: times as instants
(without a zone, UTC), numbers as floats (NaN equal to NaN), arrays sample by sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from twinengine.timeutil import as_instant

__all__ = ["Span", "held", "record_key", "span", "until"]

Key = tuple[Any, ...]
Span = tuple[datetime, datetime]  # the first and last event time of a file's records


def _value(value: Any, kind: str, items: str | None) -> Any:
    if value is None:
        return None
    if kind == "timestamp":
        return as_instant(value)
    if kind == "float" or (kind == "array" and items == "float"):
        if kind == "array":
            return tuple(_value(v, "float", None) for v in value)
        number = float(value)
        return "NaN" if math.isnan(number) else number
    if kind == "integer" or (kind == "array" and items == "integer"):
        return tuple(int(v) for v in value) if kind == "array" else int(value)
    if kind == "boolean":
        return bool(value)
    return str(value)


def record_key(record: Mapping[str, Any], fields: Mapping[str, Any]) -> Key | None:
    """The values of ``record``'s declared ``fields`` (name → field declaration with ``type`` and ``items``)
    as compared; None when a value cannot be read (the engine refuses that record, naming it)."""
    try:
        return tuple(_value(record.get(name), _kind(field), _items(field))
                     for name, field in sorted(fields.items()))
    except Exception:  # a value of the wrong type (ValidationFailed for a time among them)
        return None


def span(records: Iterable[Mapping[str, Any]], time_field: str) -> Span | None:
    """The first and last event time of ``records`` (None when none can be read)."""
    times = []
    for record in records:
        try:
            times.append(as_instant(record.get(time_field)))
        except Exception:  # a record without a readable time: the engine names it
            continue
    return (min(times), max(times)) if times else None


def until(last: datetime) -> datetime:
    """The exclusive end of a read that must include ``last``."""
    return last + timedelta(microseconds=1)


def held(records: Sequence[Mapping[str, Any]], stored: Iterable[Mapping[str, Any]],
         fields: Mapping[str, Any]) -> list[int]:
    """Positions in ``records`` of those equal to a record of ``stored`` (each stored record matches one file
    record at most: a file that holds a record twice, once sent, is sent the second time)."""
    counts: dict[Key, int] = {}
    for record in stored:
        key = record_key(record, fields)
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    found = []
    for position, record in enumerate(records):
        key = record_key(record, fields)
        if key is not None and counts.get(key, 0) > 0:
            counts[key] -= 1
            found.append(position)
    return found


def _kind(field: Any) -> str:
    kind = field.get("type") if isinstance(field, Mapping) else getattr(field, "type", None)
    return str(getattr(kind, "value", kind))


def _items(field: Any) -> str | None:
    items = field.get("items") if isinstance(field, Mapping) else getattr(field, "items", None)
    return None if items is None else str(items)
