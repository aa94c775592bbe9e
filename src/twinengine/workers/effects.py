"""The effects of function calls as a worker sends them back: one JSON document per batch, one row per call.

A row is ``[updates, events, workflows, published]``; an update is ``[values, timestamp, message]`` with the
timestamp as ISO text (or null), an event an object with a ``kind``, a workflow request
``{"workflow", "parameters"}``, a publish request ``{"stream", "records"}``. The worker encodes each call's
row as the call returns (``EffectsWriter``), so what the code changes afterwards is not sent. Datetimes, dates
and durations inside values are tagged as in ``protocol``; a batch says whether it holds any (``tagged``),
and only then is it read with the tag decoder.

The engine reads a batch with ``read_effects``: the whole document is parsed and checked in one pass
against the row schema, and each call gets its effects or the reason they are malformed. Nothing else is
built from what the worker sent (JSON values, and the three time types).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from twinengine.app._context import FunctionContext, StateUpdate
from twinengine.workers.protocol import ProtocolError, _plain, _tagged

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = ["CallEffects", "EffectsWriter", "Malformed", "read_effects"]


class Malformed(ValueError):
    """Raised (or handed back for one call) when a call's effects as its worker sent them are malformed."""


# -- the worker's side ------------------------------------------------------------------------------------

class EffectsWriter:
    """Encodes one call's effects at a time as a row of the batch's document (C encoder, reused)."""

    def __init__(self) -> None:
        self.rows: list[str] = []
        self.tagged = False  # some value was a datetime, date or duration (tagged)
        self._encode = _encoder(self._default)

    def _default(self, value: Any) -> Any:
        plain = _plain(value)
        if isinstance(plain, dict):
            self.tagged = True
        return plain

    def add(self, ctx: FunctionContext, events: int, requests: int, published: int) -> None:
        """The row of the call that just returned: ``ctx.updates``, and what it added to the other lists
        after the given lengths. Raises ``ProtocolError`` when a value cannot be sent."""
        updates = [[u.values, _stamp(u.timestamp), u.message] for u in ctx.updates]
        row = [updates, ctx.events[events:], ctx.workflow_requests[requests:], ctx.published[published:]]
        try:
            self.rows.append(self._encode(row))
        except (TypeError, ValueError, RecursionError) as exc:
            raise ProtocolError(f"a value cannot be sent back to the engine: {exc}") from None

    def document(self) -> bytes:
        return ("[" + ",".join(self.rows) + "]").encode()


def _stamp(value: Any) -> Any:
    """An update's timestamp: ISO text for a datetime (a numpy one too), None for none. Anything else goes
    as a list the engine refuses as a timestamp, as it always has; a type no value may have raises."""
    if type(value) is datetime:
        return value.isoformat()
    if value is None:
        return None
    if not isinstance(value, datetime | str | int | float | list | tuple | dict):
        value = _plain(value)
    return value.isoformat() if isinstance(value, datetime) else [f"not a datetime: {type(value).__name__}"]


def _encoder(default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """``json.dumps`` with ``default`` and compact separators, without building an encoder per call (which
    costs more than encoding a small row). A value that holds itself is refused by depth (RecursionError)
    rather than by a table of what is being encoded. ``_json.make_encoder`` is CPython's private C encoder:
    where it is missing or takes other arguments (another Python), the standard encoder."""
    standard = json.JSONEncoder(default=default, separators=(",", ":")).encode
    try:
        from _json import make_encoder
        from json.encoder import encode_basestring_ascii

        encode = make_encoder(None, default, encode_basestring_ascii, None, ":", ",", False, False, True)
        fast: Callable[[Any], str] = lambda value: "".join(encode(value, 0))  # noqa: E731
        if fast([{"a": 1.5}, None, "é"]) != standard([{"a": 1.5}, None, "é"]):
            return standard
    except (ImportError, TypeError):  # pragma: no cover - CPython 3.11 to 3.13 have it as used here
        return standard
    return fast


# -- the engine's side ------------------------------------------------------------------------------------

class CallEffects(NamedTuple):
    """One call's effects, checked: what ``take_effects`` lays into the engine's context."""

    updates: list[StateUpdate]
    events: list[dict[str, Any]]
    workflows: list[dict[str, Any]]
    published: list[dict[str, Any]]


_WHY: dict[Any, str] = {  # by the place in a row where the first problem is
    0: "update_state: malformed update", 1: "emit: an event needs a kind", 2: "start_workflow: malformed request",
    3: "publish: malformed request (a stream name and a list of records)"}


@functools.cache
def _rows() -> TypeAdapter[list[Any]]:
    """The schema of a batch: plain tuples, checked in one pass (built on first use: a worker never needs
    it). Timestamps and event kinds are checked after, in ``read_effects``."""
    from pydantic import TypeAdapter
    from typing_extensions import TypedDict  # pydantic reads typing's only from Python 3.12

    class Workflow(TypedDict):
        workflow: str
        parameters: dict[str, Any]

    class Publish(TypedDict):
        stream: str
        records: list[Any]

    update = tuple[dict[str, Any], str | None, str | None]
    return TypeAdapter(list[tuple[list[update], list[dict[str, Any]], list[Workflow], list[Publish]]])


def read_effects(document: bytes, calls: int, *, tagged: bool) -> list[CallEffects | Malformed]:
    """Each of ``calls`` calls' effects from a worker's document, or why they are malformed (the calls after a
    malformed one are left out); raises ``ProtocolError`` when the document is not a list of ``calls`` rows."""
    from pydantic import ValidationError

    adapter = _rows()
    bad: Malformed | None = None
    try:
        rows = adapter.validate_python(_parsed(document, tagged)) if tagged else adapter.validate_json(document)
    except ValidationError as exc:
        errors = exc.errors()
        first = min((e["loc"][0] for e in errors if e["loc"] and isinstance(e["loc"][0], int)), default=None)
        if first is None:
            raise ProtocolError(f"the worker's answer to function calls is malformed: {errors[0]['msg']}") from None
        parsed = _parsed(document, tagged)
        if len(parsed) != calls:
            raise ProtocolError("the worker's answer to function calls is malformed") from None
        inside = [e["loc"][1] for e in errors if e["loc"][0] == first and len(e["loc"]) > 2]  # in one of its lists
        bad = Malformed(_WHY.get(inside[0] if inside else None, "the worker's answer for a call is malformed "
                                 "(four lists: updates, events, workflows, published)"))
        rows = adapter.validate_python(parsed[:first])
    else:
        if len(rows) != calls:
            raise ProtocolError("the worker's answer to function calls is malformed")
    out: list[CallEffects | Malformed] = []
    iso = datetime.fromisoformat
    for updates, events, workflows, published in rows:
        try:
            changes = [StateUpdate(v, None if t is None else iso(t), m) for v, t, m in updates]
        except ValueError:
            return [*out, Malformed(_WHY[0])]
        if events and not all(isinstance(e.get("kind"), str) for e in events):
            return [*out, Malformed(_WHY[1])]
        out.append(CallEffects(changes, events, workflows, published))
    return out if bad is None else [*out, bad]


def _parsed(document: bytes, tagged: bool) -> list[Any]:
    try:
        value = json.loads(document, object_hook=_tagged) if tagged else json.loads(document)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"a worker's answer is not JSON: {exc}") from None
    if not isinstance(value, list):
        raise ProtocolError("the worker's answer to function calls is malformed")
    return value
