"""A twin's analyses in bulk: one row per cycle (its time, revision, innovation statistics, spread, and every
state entry's analysis mean, std and 5/50/95 % quantiles), as CSV, Parquet or an Arrow stream.

Reading thousands of analyses back revision by revision costs a request each; this reads the cycle records in
one query, their ensembles as text parsed by orjson, and computes the statistics of runs of cycles with one
numpy call each (``record.statistics``, which wrote the revisions' values: the same numbers).
"""

from __future__ import annotations

import io
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.twin_assimilation.models import AssimilationCycle
from twinengine.twin_assimilation.packed import array_of
from twinengine.twin_assimilation.record import QUANTILES, statistics
from twinengine.twins import service as twins

__all__ = ["FORMATS", "MAX_ROWS", "MAX_VALUES", "Format", "encode", "history_table"]

Format = Literal["csv", "parquet", "arrow"]
FORMATS: dict[str, str] = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet",
                           "arrow": "application/vnd.apache.arrow.stream"}
MAX_ROWS = 100_000  # cycles one answer holds; ``after`` pages on
MAX_VALUES = 10_000_000  # analysis values (5 per state entry and cycle) one answer holds, whatever the rows
PAGE = 1000  # records parsed at a time, at most
FIRST_PAGE = 20  # the first page, before the ensembles' size is known
PARSED = 5_000_000  # member values of the ensembles parsed at a time (later pages are sized to it)

_FIXED = (("cycle", pa.int32()), ("valid_time", pa.timestamp("us", tz="UTC")), ("revision", pa.int64()),
          ("method", pa.string()), ("members", pa.int32()), ("seed", pa.int64()), ("observations", pa.int32()),
          ("innovation_mean", pa.float64()), ("innovation_rms", pa.float64()), ("expected_rms", pa.float64()),
          ("spread", pa.float64()))
_LEVELS = {"0.05": "q05", "0.5": "q50", "0.95": "q95"}


def _columns(names: list[str]) -> list[str]:
    return [c for name in names for c in (name, f"{name}:std", *(f"{name}:{_LEVELS[q]}" for q in QUANTILES))]


def history_table(session: Session, *, principal: Principal, ref: str, after: int = 0,
                  limit: int = MAX_ROWS) -> pa.Table:
    """The twin's cycles numbered above ``after``, oldest first, at most ``limit`` (and at most ``MAX_VALUES``
    values of analysis: a large state gets fewer rows, ``after`` pages on): the fixed columns, then per state
    entry ``name`` (the analysis mean), ``name:std``, ``name:q05``, ``name:q50`` and ``name:q95``. Read a page
    of records at a time, so only one page of ensembles is held as parsed JSON."""
    twin = twins.get_twin(session, principal=principal, ref=ref)
    fixed: dict[str, list[Any]] = {name: [] for name, _type in _FIXED}
    names: list[str] = []
    blocks: list[tuple[list[str], np.ndarray, np.ndarray, np.ndarray]] = []  # names, mean, std, quantiles
    count, last, page = 0, after, FIRST_PAGE
    while count < limit:
        rows = session.execute(
            select(AssimilationCycle.number, AssimilationCycle.valid_time, AssimilationCycle.revision,
                   AssimilationCycle.method, AssimilationCycle.members, AssimilationCycle.seed,
                   AssimilationCycle.obs_count, AssimilationCycle.innovation_mean, AssimilationCycle.innovation_rms,
                   AssimilationCycle.expected_rms, AssimilationCycle.spread, cast(AssimilationCycle.ensemble, Text))
            .where(AssimilationCycle.twin_id == twin.id, AssimilationCycle.number > last)
            .order_by(AssimilationCycle.number).limit(min(page, limit - count))).all()
        if not rows:
            break
        ensembles = [orjson.loads(str(row[-1])) for row in rows]
        for ensemble in ensembles:
            ensemble["members"] = array_of(ensemble["members"])
        width = max(len(names), *(len(e["names"]) for e in ensembles))
        allowed = max(1, MAX_VALUES // (5 * width)) - count  # a large state: fewer rows (at least one)
        if allowed <= 0:
            break
        rows, ensembles = rows[:allowed], ensembles[:allowed]
        asked = len(rows) == page
        for i, (name, _type) in enumerate(_FIXED):
            fixed[name] += [row[i] for row in rows]
        for ensemble in ensembles:  # the same in every cycle of one app version; a union in their order if not
            names += [n for n in ensemble["names"] if n not in names]
        blocks += _statistics(ensembles)
        count, last = count + len(rows), int(rows[-1][0])
        if not asked:
            break
        numbers = max(1, max(int(row[4]) for row in rows) * width)  # members x entries of a parsed ensemble
        page = max(1, min(PAGE, PARSED // numbers))
    values = np.full((count, 5 * len(names)), np.nan)
    at = 0
    for block_names, mean, std, q in blocks:
        k = mean.shape[0]
        columns = np.asarray([5 * names.index(n) for n in block_names])
        values[at:at + k, columns] = mean
        values[at:at + k, columns + 1] = std
        for j in range(len(QUANTILES)):
            values[at:at + k, columns + 2 + j] = q[:, j, :]
        at += k
    arrays = [pa.array(fixed[name], type=kind) for name, kind in _FIXED]
    arrays += [pa.array(values[:, j]) for j in range(values.shape[1])]
    return pa.Table.from_arrays(arrays, names=[name for name, _kind in _FIXED] + _columns(names))


def _statistics(ensembles: list[dict[str, Any]]) -> list[tuple[list[str], np.ndarray, np.ndarray, np.ndarray]]:
    """Mean, std and quantiles of runs of cycles of one shape, one numpy call each (``record.statistics``)."""
    out = []
    start = 0
    while start < len(ensembles):
        key = (ensembles[start]["names"], len(ensembles[start]["members"]))
        end = start + 1
        while end < len(ensembles) and (ensembles[end]["names"], len(ensembles[end]["members"])) == key:
            end += 1
        members = np.stack([e["members"] for e in ensembles[start:end]])
        weights = [None if e.get("log_weights") is None else np.asarray(e["log_weights"], dtype=float)
                   for e in ensembles[start:end]]
        mean, std, q = statistics(members, weights)
        out.append((list(key[0]), mean, std, q))
        start = end
    return out


def encode(table: pa.Table, fmt: Format) -> bytes:
    """The table as ``fmt``'s bytes (CSV with a header row; times in ISO 8601, UTC)."""
    sink = io.BytesIO()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, sink, compression="zstd")
    elif fmt == "arrow":
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, sink)
    return sink.getvalue()
