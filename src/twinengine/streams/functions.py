"""Functions on arrival: decide which records trigger a call; the context a function gets (state updates,
events, workflow requests, its warm model) is ``twinengine.app.FunctionContext``.

The calls themselves run in the app version's warm workers (``twinengine.workers``), never in the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from twinengine.app._context import FunctionContext, StateUpdate
from twinengine.catalog.manifest import FunctionTrigger

__all__ = ["Call", "FunctionContext", "StateUpdate", "failure_signature", "matches", "record_place", "select_calls",
           "select_kept_calls"]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b}


def matches(trigger: FunctionTrigger, record: dict[str, Any]) -> bool:
    """Does a record satisfy a condition trigger? A missing (null) field never does."""
    value = record.get(trigger.field or "")
    return value is not None and _OPS[trigger.op or "eq"](value, trigger.value)


def record_place(records: list[dict[str, Any]], key_field: str | None) -> str:
    """Which records a failing call had, as an operator looks them up: ``record at offset 37, key
    station=ow1`` (a range of offsets and the distinct keys for a window)."""
    offsets = [int(r["_offset"]) for r in records if isinstance(r.get("_offset"), int)]
    if not offsets:
        text = "no records"
    elif len(offsets) == 1:
        text = f"record at offset {offsets[0]}"
    else:
        text = f"records at offsets {min(offsets)}..{max(offsets)}"
    if key_field is not None:
        keys = sorted({str(r.get(key_field)) for r in records})
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        text += f", key {key_field}={shown}"
    return text


def failure_signature(error: str, place: str | None) -> str | None:
    """What makes two failures the same bug: the exception type at the same line of app code (a failure
    with no app line, a crashed worker or a timeout, is taken as transient and has none)."""
    if place is None:
        return None
    return f"{error.split(':', 1)[0].strip()}@{place}"


Call = tuple[list[dict[str, Any]], int]  # the records of one call, and how many records it consumes through


def select_calls(trigger: FunctionTrigger, records: list[dict[str, Any]]) -> tuple[list[Call], int]:
    """Split available records into calls; returns the calls and how many records they consume (a count
    window waits for its last records; a time window is decided by the caller, which passes all)."""
    if trigger.kind == "record":
        return [([r], i + 1) for i, r in enumerate(records)], len(records)
    if trigger.kind == "count":
        size = trigger.count or 1
        full = len(records) // size * size
        return [(records[i: i + size], i + size) for i in range(0, full, size)], full
    if trigger.kind == "condition":
        return [([r], i + 1) for i, r in enumerate(records) if matches(trigger, r)], len(records)
    return ([(records, len(records))] if records else []), len(records)


def select_kept_calls(trigger: FunctionTrigger, records: list[dict[str, Any]],
                      exclude: Collection[str], skipped: Collection[int] = ()) -> tuple[list[Call], int]:
    """``select_calls`` over the records whose ``_quality`` is not excluded (a function declared with
    ``quality: {exclude: [bad]}`` never sees bad records) and whose position is not ``skipped`` (joined
    records left out); the consumed counts still refer to ``records``, so the checkpoint moves past them."""
    if not exclude and not skipped:
        return select_calls(trigger, records)
    left_out = set(skipped)
    kept = [i for i, r in enumerate(records) if r.get("_quality") not in exclude and i not in left_out]
    calls, used = select_calls(trigger, [records[i] for i in kept])

    # a partial count window waits from its first kept record on; skipped records before it are consumed
    return [(rs, kept[n - 1] + 1) for rs, n in calls], kept[used] if used < len(kept) else len(records)
