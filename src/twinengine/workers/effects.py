"""The effects of function calls as a worker sends them back: MessagePack, one row per call, sent in parts.

A row is ``[updates, events, workflows, published]``; an update is ``[values, timestamp, message, place]``, an event
a map with a ``kind``, a workflow request ``{"workflow", "parameters"}``, a publish request ``{"stream",
"records"}``. The worker packs each call's row as the call returns (``EffectsWriter``), so what the code
changes afterwards is not sent, and hands the rows over every few dozen calls (``take``): the engine reads
and checks a part while the worker runs the next calls, so on two cores the engine's side costs a batch
little more than its last part.

Why MessagePack and not JSON: packing a row is a few times cheaper (numbers and times go as binary, not
text), and packing is on the worker's side of every call. Times are MessagePack timestamps (the same instant,
in UTC); an update's timestamp with another offset, and naive ones, go as ISO text so that its offset comes
back exactly. Dates, durations, naive datetimes and integers beyond 64 bits inside values are tagged as in
``protocol``; a part says whether it holds any (``tagged``), and only then is it read with the tag decoder.

The engine reads a part with ``read_effects``: parsed, then checked in one pass against the row schema, where
a value may be only what JSON and the three time types can say (no bytes, no extension types); each call gets
its effects or the reason they are malformed. Map keys that are numbers, booleans or null become text, as
JSON would make them. Nothing else is built from what the worker sent.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import msgpack

from twinengine.app._context import FunctionContext, StateUpdate
from twinengine.workers.protocol import TAG, ProtocolError, _encode_time, _plain, _tagged

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = ["CallEffects", "EffectsWriter", "Malformed", "read_effects"]

_ARRAY = msgpack.Packer().pack_array_header


class Malformed(ValueError):
    """Raised (or handed back for one call) when a call's effects as its worker sent them are malformed."""


# -- the worker's side ------------------------------------------------------------------------------------

class EffectsWriter:
    """Packs one call's effects at a time as a row (a reused C packer); ``take`` hands over the rows so far."""

    def __init__(self) -> None:
        self.rows: list[bytes] = []
        self.tagged = False  # some value was tagged (a date, duration, naive datetime or a very large integer)
        self._pack: Callable[[Any], bytes] = msgpack.Packer(default=self._default, datetime=True).pack

    def _default(self, value: Any) -> Any:
        """What the packer cannot pack itself, as a value it can (called once per such value)."""
        if isinstance(value, int):  # beyond 64 bits (bool never gets here)
            self.tagged = True
            return {TAG: "int", "v": str(value)}
        plain = _plain(value)  # dates and durations tagged; numpy scalars and arrays as Python values
        if isinstance(plain, date | timedelta):  # a numpy time as a Python one
            plain = _encode_time(plain)
        if isinstance(plain, dict):
            self.tagged = True
        return plain

    def add(self, ctx: FunctionContext, events: int, requests: int, published: int) -> None:
        """The row of the call that just returned: ``ctx.updates``, and what it added to the other lists
        after the given lengths. Raises ``ProtocolError`` when a value cannot be sent."""
        updates = [[u.values, _stamp(u.timestamp), u.message, u.place] for u in ctx.updates]
        row = [updates, ctx.events[events:], ctx.workflow_requests[requests:], ctx.published[published:]]
        try:
            self.rows.append(self._pack(row))
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise ProtocolError(f"a value cannot be sent back to the engine: {exc}") from None

    def take(self) -> tuple[bytes, int, bool]:
        """The rows so far as one document, how many, and whether any value in them is tagged; the writer
        then starts afresh."""
        document = self.document()
        taken = (document, len(self.rows), self.tagged)
        self.rows, self.tagged = [], False
        return taken

    def document(self) -> bytes:
        return bytes(_ARRAY(len(self.rows))) + b"".join(self.rows)


