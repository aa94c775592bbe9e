"""Results measured while they are written: a JSON value is serialised piece by piece against a byte budget,
so a result over its limit stops where it crosses it (a partial file is removed) instead of being written
whole and weighed afterwards; and a run's record keeps its value only when it is small (``ROW_VALUE_BYTES``).

The pieces are what ``json.dumps`` writes with its defaults (ASCII, ``", "`` and ``": "``), so a file written
here reads back as the same value; long strings are encoded a slice at a time, and lists of numbers in blocks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from twinengine.errors import ResultTooLarge

__all__ = ["ROW_VALUE_BYTES", "check_room", "fits_in_row", "json_size", "pieces", "refuse", "write_json"]

ROW_VALUE_BYTES = 1 << 20  # the largest JSON value a run's record keeps; larger ones live in its result.json
_SLICE = 1 << 16  # characters of a string encoded at a time
_BLOCK = 4096  # list items encoded at once when they are all numbers, booleans or nulls
_FLAT = (int, float, bool, type(None))


class _Raw(str):
    """Text written as it is (brackets, separators, keys)."""


def _string(text: str) -> Iterator[str]:
    if len(text) <= _SLICE:
        yield json.dumps(text)
        return
    yield '"'
    for start in range(0, len(text), _SLICE):  # a slice never splits a code point: escapes stay whole
        yield json.dumps(text[start:start + _SLICE])[1:-1]
    yield '"'


def _dict_items(value: dict[Any, Any]) -> Iterator[Any]:
    for n, (key, item) in enumerate(value.items()):
        yield _Raw((", " if n else "") + json.dumps(str(key)) + ": ")
        yield item
    yield _Raw("}")


def _list_items(value: list[Any] | tuple[Any, ...]) -> Iterator[Any]:
    for start in range(0, len(value), _BLOCK):
        block = value[start:start + _BLOCK]
        lead = ", " if start else ""
        if all(type(item) in _FLAT for item in block):
            yield _Raw(lead + json.dumps(list(block), allow_nan=False)[1:-1])
            continue
        for n, item in enumerate(block):
            if n or start:
                yield _Raw(", ")
            yield item
    yield _Raw("]")


def pieces(value: Any) -> Iterator[str]:
    """The JSON text of ``value`` in pieces, depth first without recursion (a deep value cannot overflow)."""
    stack: list[Iterator[Any]] = [iter((value,))]
    while stack:
        for item in stack[-1]:
            if isinstance(item, _Raw):
                yield item
            elif isinstance(item, str):
                yield from _string(item)
            elif isinstance(item, dict):
                yield "{"
                stack.append(_dict_items(item))
                break
            elif isinstance(item, list | tuple):
                yield "["
                stack.append(_list_items(item))
                break
            else:  # numbers, booleans, null; anything else is refused as json.dumps refuses it
                yield json.dumps(item, allow_nan=False)
        else:
            stack.pop()


def json_size(value: Any, *, stop_after: int | None = None) -> int:
    """Bytes of ``value``'s JSON text; counting stops past ``stop_after`` (a number above it is returned)."""
    size = 0
    for piece in pieces(value):
        size += len(piece)
        if stop_after is not None and size > stop_after:
            break
    return size


def fits_in_row(value: Any) -> bool:
    """Whether a run's record may keep ``value`` (JSON text of at most ``ROW_VALUE_BYTES``)."""
    try:
        return json_size(value, stop_after=ROW_VALUE_BYTES) <= ROW_VALUE_BYTES
    except (TypeError, ValueError):
        return False


def refuse(room: int, *, size: int | None = None, budget: int | None = None) -> ResultTooLarge:
    """The error of a result over the ``room`` left of a run's ``budget`` (the whole limit when not given):
    its size when known, else that it passed the room."""
    budget = room if budget is None else budget
    said = f"{size} bytes" if size is not None else f"over {room} bytes"
    left = "" if room == budget else f" (its other results took {budget - room})"
    return ResultTooLarge(f"the result is {said}, more than the {budget} bytes synchronous processing may return "
                          f"(sync_max_result_bytes){left}; nothing of it was kept: run it as a batch job")


def write_json(value: Any, path: Path, *, limit: int | None = None, budget: int | None = None) -> int:
    """Write ``value`` as JSON to ``path``; its size in bytes. Past ``limit`` bytes (the room left of
    ``budget``) the writing stops, the file is removed and ``ResultTooLarge`` is raised (so is any other
    failure: nothing half-written stays)."""
    written = 0
    try:
        with path.open("w", encoding="ascii") as handle:
            for piece in pieces(value):
                written += len(piece)
                if limit is not None and written > limit:
                    raise refuse(limit, budget=budget)
                handle.write(piece)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return written


def check_room(value: Any, *, room: int | None, budget: int | None = None) -> None:
    """``ResultTooLarge`` when ``value``'s JSON takes more than ``room`` bytes (measured until it passes)."""
    if room is not None and json_size(value, stop_after=room) > room:
        raise refuse(room, budget=budget)
