"""The stream hub: validated batches in, durable offsets out; reads by offset and event time; lag.

One hub per runtime sits on one log backend. Per stream it keeps, in memory, the next record offset, the
last sequence number seen per producer (to drop duplicates) and a small index of batches (first offset,
event-time range), rebuilt from the log's headers when a stream is first touched after a start.

On a log several engine processes share, that picture can fall behind the log: another process appended.
The log says so (``StreamLog.watch``) and the hub reads the new entries' headers before it next answers
for that stream; and each entry is appended on the condition that the log's newest entry is the one the
hub knows (``StreamLog.append_after``), so a record is never numbered from an old picture. When the
condition fails, the hub reads what the other process appended and numbers the rest of the batch again.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Collection
from concurrent.futures import Future
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from twinengine.errors import StreamBackpressure, StreamUnavailable
from twinengine.quality.plan import CHECKS, QUALITY, CarriedState, QualityPlan, flag_names
from twinengine.streams import batch
from twinengine.streams.backends.base import AppendConflict, StreamLog
from twinengine.streams.notify import Notifier
from twinengine.streams.records import time_range

__all__ = ["AppendResult", "QualityCounters", "StreamHub", "stream_key"]

OFFSET = "_offset"
ARRIVAL = "_arrival"
_READ_CHUNK = 256
_HEADER_PEEK = 512
_MAX_PENDING_BYTES = 512 << 20
_MAX_CONFLICTS = 50  # a batch outrun this often by other processes' appends to its stream is refused (503)


def stream_key(twin_id: str, stream: str) -> str:
    return f"{twin_id}/{stream}"


@dataclass(frozen=True)
class AppendResult:
    first_offset: int  # offset of the first record appended (or the next offset when all were duplicates)
    count: int  # records appended
    duplicates: int  # records dropped as already seen from this producer
    next_offset: int


_MAX_OUT_OF_ORDER = 100_000


@dataclass
class _Seen:
    """Sequence numbers of one producer already appended: all up to ``upto``, plus some beyond it (arrivals
    out of order, e.g. MQTT redeliveries after a reconnect). A gap never filled is given up on once more
    than ``_MAX_OUT_OF_ORDER`` numbers wait beyond it."""

    upto: int = -1
    above: set[int] = field(default_factory=set)

    def has(self, seq: int) -> bool:
        return seq <= self.upto or seq in self.above

    def add(self, start: int, count: int) -> None:
        if start <= self.upto + 1:
            self.upto = max(self.upto, start + count - 1)
        else:
            self.above.update(range(start, start + count))
        while self.above and (self.upto + 1 in self.above or len(self.above) > _MAX_OUT_OF_ORDER):
            if self.upto + 1 not in self.above:
                self.upto = min(self.above) - 1
            self.above.discard(self.upto + 1)
            self.upto += 1

    def runs(self, start: int, count: int) -> list[tuple[int, int]]:
        """(row, length) runs of a batch numbered ``start..`` that were not seen yet."""
        if start > self.upto and not self.above:
            return [(0, count)]
        out: list[tuple[int, int]] = []
        for row in range(count):
            if self.has(start + row):
                continue
            if out and out[-1][0] + out[-1][1] == row:
                out[-1] = (out[-1][0], out[-1][1] + 1)
            else:
                out.append((row, 1))
        return out


@dataclass
class QualityCounters:
    """Per stream since the engine started (for /metrics): records per flag, failures per check, and how
    late the newest batch arrived (arrival minus its newest event time)."""

    flags: list[int] = field(default_factory=lambda: [0, 0, 0])
    checks: dict[str, int] = field(default_factory=dict)
    lateness_s: float = 0.0


@dataclass
class _State:
    next: int = 0
    durable: int = 0  # records below this offset are durable and readable
    producers: dict[str, _Seen] = field(default_factory=dict)
    bases: list[int] = field(default_factory=list)  # per entry (entry n is bases[n - 1])
    counts: list[int] = field(default_factory=list)
    tmins: list[int] = field(default_factory=list)
    tmaxs: list[int] = field(default_factory=list)
    latest_us: int = -(1 << 62)  # the newest event time of a durable batch
    lock: threading.Lock = field(default_factory=threading.Lock)
    quality: CarriedState | None = None  # what the quality checks remember (rebuilt from the tail on start)
    quality_sig: str = ""
    behind: bool = False  # another process appended (a shared log): read the new headers before answering

    def add(self, header: batch.BatchHeader) -> None:
        self.bases.append(header.base)
        self.counts.append(header.count)
        self.tmins.append(header.tmin_us)
        self.tmaxs.append(header.tmax_us)
        self.next = header.end
        if header.producer is not None and header.seq is not None:
            self.producers.setdefault(header.producer, _Seen()).add(header.seq, header.count)


class StreamHub:
    """Appends and reads over a ``StreamLog``; wakes live readers through ``notifier``."""

    def __init__(self, log: StreamLog, *, max_lag: int = 1_000_000, notifier: Notifier | None = None) -> None:
        self.log = log
        self.max_lag = max_lag
        self.notifier = notifier or Notifier()
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()
        self._consumers: dict[str, dict[str, int]] = {}  # key -> consumer -> committed offset
        self.stats = {"records": 0, "duplicates": 0}
        self._appends = 0  # durable appends so far; ``_appended`` holds each stream's latest
        self._appended: dict[str, int] = {}
        self.quality: dict[str, QualityCounters] = {}
        if log.shared:
            log.watch(self._appended_elsewhere)

    # -- state ------------------------------------------------------------------------------------

    def _state(self, key: str) -> _State:
        """The stream's state as known; a new one is read from the log's headers on first use (``_fresh``).
        The hub's own lock is never held across a read of the log: the log's thread may need it."""
        with self._lock:
            state = self._states.get(key)
            if state is None:
                state = self._states[key] = _State(behind=True)
            return state

    def _fresh(self, key: str) -> _State:
        """The stream's state, read from the log on first use, and caught up with what other processes
        appended (shared logs)."""
        state = self._state(key)
        if state.behind:
            with state.lock:
                if state.behind:
                    self._catch_up(key, state)
        return state

    def _catch_up(self, key: str, state: _State) -> None:
        """Read the headers of the entries after those ``state`` knows (``state.lock`` held)."""
        state.behind = False  # first: an append announced while this reads makes the next access look again
        known = len(state.bases)
        try:
            last, number = self.log.last(key), known + 1
            while number <= last:
                entries = self.log.read_prefix(key, number, _READ_CHUNK, _HEADER_PEEK)
                if not entries:
                    break
                for seq, payload in entries:
                    if seq != len(state.bases) + 1:
                        raise StreamUnavailable(f"stream {key}: entry {seq} follows {len(state.bases)} in the log")
                    if not batch.header_complete(payload):  # a header longer than the peek: read the entry
                        payload = self.log.read(key, seq, 1)[0][1]
                    state.add(batch.decode_header(payload))
                number = entries[-1][0] + 1
        except BaseException:
            state.behind = True  # read on from here next time
            raise
        state.durable = state.next
        state.latest_us = max([state.latest_us, *state.tmaxs[known:]])
        if known and len(state.bases) > known:
            state.quality_sig = ""  # the checks did not see the others' records: warmed again from the log

    def _appended_elsewhere(self, key: str | None) -> None:
        """Another process appended to ``key`` (None: to any stream, maybe): catch up on next access, and
        wake what waits for records as a local append would (the log's thread calls this)."""
        with self._lock:
            keys = list(self._states) if key is None else [key]
            for name in keys:
                state = self._states.get(name)
                if state is not None:
                    state.behind = True
                self._appends += 1
                self._appended[name] = self._appends
        for name in keys:
            self.notifier.notify(name)

    def appended_since(self, seen: int) -> tuple[set[str], int]:
        """Streams appended to after the append numbered ``seen`` (0: since start), and the number now: what a
        consumer loop looks at, instead of every stream it follows."""
        with self._lock:
            if seen >= self._appends:
                return set(), self._appends
            return {k for k, n in self._appended.items() if n > seen}, self._appends

    def keys(self) -> set[str]:
        """Streams this hub has touched since it started."""
        with self._lock:
            return set(self._states)

    def forget(self, key: str) -> None:
        """Drop in-memory state (after a failed append, or when the stream is deleted)."""
        with self._lock:
            self._states.pop(key, None)

    # -- writing ----------------------------------------------------------------------------------

    def check_lag(self, key: str) -> None:
        lag = self.lag(key)
        if lag > self.max_lag:
            raise StreamBackpressure(f"consumers of {key} are {lag} records behind (limit {self.max_lag}); "
                                     "nothing was written, retry later", retry_after=1.0)
        pending = getattr(self.log, "pending_bytes", 0)
        if pending > _MAX_PENDING_BYTES:
            raise StreamUnavailable(f"the stream log has {pending >> 20} MiB waiting for disk; retry later",
                                    retry_after=1.0)

    def append(self, key: str, table: pa.Table, *, time_field: str, producer: str | None = None,
               seq: int | None = None, quality: QualityPlan | None = None) -> AppendResult:
        """Append a validated table; returns once every record is durable. Producer sequences drop repeats.
        With a quality plan every appended record is flagged (columns ``_quality``, ``_checks``), in offset
        order, so the checks' carried state follows the log."""
        self.check_lag(key)
        state = self._fresh(key)
        futures: list[tuple[Future[int], int, int]] = []
        tmaxs: list[int] = []  # of the entries appended
        duplicates = 0
        counted = QualityCounters()
        warm = self._warm(key, quality) if quality is not None and state.quality_sig != quality.signature else None
        with state.lock:
            if state.behind:
                self._catch_up(key, state)
            if quality is not None and state.quality_sig != quality.signature:
                state.quality, state.quality_sig = warm or CarriedState(), quality.signature
            runs: list[tuple[pa.Table, int | None]] = [(table, seq)]
            if producer is not None and seq is not None:
                seen = state.producers.get(producer) or _Seen()
                runs = [(table.slice(row, n), seq + row) for row, n in seen.runs(seq, table.num_rows)]
                duplicates = table.num_rows - sum(t.num_rows for t, _ in runs)
            first = state.next
            arrival = time.time_ns() // 1000
            chunks: list[tuple[pa.Table, int | None]] = []
            for part, part_seq in runs:
                if quality is not None and state.quality is not None:
                    part = _flag(part, quality, state.quality, arrival, counted)
                chunks += self._chunks(part, part_seq)
            producer = producer if seq is not None else None
            if self.log.shared:
                appended, dropped, tmaxs = self._append_checked(key, state, chunks, time_field, producer, arrival)
                first = state.next if appended is None else appended
                duplicates += dropped
            else:  # one writer: entries queued at once, made durable together (group commit)
                for chunk, chunk_seq in chunks:
                    tmin, tmax = time_range(chunk, time_field)
                    header = batch.BatchHeader(base=state.next, count=chunk.num_rows, arrival_us=arrival,
                                               tmin_us=tmin, tmax_us=tmax, producer=producer, seq=chunk_seq)
                    try:
                        futures.append((self.log.append(key, batch.encode(header, chunk)), header.end, tmax))
                    except Exception as exc:
                        self.forget(key)
                        raise StreamUnavailable(f"the stream log refused the write: {exc}") from exc
                    state.add(header)
                    tmaxs.append(tmax)
        for future, end, tmax in futures:
            try:
                future.result(timeout=60)
            except Exception as exc:
                self.forget(key)  # re-read from the log: what it has is the truth
                raise StreamUnavailable(f"the stream log could not make the batch durable: {exc}") from exc
            with state.lock:
                state.durable = max(state.durable, end)
                state.latest_us = max(state.latest_us, tmax)
        with self._lock:
            if tmaxs:
                self._appends += 1
                self._appended[key] = self._appends
            self.stats["records"] += table.num_rows - duplicates
            self.stats["duplicates"] += duplicates
            if quality is not None and tmaxs:
                total = self.quality.setdefault(key, QualityCounters())
                total.flags = [a + b for a, b in zip(total.flags, counted.flags, strict=True)]
                for name, n in counted.checks.items():
                    total.checks[name] = total.checks.get(name, 0) + n
                total.lateness_s = max((arrival - max(tmaxs)) / 1e6, 0.0)
        if tmaxs:
            self.notifier.notify(key)
        return AppendResult(first_offset=first, count=table.num_rows - duplicates, duplicates=duplicates,
                            next_offset=state.next)

    def _append_checked(self, key: str, state: _State, chunks: list[tuple[pa.Table, int | None]], time_field: str,
                        producer: str | None, arrival: int) -> tuple[int | None, int, list[int]]:
        """A shared log's append (``state.lock`` held): one entry at a time, each on the condition that the
        log's newest entry is the newest this hub knows. When another process appended first, its entries
        are read and the rest is numbered again (rows of a producer's retry that the other process already
        appended are dropped then). Returns the first offset appended (None: none), the rows dropped so, and
        the event-time maximum of each entry appended."""
        first: int | None = None
        dropped = conflicts = 0
        tmaxs: list[int] = []
        queue = list(chunks)
        while queue:
            chunk, chunk_seq = queue[0]
            tmin, tmax = time_range(chunk, time_field)
            header = batch.BatchHeader(base=state.next, count=chunk.num_rows, arrival_us=arrival, tmin_us=tmin,
                                       tmax_us=tmax, producer=producer, seq=chunk_seq)
            try:
                self.log.append_after(key, batch.encode(header, chunk), len(state.bases)).result(timeout=60)
            except AppendConflict:
                conflicts += 1
                if conflicts > _MAX_CONFLICTS:
                    raise StreamUnavailable(f"other engine processes kept appending to {key} first; retry later",
                                            retry_after=1.0) from None
                self._catch_up(key, state)
                if producer is not None:
                    before = sum(c.num_rows for c, _ in queue)
                    queue = _unseen(queue, state.producers.get(producer))
                    dropped += before - sum(c.num_rows for c, _ in queue)
                continue
            except Exception as exc:
                self.forget(key)  # re-read from the log: what it has is the truth
                raise StreamUnavailable(f"the stream log could not make the batch durable: {exc}") from exc
            state.add(header)
            state.durable = state.next
            state.latest_us = max(state.latest_us, tmax)
            first = header.base if first is None else first
            tmaxs.append(tmax)
            queue.pop(0)
        return first, dropped, tmaxs

    def _warm(self, key: str, plan: QualityPlan) -> CarriedState:
        """The checks' carried state rebuilt by replaying the tail of the log (after a start, or when the
        declared checks changed): enough records for the longest memory a check has."""
        state = CarriedState()
        end = self.end(key)
        wanted = plan.history * (16 if plan.key else 1)
        if wanted and end:
            tail = self.read(key, start=max(end - min(wanted, 100_000), 0), limit=wanted)
            if tail is not None:
                plan.apply(tail, arrival_us=0, state=state)
        return state

    def _chunks(self, table: pa.Table, seq: int | None) -> list[tuple[pa.Table, int | None]]:
        if table.num_rows == 0:
            return []
        per_row = max(table.nbytes // table.num_rows, 1)
        rows = max(int(self.log.max_entry_bytes * 0.8) // per_row, 1)
        out = []
        for start in range(0, table.num_rows, rows):
            out.append((table.slice(start, rows), None if seq is None else seq + start))
        return out

    # -- reading ----------------------------------------------------------------------------------

    def end(self, key: str) -> int:
        """Offset the next record will get; every record below it is durable."""
        state = self._fresh(key)
        with state.lock:
            return state.durable

    def producer_last(self, key: str, producer: str) -> int | None:
        """The highest sequence number of ``producer`` appended to ``key``, None before its first: where a
        producer that lost count resumes (the next record is this + 1)."""
        state = self._fresh(key)
        with state.lock:
            seen = state.producers.get(producer)
            if seen is None:
                return None
            top = max(seen.upto, max(seen.above, default=-1))
            return top if top >= 0 else None

    def latest_time(self, key: str) -> int | None:
        """The newest event time (µs) of the stream's durable records; None before its first."""
        state = self._fresh(key)
        with state.lock:
            return state.latest_us if state.bases else None

    def offset_at(self, key: str, since_us: int, start: int = 0) -> int:
        """Where a reader of event times ≥ ``since_us`` begins, from offset ``start`` on: the first offset of
        the first batch that may hold such a record (batches are kept whole, so it may hold earlier ones)."""
        state = self._fresh(key)
        with state.lock:
            index = max(bisect.bisect_right(state.bases, start) - 1, 0)
            while index < len(state.bases) and state.tmaxs[index] < since_us and state.bases[index] < state.durable:
                index += 1
            found = state.bases[index] if index < len(state.bases) else state.durable
            return min(max(found, start), state.durable)

    def read(self, key: str, *, start: int = 0, since_us: int | None = None, until_us: int | None = None,
             limit: int = 1000, stop: int | None = None, time_field: str | None = None,
             quality: Collection[str] | None = None, max_bytes: int | None = None,
             min_rows: int = 1) -> pa.Table | None:
        """Records with offset ≥ ``start`` (and < ``stop``) whose event time is in [since, until) and whose
        flag is one of ``quality`` (any when None), in offset order, with ``_offset``, ``_arrival``,
        ``_quality`` and ``_checks`` columns; None when there are none. With ``max_bytes`` the records stop
        once they hold about that many bytes, but never before ``min_rows`` (records with array fields are
        large: ``limit`` alone could ask for gigabytes)."""
        state = self._fresh(key)
        with state.lock:
            end = state.durable if stop is None else min(stop, state.durable)
            index = max(bisect.bisect_right(state.bases, start) - 1, 0)
            wanted = [i for i in range(index, len(state.bases)) if state.bases[i] < end
                      and (since_us is None or state.tmaxs[i] >= since_us)
                      and (until_us is None or state.tmins[i] < until_us)]
        tables: list[pa.Table] = []
        rows = size = 0
        pos = 0
        while pos < len(wanted) and rows < limit:
            run = 1  # read contiguous entries in one call
            while pos + run < len(wanted) and wanted[pos + run] == wanted[pos] + run and run < _READ_CHUNK:
                run += 1
            for _seq, payload in self.log.read(key, wanted[pos] + 1, run):
                header, table = batch.decode(payload)
                table = _annotate(header, table)
                mask = _mask(table, start, end, since_us, until_us, time_field, quality)
                if mask is not None:
                    table = table.filter(mask)
                take = min(table.num_rows, limit - rows)
                if take and max_bytes is not None:
                    per_row = max(table.nbytes // table.num_rows, 1)
                    allowed = max((max_bytes - size) // per_row, min_rows - rows, 0 if rows else 1)
                    if allowed < take:
                        take, limit = allowed, rows + allowed  # the budget is spent: this is the last part
                    size += take * per_row
                if take:
                    tables.append(table.slice(0, take))
                    rows += take
                if rows >= limit:
                    break
            pos += run
        if not tables:
            return None
        # records from before a field declared uncertainty have no _uncertainty column: null there
        return pa.concat_tables(tables, promote_options="default")

    # -- consumers and lag -----------------------------------------------------------------------

    def commit(self, key: str, consumer: str, offset: int) -> None:
        with self._lock:
            self._consumers.setdefault(key, {})[consumer] = offset

    def release(self, key: str, consumer: str) -> None:
        with self._lock:
            self._consumers.get(key, {}).pop(consumer, None)

    def consumed_keys(self) -> list[str]:
        with self._lock:
            return [k for k, v in self._consumers.items() if v]

    def lag(self, key: str) -> int:
        with self._lock:
            offsets = list(self._consumers.get(key, {}).values())
            state = self._states.get(key)
        if not offsets or state is None:
            return 0
        return max(state.next - min(offsets), 0)

    def close(self) -> None:
        self.log.close()


def _unseen(chunks: list[tuple[pa.Table, int | None]], seen: _Seen | None) -> list[tuple[pa.Table, int | None]]:
    """The rows of numbered chunks a producer's ``seen`` numbers do not hold yet, as runs."""
    if seen is None:
        return chunks
    out: list[tuple[pa.Table, int | None]] = []
    for chunk, seq in chunks:
        if seq is None:
            out.append((chunk, seq))
            continue
        out += [(chunk.slice(row, n), seq + row) for row, n in seen.runs(seq, chunk.num_rows)]
    return out


def _flag(table: pa.Table, plan: QualityPlan, carried: CarriedState, arrival_us: int,
          counted: QualityCounters) -> pa.Table:
    flagged = plan.flag(table, arrival_us=arrival_us, state=carried)
    counted.flags = [a + b for a, b in zip(counted.flags, flagged.flags, strict=True)]
    for name, n in flagged.checks.items():
        counted.checks[name] = counted.checks.get(name, 0) + n
    return table.append_column(QUALITY, flagged.codes).append_column(CHECKS, flagged.reasons)


def _annotate(header: batch.BatchHeader, table: pa.Table) -> pa.Table:
    """Add offsets and arrival time; flags as names (records appended without checks are good)."""
    offsets = pa.array(range(header.base, header.end), type=pa.int64())
    arrival = pa.array([header.arrival_us] * header.count, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    if QUALITY in table.column_names:
        flags = flag_names(table.column(QUALITY))
        checks = table.column(CHECKS)
        table = table.drop_columns([QUALITY, CHECKS])
    else:
        flags = pa.array(["good"] * header.count, type=pa.string())
        checks = pa.nulls(header.count, type=pa.string())
    return (table.append_column(OFFSET, offsets).append_column(ARRIVAL, arrival).append_column(QUALITY, flags)
            .append_column(CHECKS, checks))


def _mask(table: pa.Table, start: int, end: int, since_us: int | None, until_us: int | None,
          time_field: str | None, quality: Collection[str] | None = None) -> pa.Array | None:
    conditions = []
    if quality is not None:
        conditions.append(pc.is_in(table.column(QUALITY), value_set=pa.array(sorted(quality), type=pa.string())))
    offsets = table.column(OFFSET)
    if start > offsets[0].as_py():
        conditions.append(pc.greater_equal(offsets, start))
    if end <= offsets[-1].as_py():
        conditions.append(pc.less(offsets, end))
    if time_field is not None and (since_us is not None or until_us is not None):
        stamps = table.column(time_field).cast(pa.int64())
        if since_us is not None:
            conditions.append(pc.greater_equal(stamps, since_us))
        if until_us is not None:
            conditions.append(pc.less(stamps, until_us))
    if not conditions:
        return None
    mask = conditions[0]
    for more in conditions[1:]:
        mask = pc.and_(mask, more)
    return mask