def _stamp(value: Any) -> Any:
    """An update's timestamp: a UTC datetime as it is (packed as a timestamp), another datetime (a numpy one
    too) as ISO text, which keeps its offset, None for none. Anything else goes as a list the engine refuses
    as a timestamp, as it always has; a type no value may have raises."""
    if value is None or (type(value) is datetime and value.tzinfo is UTC):
        return value
    if type(value) is datetime:
        return value.isoformat()
    if not isinstance(value, datetime | str | int | float | list | tuple | dict):
        value = _plain(value)
    return value.isoformat() if isinstance(value, datetime) else [f"not a datetime: {type(value).__name__}"]


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
    """The schema of a part, checked in one pass (built on first use: a worker never needs it). A value is
    what JSON can say, or a time: exact types only (bytes are not text, nor a number a string). Timestamps
    given as text and event kinds are checked after, in ``read_effects``."""
    from typing import Annotated, Union

    from pydantic import Strict, StrictBool, StrictFloat, StrictInt, StrictStr, TypeAdapter
    from typing_extensions import TypeAliasType, TypedDict  # pydantic reads typing's only from Python 3.12

    exact, name = Strict(), "value"  # a type recursive by its name
    recursive, array, mapping = cast(Any, TypeAliasType), cast(Any, list), cast(Any, dict)
    value: Any = recursive(name, Union[StrictBool, StrictInt, StrictFloat, StrictStr,  # noqa: UP007
                                       Annotated[datetime, exact], Annotated[date, exact],
                                       Annotated[timedelta, exact], array[name], mapping[StrictStr, name], None])
    values: Any = dict[StrictStr, value]

    class Workflow(TypedDict):
        workflow: StrictStr
        parameters: values

    class Publish(TypedDict):
        stream: StrictStr
        records: list[value]

    stamp: Any = Union[Annotated[datetime, exact], StrictStr, None]  # noqa: UP007
    update: Any = tuple[values, stamp, Union[StrictStr, None], Union[StrictStr, None]]  # noqa: UP007
    return TypeAdapter(list[tuple[list[update], list[values], list[Workflow], list[Publish]]])


def read_effects(document: bytes, calls: int, *, tagged: bool,
                 max_bytes: int | None = None) -> list[CallEffects | Malformed]:
    """Each of ``calls`` calls' effects from a part a worker sent, or why they are malformed (the calls after a
    malformed one are left out); raises ``ProtocolError`` when the part is not a list of ``calls`` rows.
    ``max_bytes``: the most one effect (an update, event, workflow request or published record) may take, packed;
    a call with a larger one is malformed, so it never reaches the store whole."""
    parsed, unreadable = _parsed(document, calls, tagged, max_bytes)
    out = _checked(parsed)
    if unreadable is not None and (not out or isinstance(out[-1], CallEffects)):
        out.append(unreadable)
    return out


