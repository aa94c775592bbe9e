"""Functions on several streams: each record of a function's own stream joined, on event time, with one
record of each stream it declares under ``join`` (its partners).

A partner is the record of a joined stream whose event time is nearest the record's, within the declared
``tolerance``. The joined record is the record's own fields, each partner under its stream's name (``None``
when there is none) and ``_missing``, the joined streams without a partner. A record waits for its absent
partners until ``wait`` has passed since it arrived (its ``_arrival``, kept in the log, so a restart waits
the same) or until every absent partner's stream has moved past it (its newest record is later than the
record's time plus the tolerance: streams are expected in time order, so the partner is lost, not late).
Then it is called with what arrived (``incomplete: call``) or left out (``skip``). Records are joined in
order: a record that waits holds back those after it, so a function still sees its records in order and
its checkpoint stays one offset of its own stream. Partners are read by event time, never checkpointed:
after a restart a record joins the same partners (and any that came after its wait ran out).

Keys. The function's own stream may have a ``key`` (a sensor network): each record, whatever its key, joins
the partner of an unkeyed stream (the reference station) nearest its time, so the reference record is
shared by every key at that time. A joined stream with a ``key`` (the manifest check allows it only when the
function's own stream has a key of the same type) joins per key: a record's partner there is the record of
the same key value nearest its time, and that stream has moved past a record only when the records read
with the batch (up to the batch's newest time plus the tolerance) hold a later record of the same key: keys
arrive independently, so the stream's newest record says nothing of one key; otherwise the record waits
out ``wait``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from twinengine.catalog.manifest import FunctionJoin, Manifest
from twinengine.streams.arrays import to_python
from twinengine.streams.hub import ARRIVAL, StreamHub, stream_key

__all__ = ["MISSING", "Joined", "Joiner"]

MISSING = "_missing"
PARTNER_LIMIT = 100_000  # records of one joined stream read for one batch of the function's own records
_NOT_FOUND, _LEFT_OUT = -1, -2


@dataclass
class Joined:
    """The joined records of the batch's ready prefix (one per record of the function's own stream)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # positions left out (partners missing, ``skip``)
    incomplete: int = 0  # records joined without some partner
    wait_until: float | None = None  # wall-clock seconds when the first record not ready stops waiting


@dataclass
class _Cursor:
    offset: int = 0  # the joined stream is read from here (every record of a later time is at or beyond it)
    since_us: int = -(1 << 62)  # the event time ``offset`` was found for


