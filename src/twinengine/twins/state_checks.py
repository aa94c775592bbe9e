"""Quality checks on a twin's reported state: the checks a state property declares (``quality:`` under it in
``twinapp.yaml``: range, spike, flatline, gap) judge each value reported to it against the values before it.

A value that fails one is kept and says so (``quality: {flag, checks}`` beside what its inputs' pedigree
says), like a stream record: a stuck sensor reported straight to state is flagged, not refused and not taken
silently. The judgement runs in the write's transaction, before the revision is appended, over the
property's last few reported values (three, or a flatline's count, at most ``MAX_STATE_FLATLINE``) and the
new ones in revision order, with the same vectorised checks as streams (``quality.checks``): a batch of
revisions is judged as one series. A gap check reads only timestamps: the newest one before the write (one
index seek) and the new ones. Properties without checks cost nothing. On SQLite the seeks run straight on the
connection (``store.direct``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Integer, Select, bindparam, select
from sqlalchemy.orm import Session

from twinengine.quality import checks
from twinengine.quality.spec import FLAGS, FlatlineCheck, RangeCheck, SpikeCheck, StateCheck, StateGapCheck
from twinengine.quality.stored import unpack
from twinengine.store.base import LIMIT_ONE, utcnow
from twinengine.store.direct import Direct

if TYPE_CHECKING:
    from twinengine.catalog.manifest import Manifest
    from twinengine.twins.new_values import NewValue

__all__ = ["judge"]

_US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else np.nan


def _micros(moment: datetime) -> int:
    return int((moment - _EPOCH).total_seconds() * _US)


def _depth(declared: Sequence[StateCheck]) -> int:
    """Earlier values a property's checks need: three for a spike (its jump and return), a flatline's count,
    or every value up to the limit for a flatline by duration."""
    from twinengine.catalog.manifest import MAX_STATE_FLATLINE

    depth = 3
    for check in declared:
        if isinstance(check, FlatlineCheck):
            depth = max(depth, check.records or MAX_STATE_FLATLINE)
    return depth


@functools.cache
def _seeks() -> tuple[Select[Any], Select[Any]]:
    """The two reads a judgement makes of a property's reported values, built once (and run on the session's
    connection): building them and the ORM's execution layer cost more than SQLite's seek itself."""
    from twinengine.twins.models import StateValue
    from twinengine.twins.schemas import StateKind

    own = (StateValue.twin_id == bindparam("twin"), StateValue.property == bindparam("prop"),
           StateValue.kind == StateKind.REPORTED.value)
    earlier = (select(StateValue.value, StateValue.timestamp).where(*own).order_by(StateValue.revision.desc())
               .limit(bindparam("depth", type_=Integer)))
    newest = select(StateValue.timestamp).where(*own).order_by(StateValue.timestamp.desc()).limit(LIMIT_ONE)
    return earlier, newest


@functools.cache
def _direct_seeks() -> tuple[Direct, Direct]:
    earlier, newest = _seeks()
    return Direct(earlier), Direct(newest)


def _seek(session: Session, which: int, params: dict[str, Any]) -> list[Any]:
    """Rows of one of ``_seeks``: on SQLite straight on the connection (``store.direct``; a write judges its
    properties one seek each, in the store's one writer)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        return _direct_seeks()[which].rows(connection, params)
    return list(connection.execute(_seeks()[which], params))


def _earlier(session: Session, twin_id: str, prop: str, depth: int) -> tuple[list[float], list[int]]:
    """The property's last ``depth`` reported values (numbers; NaN for anything else) and their times, oldest
    first."""
    rows = _seek(session, 0, {"twin": twin_id, "prop": prop, "depth": depth})
    rows.reverse()
    return [_number(unpack(v).value) for v, _t in rows], [_micros(t) for _v, t in rows]


def _newest_time(session: Session, twin_id: str, prop: str) -> int | None:
    """The latest timestamp among the property's reported values (a backward seek on the log's time index)."""
    rows = _seek(session, 1, {"twin": twin_id, "prop": prop})
    return None if not rows or rows[0][0] is None else _micros(rows[0][0])


def _gaps(check: StateGapCheck, prop: str, latest: int | None, times: checks.Ints, now: int
          ) -> list[tuple[str, checks.Mask]]:
    """Values reported after a longer silence than the check allows (``gap:<prop>`` or the check's name), and
    those recorded more than ``max_delay`` after their timestamp (``late:<prop>``)."""
    state = checks.GapState() if latest is None else checks.GapState(latest)
    mask, _ = checks.gap(times, state, every_us=int(check.every.total_seconds() * _US),
                         tolerance_us=int(check.tolerance.total_seconds() * _US))
    out = [(check.name or f"gap:{prop}", mask)]
    if check.max_delay is not None:
        out.append((f"late:{prop}", checks.late(times, now, int(check.max_delay.total_seconds() * _US))))
    return out


def _failing(check: StateCheck, values: checks.Floats, times: checks.Ints) -> checks.Mask:
    if isinstance(check, StateGapCheck):
        raise TypeError("a gap check is judged by _gaps")
    if isinstance(check, RangeCheck):
        return checks.range_(values, check.min, check.max)
    if isinstance(check, SpikeCheck):
        per = None if check.per == "record" else check.per.total_seconds() * _US
        return checks.spike(values, times, checks.SpikeState(), check.max_change, per)[0]
    duration = None if check.duration is None else int(check.duration.total_seconds() * _US)
    return checks.flatline(values, times, checks.FlatState(), records=check.records, duration_us=duration,
                           tolerance=check.tolerance)[0]


def _with_flag(value: NewValue, failed: list[tuple[str, str]]) -> NewValue:
    """``value`` carrying the checks it failed, its flag the worst of theirs and of its inputs' pedigree."""
    quality = dict(value.quality or {})
    worst = max([FLAGS.index(f) for _n, f in failed] + ([FLAGS.index(quality["flag"])] if "flag" in quality else []))
    quality["flag"] = FLAGS[worst].value
    quality["checks"] = [name for name, _f in failed]
    return dataclasses.replace(value, quality=quality)


def judge(session: Session, twin_id: str, manifest: Manifest, revisions: Sequence[list[NewValue]]
          ) -> list[list[NewValue]]:
    """``revisions`` (in the order they will be appended) with each reported value of a checked property
    flagged by the checks it fails; the others unchanged."""
    from twinengine.catalog.state_keys import base_of
    from twinengine.twins.schemas import StateKind

    declared = {name: prop.quality for name, prop in manifest.state.items() if prop.quality}
    if not declared:  # nothing to judge: no look at each value (a batch of revisions has thousands)
        return list(revisions)
    # A keyed property's checks judge each key as a series of its own (``head[ow3]``: ``range:head[ow3]``).
    spots: dict[str, list[tuple[int, int]]] = {}
    for r, values in enumerate(revisions):
        for i, value in enumerate(values):
            if value.kind == StateKind.REPORTED and base_of(value.property) in declared:
                spots.setdefault(value.property, []).append((r, i))
    if not spots:
        return list(revisions)
    out = [list(values) for values in revisions]
    now = _micros(utcnow())
    for prop, places in spots.items():
        new = [revisions[r][i] for r, i in places]
        stamps = np.array([_micros(v.timestamp) for v in new], dtype=np.int64)
        failed: list[list[tuple[str, str]]] = [[] for _ in new]
        on_values = [c for c in declared[base_of(prop)] if not isinstance(c, StateGapCheck)]
        if on_values:
            before, times = _earlier(session, twin_id, prop, _depth(on_values))
            series = np.array(before + [_number(v.value) for v in new], dtype=np.float64)
            history = np.concatenate((np.array(times, dtype=np.int64), stamps))
            for check in on_values:
                mask = _failing(check, series, history)[len(before):]
                label = check.name or f"{check.check}:{prop}"
                for k in np.flatnonzero(mask):
                    failed[k].append((label, check.severity))
        for gap in (c for c in declared[base_of(prop)] if isinstance(c, StateGapCheck)):
            for label, mask in _gaps(gap, prop, _newest_time(session, twin_id, prop), stamps, now):
                for k in np.flatnonzero(mask):
                    failed[k].append((label, gap.severity))
        for (r, i), reasons in zip(places, failed, strict=True):
            if reasons:
                out[r][i] = _with_flag(out[r][i], reasons)
    return out