def _parsed(document: bytes, calls: int, tagged: bool,
            max_bytes: int | None = None) -> tuple[list[Any], Malformed | None]:
    """The rows of a part, read one at a time: a row whose map has a key no map may have (a list) or with an
    effect over ``max_bytes`` makes its call malformed and ends the part; a part that is not ``calls`` rows of
    MessagePack is refused whole."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, timestamp=3, ext_hook=_no_extension,
                                object_hook=_tagged if tagged else None, max_buffer_size=max(len(document), 1))
    unpacker.feed(document)
    rows: list[Any] = []
    try:
        if unpacker.read_array_header() != calls:
            raise ProtocolError("the worker's answer to function calls is malformed: not the calls it claims")
        for _ in range(calls):
            start = unpacker.tell()
            try:
                rows.append(unpacker.unpack())
            except TypeError as exc:  # a map key that cannot be one (the code used a tuple)
                return rows, Malformed(f"a value cannot be sent back to the engine: {exc}")
            if max_bytes is not None and unpacker.tell() - start > max_bytes:  # only then is each effect sized
                too_large = _oversized(rows[-1], max_bytes, unpacker.tell() - start)
                if too_large is not None:
                    return rows[:-1], too_large
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError, msgpack.UnpackException) as exc:
        raise ProtocolError(f"the worker's answer to function calls is malformed: {exc or type(exc).__name__}") \
            from None
    if unpacker.tell() != len(document):
        raise ProtocolError("the worker's answer to function calls is malformed: more than its calls")
    return rows, None


_EFFECTS = ("update_state: an update", "emit: an event", "start_workflow: a request", "publish: a record")


def _oversized(row: Any, max_bytes: int, row_bytes: int) -> Malformed | None:
    """Why a call's row (``row_bytes`` long) has an effect over ``max_bytes`` packed (each published record
    counts as one), or None; a row of another shape is left for the schema to refuse."""
    if not isinstance(row, list) or len(row) != 4 or not all(isinstance(part, list) for part in row):
        return None
    for place, effects in enumerate(row):
        if place == 3:  # publish requests: {"stream", "records"}; each record is an effect of its own
            effects = [r for request in effects if isinstance(request, dict)
                       and isinstance(request.get("records"), list) for r in request["records"]]
        for effect in effects:
            try:
                size = len(msgpack.packb(effect, default=repr, datetime=False))
            except (ValueError, TypeError, OverflowError):  # nested deeper than the packer goes: sized as the row
                size = row_bytes
            if size > max_bytes:
                return Malformed(f"{_EFFECTS[place]} of {size:,} bytes is larger than the limit of {max_bytes:,} "
                                 "bytes per effect (function_effect_max_bytes)")
    return None


def _no_extension(code: int, _data: bytes) -> Any:
    raise ProtocolError(f"a MessagePack extension type {code} in a worker's answer")


def _checked(parsed: list[Any], keyed: bool = False) -> list[CallEffects | Malformed]:
    """Rows checked in one pass; on a problem, the rows before it stand and its call is malformed (after
    its map keys were made text, as JSON makes them, once)."""
    from pydantic import ValidationError

    adapter = _rows()
    try:
        return _effects(adapter.validate_python(parsed))
    except ValidationError as exc:
        errors = exc.errors()
    first = min((e["loc"][0] for e in errors if e["loc"] and isinstance(e["loc"][0], int)), default=None)
    if first is None:
        raise ProtocolError(f"the worker's answer to function calls is malformed: {errors[0]['msg']}")
    done = _effects(adapter.validate_python(parsed[:first]))
    if done and isinstance(done[-1], Malformed):
        return done
    if not keyed:
        try:
            rest, changed = _text_keys(parsed[first:])
        except RecursionError:  # deeper than any honest value: left as it is, for the schema to refuse
            changed = False
        if changed:
            return [*done, *_checked(rest, keyed=True)]
    inside = [e["loc"][1] for e in errors if e["loc"][0] == first and len(e["loc"]) > 2]  # in one of its lists
    return [*done, Malformed(_WHY.get(inside[0] if inside else None, "the worker's answer for a call is malformed "
                                      "(four lists: updates, events, workflows, published)"))]


def _effects(rows: list[Any]) -> list[CallEffects | Malformed]:
    """Checked rows as calls' effects; a timestamp given as text that is not one ends them."""
    out: list[CallEffects | Malformed] = []
    iso = datetime.fromisoformat
    for updates, events, workflows, published in rows:
        try:
            changes = [StateUpdate(v, iso(t) if type(t) is str else t, m, p) for v, t, m, p in updates]
        except ValueError:
            return [*out, Malformed(_WHY[0])]
        if events and not all(isinstance(e.get("kind"), str) for e in events):
            return [*out, Malformed(_WHY[1])]
        out.append(CallEffects(changes, events, workflows, published))
    return out


_JSON_KEYS: dict[Any, str] = {True: "true", False: "false", None: "null"}


def _text_keys(tree: Any) -> tuple[Any, bool]:
    """``tree`` with map keys that are numbers, booleans or null as the text JSON writes for them, and
    whether any was; other keys (bytes) are left for the schema to refuse."""
    if isinstance(tree, list):
        items = [_text_keys(v) for v in tree]
        return [v for v, _ in items], any(c for _, c in items)
    if isinstance(tree, dict):
        out, changed = {}, False
        for key, value in tree.items():
            value, inner = _text_keys(value)
            if type(key) is not str and (key is None or isinstance(key, bool | int | float)):
                key = _JSON_KEYS[key] if key is None or isinstance(key, bool) else \
                    (repr(key) if isinstance(key, int) or math.isfinite(key) else
                     {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(key)])
                inner = True
            out[key] = value
            changed = changed or inner
        return out, changed
    return tree, False
