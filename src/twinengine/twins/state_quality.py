"""What a state read says of quality: which values a ``quality=`` filter keeps, and which properties are
stale as of the read's time.

A value's flag lives inside its JSON in the log (quality/stored.py: an envelope ``{"value", "uncertainty",
"quality": {"flag": ...}}``; a plain value is good). ``flag_of`` reads it in SQL, in the dialect at hand,
with exactly the envelope rule ``unpack`` applies, so a filtered read can skip flagged rows while it walks
an index of the log backwards, and stop at the first value that passes.

A property whose gap check allows a silence of ``every + tolerance`` is stale when the value a read shows
is older than that at the read's time: now for a current read, ``at`` for a read as of a time, and the
revision's ``recorded_at`` for a read as of a revision.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal_column, or_

from twinengine.catalog.manifest import Manifest
from twinengine.catalog.state_keys import base_of
from twinengine.quality.spec import FLAGS, Flag
from twinengine.twins.schemas import PropertyValue

__all__ = ["Keep", "flag_of", "keep_of", "keeps", "stale_limits", "with_staleness"]

# The flags a filtered read keeps; None: every value (no filter).
Keep = frozenset[Flag] | None


def keep_of(flags: Iterable[Flag | str] | None) -> Keep:
    """The flags to keep, or None when every flag is kept (the unfiltered read)."""
    if not flags:
        return None
    keep = frozenset(Flag(f) for f in flags)
    return None if keep == frozenset(FLAGS) else keep


def flag_of(column: Any, dialect: str) -> ColumnElement[Any]:
    """The flag of the stored value in ``column`` (a state log or head ``value``): the envelope's
    ``quality.flag``, else ``good``."""
    good = Flag.GOOD.value
    if dialect == "postgresql":
        envelope_keys = column.op("-")(literal_column("'value'")).op("-")(literal_column("'uncertainty'")).op("-")(
            literal_column("'quality'"))
        return case(
            (func.jsonb_typeof(column) != "object", good),
            (or_(column.op("->")(literal_column("'value'")).is_(None),
                 column.op("->")(literal_column("'uncertainty'")).is_(None)), good),
            (envelope_keys != literal_column("'{}'::jsonb"), good),
            else_=func.coalesce(column.op("#>>")(literal_column("'{quality,flag}'")), good))
    envelope = and_(func.json_type(column, "$.value").is_not(None),
                    func.json_type(column, "$.uncertainty").is_not(None),
                    func.json_remove(column, "$.value", "$.uncertainty", "$.quality") == "{}")
    return case((envelope, func.coalesce(func.json_extract(column, "$.quality.flag"), good)), else_=good)


def keeps(column: Any, dialect: str, keep: frozenset[Flag]) -> ColumnElement[bool]:
    """The stored value in ``column`` has one of the flags kept."""
    return flag_of(column, dialect).in_(sorted(f.value for f in keep))


def stale_limits(manifest: Manifest | None) -> dict[str, timedelta]:
    """Each property that declares a gap check, and the longest silence it allows."""
    if manifest is None:
        return {}
    return {name: prop.gap.limit for name, prop in manifest.state.items() if prop.gap is not None}


def with_staleness(reported: dict[str, PropertyValue], limits: dict[str, timedelta], as_of: datetime
                   ) -> tuple[dict[str, PropertyValue], list[str]]:
    """``reported`` with ``stale`` (and ``stale_since``) on each value of a property with a gap check (each
    key of a keyed one), and the names of the stale ones. A value timestamped after ``as_of`` is not stale."""
    out, stale = dict(reported), []
    for name, value in reported.items():
        limit = limits.get(base_of(name))
        if limit is None:
            continue
        since = value.timestamp + limit
        if as_of > since:
            stale.append(name)
            out[name] = value.model_copy(update={"stale": True, "stale_since": since})
        else:
            out[name] = value.model_copy(update={"stale": False})
    return out, sorted(stale)