class Joiner:
    """Joins a function's records with their partners; keeps, per joined stream, where to start reading."""

    def __init__(self, manifest: Manifest, stream: str, join: FunctionJoin) -> None:
        self.join = join
        self.time_field = manifest.streams[stream].time_field
        self.time_fields = {name: manifest.streams[name].time_field for name in join.streams}
        self.tolerance_us = int(join.tolerance.total_seconds() * 1e6)
        self.wait_s = join.wait.total_seconds()
        self.cursors = {name: _Cursor() for name in join.streams}
        self.key = manifest.streams[stream].key  # the own stream's key field (None: unkeyed)
        self.partner_keys = {name: manifest.streams[name].key for name in join.streams}  # keyed: joined per key

    def keys(self, twin_id: str) -> list[str]:
        return [stream_key(twin_id, name) for name in self.join.streams]

    def offsets(self, twin_id: str) -> dict[str, int]:
        """Per joined stream's key, the offset below which this function needs nothing more (for lag)."""
        return {stream_key(twin_id, name): cursor.offset for name, cursor in self.cursors.items()}

    def __call__(self, hub: StreamHub, twin_id: str, table: pa.Table | None, records: list[dict[str, Any]], *,
                 now: float, exclude: Collection[str] = ()) -> Joined:
        """Join ``records`` (read from ``table``, in offset order) as far as they are ready at ``now``
        (wall-clock seconds; ``inf`` waits for nothing)."""
        out = Joined()
        if table is None or not records:
            return out
        times = _micros(table, self.time_field)
        arrivals = _micros(table, ARRIVAL) / 1e6
        ready = len(records)
        matches: dict[str, np.ndarray] = {}
        partners: dict[str, list[dict[str, Any] | None]] = {}
        latest: dict[str, int | None] = {}
        own_keys = [record.get(self.key) for record in records] if self.key is not None else []
        later: dict[str, np.ndarray] = {}  # keyed streams: per record, whether a later record of its key is there
        for name in self.join.streams:
            key = stream_key(twin_id, name)
            since, until = int(times.min()) - self.tolerance_us, int(times.max()) + self.tolerance_us + 1
            cursor = self.cursors[name]
            if since < cursor.since_us:  # an earlier time than before: read from the start again
                cursor.offset, cursor.since_us = 0, -(1 << 62)
            cursor.offset, cursor.since_us = hub.offset_at(key, since, cursor.offset), since
            # the newest time before the read: every record up to it is in the read, so a stream that seems to
            # have moved past a record really has (read after, a partner appended meanwhile looked lost)
            latest[name] = hub.latest_time(key)
            found = hub.read(key, start=cursor.offset, since_us=since, until_us=until,
                             time_field=self.time_fields[name], limit=PARTNER_LIMIT)
            partner_key = self.partner_keys[name]
            if found is None:
                matches[name], partners[name] = np.full(len(records), _NOT_FOUND), []
                later[name] = np.zeros(len(records), dtype=bool)
                continue
            stamps = _micros(found, self.time_fields[name])
            if found.num_rows >= PARTNER_LIMIT:  # more to read: join only the records its reach covers
                beyond = np.nonzero(times > stamps.max() - self.tolerance_us)[0]
                ready = min(ready, max(int(beyond[0]), 1)) if beyond.size else ready
            left_out = np.isin(np.asarray(found.column("_quality").to_pylist(), dtype=object), list(exclude))
            if partner_key is None:
                matches[name] = _nearest(times, stamps, self.tolerance_us, left_out)
            else:
                found_keys = found.column(partner_key).to_pylist()
                matches[name], later[name] = _nearest_by_key(times, own_keys, stamps, found_keys,
                                                             self.tolerance_us, left_out)
            used = np.unique(matches[name][matches[name] >= 0])
            rows = to_python(found.take(pa.array(used, type=pa.int64()))) if used.size else []
            partners[name] = [None] * found.num_rows
            for row, record in zip(used.tolist(), rows, strict=True):
                partners[name][row] = record
        for i in range(ready):
            record = records[i]
            if record.get("_quality") in exclude:  # left out anyway: it waits for nothing
                out.records.append(record)
                continue
            missing = [n for n in self.join.streams if matches[n][i] < 0]
            absent = [n for n in missing if matches[n][i] == _NOT_FOUND and not self._moved_past(n, i, times, latest,
                                                                                                 later)]
            if absent and now < arrivals[i] + self.wait_s:
                out.wait_until = float(arrivals[i] + self.wait_s)
                break
            joined = dict(record)
            for name in self.join.streams:
                joined[name] = partners[name][matches[name][i]] if matches[name][i] >= 0 else None
            joined[MISSING] = missing
            if missing:
                out.incomplete += 1
                if self.join.incomplete == "skip":
                    out.skipped.append(i)
            out.records.append(joined)
        return out


    def _moved_past(self, name: str, i: int, times: np.ndarray, latest: dict[str, int | None],
                    later: dict[str, np.ndarray]) -> bool:
        """Whether joined stream ``name`` holds a record later than record ``i``'s time plus the tolerance (of
        the same key, for a keyed stream): its partner there is lost, not late."""
        if self.partner_keys[name] is not None:
            return bool(later[name][i])
        newest = latest[name]
        return newest is not None and newest > times[i] + self.tolerance_us


def _nearest_by_key(times: np.ndarray, keys: list[Any], stamps: np.ndarray, found_keys: list[Any], tolerance: int,
                    left_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_nearest`` among the rows of the record's own key only; and per record, whether a row of its key is
    later than its time plus ``tolerance``."""
    out = np.full(times.size, _NOT_FOUND, dtype=np.int64)
    later = np.zeros(times.size, dtype=bool)
    rows_of: dict[Any, list[int]] = {}
    for row, key in enumerate(found_keys):
        rows_of.setdefault(key, []).append(row)
    wanted: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        wanted.setdefault(key, []).append(i)
    for key, positions in wanted.items():
        rows = rows_of.get(key)
        if key is None or not rows:
            continue
        at, among = np.asarray(positions, dtype=np.int64), np.asarray(rows, dtype=np.int64)
        found = _nearest(times[at], stamps[among], tolerance, left_out[among])
        out[at] = np.where(found >= 0, among[np.maximum(found, 0)], found)
        later[at] = times[at] + tolerance < int(stamps[among].max())
    return out, later


def _micros(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _nearest(times: np.ndarray, stamps: np.ndarray, tolerance: int, left_out: np.ndarray) -> np.ndarray:
    """Per time, the row of ``stamps`` nearest it within ``tolerance`` (the earlier row on a tie);
    ``_NOT_FOUND`` if none, ``_LEFT_OUT`` if the nearest is one the function's quality policy leaves out."""
    order = np.argsort(stamps, kind="stable")
    sorted_stamps = stamps[order]
    right = np.searchsorted(sorted_stamps, times, "left")
    out = np.full(times.size, _NOT_FOUND, dtype=np.int64)
    for i, t in enumerate(times.tolist()):
        best, gap = -1, tolerance + 1
        for j in (right[i] - 1, right[i]):
            if 0 <= j < sorted_stamps.size and abs(int(sorted_stamps[j]) - t) < gap:
                best, gap = j, abs(int(sorted_stamps[j]) - t)
        if best >= 0:
            row = int(order[best])
            out[i] = _LEFT_OUT if left_out[row] else row
    return out
