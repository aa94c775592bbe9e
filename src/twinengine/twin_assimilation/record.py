"""Cycles that ran, written at once: each analysis a state revision with its uncertainty (std, quantiles,
members: one numpy call for every entry), each cycle a record with its observations, innovations and ensemble;
the revisions of a batch go in one ``append_revisions`` and its records in one insert.

Values are built as ``twins.state.validate_write`` would build them from the writes (a test holds the two
equal); the first cycle of each request, and any cycle with a value that is not a finite number, goes through
``validate_write`` itself, which reports what is wrong.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, cast

import numpy as np
import orjson
from sqlalchemy import Insert, Table, Text, bindparam, insert
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.catalog.assimilation_spec import AssimilationSpec, Method
from twinengine.catalog.manifest import Manifest, StateType
from twinengine.quality.uncertainty import Uncertainty
from twinengine.store.base import utcnow
from twinengine.twin_assimilation.analysis import weighted_stats
from twinengine.twin_assimilation.models import AssimilationCycle
from twinengine.twin_assimilation.packed import list_of, pack
from twinengine.twin_assimilation.plan import Planned
from twinengine.twin_assimilation.schemas import CycleRead
from twinengine.twins import state as twin_state
from twinengine.twins.models import Twin
from twinengine.twins.schemas import PropertyWrite, StateKind
from twinengine.twins.state import NewValue

__all__ = ["QUANTILES", "Batch", "innovation_rows", "observation_rows", "quantiles", "record", "statistics",
           "values_of"]

QUANTILES = ("0.05", "0.5", "0.95")
_LEVELS = np.asarray([float(q) for q in QUANTILES])


@dataclass
class Batch:
    """What every cycle of a request shares: the twin, its app, who runs it, the method, size and seed; and,
    worked out once, each state entry's declared uncertainty forms and unit."""

    twin: Twin
    manifest: Manifest
    spec: AssimilationSpec
    principal: Principal
    method: Method
    members: int
    seed: int
    forms: list[frozenset[str]] = field(init=False)
    units: list[str | None] = field(init=False)
    plain: bool = field(init=False)  # every entry a plain number: its values need no ``validate_write``
    tuning: dict[str, Any] = field(init=False)
    checked: bool = field(init=False, default=False)  # a cycle's values went through ``validate_write``

    def __post_init__(self) -> None:
        declared = [self.manifest.state[e.split("[", 1)[0]] for e in self.spec.state]
        self.forms = [frozenset(f.value for f in d.uncertainty) for d in declared]
        self.units = [d.unit for d in declared]
        self.plain = all(d.type is StateType.NUMBER for d in declared)
        self.tuning = self.spec.tuning.model_dump(mode="json")


def quantiles(members: np.ndarray, log_weights: np.ndarray | None) -> np.ndarray:
    """The ``QUANTILES`` of every column at once, (3, n): plain for an ensemble, from the weighted empirical
    distribution for particles; never decreasing with the level."""
    if log_weights is None:
        values = np.quantile(members, _LEVELS, axis=0)
    else:
        order = np.argsort(members, axis=0)
        w = np.exp(log_weights - log_weights.max())[order]
        cdf = np.cumsum(w, axis=0) / w.sum(axis=0)
        index = np.minimum((cdf[None, :, :] < _LEVELS[:, None, None]).sum(axis=1), members.shape[0] - 1)
        values = np.take_along_axis(np.take_along_axis(members, order, axis=0), index, axis=0)
    return np.asarray(np.maximum.accumulate(values, axis=0), dtype=float)


def _uncertainties(forms: list[frozenset[str]], std: np.ndarray, q: np.ndarray,
                   members: np.ndarray) -> list[dict[str, Any] | None]:
    """``Uncertainty.plain()`` of each entry's declared forms (in its field order)."""
    stds, levels = std.tolist(), q.T.tolist()
    columns = members.T.tolist() if any("members" in f for f in forms) else None
    out: list[dict[str, Any] | None] = []
    for i, declared in enumerate(forms):
        parts: dict[str, Any] = {}
        if "std" in declared:
            parts["std"] = stds[i]
        if "quantiles" in declared:
            parts["quantiles"] = dict(zip(QUANTILES, levels[i], strict=True))
        if "members" in declared and columns is not None:
            parts["members"] = columns[i]
        out.append(parts or None)
    return out


def statistics(members: np.ndarray, log_weights: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray,
                                                                                  np.ndarray]:
    """Mean and std (K, n) and ``QUANTILES`` (K, 3, n) of the analyses of a batch, (K, N, n): one numpy call
    each for ensembles, particles (weighted) one by one."""
    mean, std = members.mean(axis=1), members.std(axis=1, ddof=1)
    q = np.maximum.accumulate(np.moveaxis(np.quantile(members, _LEVELS, axis=1), 0, 1), axis=1)
    for k, weights in enumerate(log_weights):
        if weights is not None:
            mean[k], std[k] = weighted_stats(members[k], weights)
            q[k] = quantiles(members[k], weights)
    return mean, std, q


def values_of(batch: Batch, planned: Planned, analysed: np.ndarray, mean: np.ndarray, std: np.ndarray,
              q: np.ndarray, *, checked: bool) -> list[NewValue]:
    """The analysis (members, and their mean, std and quantiles) as the revision's values; ``checked``:
    through ``validate_write`` (as any write), else built directly."""
    parts = _uncertainties(batch.forms, std, q, analysed)
    if checked or not batch.plain or not (np.isfinite(analysed).all() and np.isfinite(std).all()):
        writes = {entry: PropertyWrite(value=float(mean[i]), timestamp=planned.when.time,
                                       uncertainty=None if parts[i] is None else Uncertainty.model_validate(parts[i]))
                  for i, entry in enumerate(batch.spec.state)}
        return twin_state.validate_write(batch.manifest, {StateKind.REPORTED: writes})
    when, units = planned.when.time, batch.units
    return [NewValue(entry, StateKind.REPORTED, value, units[i], when, parts[i])
            for i, (entry, value) in enumerate(zip(batch.spec.state, mean.tolist(), strict=True))]


def record(session: Session, batch: Batch, plans: list[Planned], got: dict[str, Any], *,
           prior_cycle: str | None) -> list[CycleRead]:
    """Write the cycles the worker ran (``got``: its answer) as revisions and records; returns the records
    as the API reads them (no detail).

    Each cycle's analysis is a revision, or, where the app keeps ``revisions: batch``, only the last cycle's of
    this batch is: the others' stay in their records (each record's ``revision`` is then the batch's, and its
    ensemble says ``in_revision: false``). The records are plain rows for one insert: an ORM object per cycle
    cost more than the rest of its record."""
    done = int(got["members"].shape[0])
    if done == 0:
        return []
    every = np.asarray(got["members"], dtype=float)
    weights = [None if w is None else np.asarray(w, dtype=float) for w in got["log_weights"]]
    each = batch.spec.revisions == "cycle"
    written = range(done) if each else range(done - 1, done)
    if each:
        means, stds, qs = statistics(every, weights)
    else:  # quantiles of the one analysis written; the others need their std (the spread) only
        means, stds = every.mean(axis=1), every.std(axis=1, ddof=1)
        for k, w in enumerate(weights):
            if w is not None:
                means[k], stds[k] = weighted_stats(every[k], w)
        qs = np.zeros((done, len(QUANTILES), every.shape[2]))
        qs[done - 1] = statistics(every[done - 1:], weights[done - 1:])[2][0]
    pending: list[twin_state.Pending] = []
    for k in written:
        planned = plans[k]
        values = values_of(batch, planned, every[k], means[k], stds[k], qs[k],
                           checked=k == written[0] and not batch.checked)
        message = (f"assimilation cycle {planned.number}: " if each else
                   f"assimilation cycles {plans[0].number}-{planned.number} (the analysis of cycle "
                   f"{planned.number}; every cycle's is in its record): ")
        pending.append((values, f"{message}{batch.method.value}, {batch.members} members, seed {batch.seed}, "
                                f"{planned.observed} observations"))
    batch.checked = True
    first = twin_state.append_revisions(session, [(batch.twin, pending)], author=batch.principal.name,
                                        manifests={batch.twin.id: batch.manifest})[batch.twin.id]
    ids = os.urandom(6 * done).hex()  # one draw for the batch's ids
    names, now = list(batch.spec.state), utcnow()
    obs_all = np.asarray(got["obs"], dtype=float)
    spreads = stds.mean(axis=1).tolist()
    counts = np.fromiter((p.observed for p in plans[:done]), dtype=np.int64, count=done)
    values_all = _joined([p.values for p in plans[:done]], float, obs_all.shape[0])
    offsets_all = _joined([p.offsets for p in plans[:done]], np.int64, obs_all.shape[0])
    stats = _innovation_stats(counts, values_all, obs_all)
    ends = np.cumsum(counts).tolist()
    # a list per column for the whole batch (one tolist each), sliced per cycle: 40 numbers as JSON text cost
    # less than packing them; an ensemble (N x n) is packed
    values_list, offsets_list = values_all.tolist(), offsets_all.tolist()
    background, expected_list, std_list = obs_all[:, 0].tolist(), obs_all[:, 1].tolist(), obs_all[:, 2].tolist()
    rows: list[dict[str, Any]] = []
    reads: list[CycleRead] = []
    size = int(every.shape[1])
    dumps, fragment = orjson.dumps, orjson.Fragment
    names_json = fragment(dumps(names))  # the same in every record of the batch: written once
    fixed = {"created_at": now, "twin_id": batch.twin.id, "owner": batch.principal.name, "method": batch.method.value,
             "members": size, "seed": batch.seed, "json_tuning": dumps(batch.tuning).decode()}
    for k, planned in enumerate(plans[:done]):
        count, end = planned.observed, ends[k]
        at = end - count
        innovations: dict[str, Any] = {}
        sd = planned.stds = std_list[at:end]  # the std each was weighed with (an error function's, too)
        value = values_list[at:end]
        if count:
            innovations = {COLUMNS: {"name": planned.names, "observed": value, "background": background[at:end],
                                     "expected": expected_list[at:end], "std": sd}}
        mean, rms, expected = stats[k]
        ensemble = {"names": names_json, "members": pack(every[k]), "forcing": planned.forcing,
                    "log_weights": weights[k], "ess": got["ess"][k], "late": planned.when.late, "prior": prior_cycle}
        if not each:
            ensemble["in_revision"] = k == done - 1
        cycle_id, offsets = "as-" + ids[12 * k:12 * k + 12], {planned.stream: [planned.when.first, planned.when.end]}
        revision, origin = first + k if each else first, prior_cycle if planned.number == 1 else None
        rows.append({**fixed, "id": cycle_id, "number": planned.number, "valid_time": planned.when.time,
                     "json_offsets": dumps(offsets).decode(),
                     "json_observations": dumps({"name": planned.names, "stream": planned.stream,
                                                 "offset": offsets_list[at:end], "value": value, "std": sd}).decode(),
                     "json_innovations": dumps(innovations).decode(), "obs_count": count,
                     "innovation_mean": mean, "innovation_rms": rms, "expected_rms": expected,
                     "spread": spreads[k], "json_ensemble": dumps(ensemble, option=_NUMPY).decode(),
                     "revision": revision, "origin_cycle": origin})
        prior_cycle = cycle_id
        reads.append(_read({
            "id": cycle_id, "twin": batch.twin.name, "number": planned.number, "method": batch.method,
            "members": size, "seed": batch.seed, "tuning": batch.tuning, "valid_time": planned.when.time,
            "obs_count": count, "offsets": offsets, "innovation_mean": mean, "innovation_rms": rms,
            "expected_rms": expected, "spread": spreads[k], "revision": revision, "origin_cycle": origin,
            "created_at": now, "innovations": None, "observations": None, "analysis": None, "provenance": None}))
    _insert(session, rows)
    return reads


def _read(values: dict[str, Any]) -> CycleRead:
    """A ``CycleRead`` of values the engine made (``model_construct`` with every field given, without its
    per-field defaults pass, which cost more than the rest of a record)."""
    read = CycleRead.__new__(CycleRead)
    object.__setattr__(read, "__dict__", values)
    object.__setattr__(read, "__pydantic_fields_set__", set(values))
    object.__setattr__(read, "__pydantic_extra__", None)
    object.__setattr__(read, "__pydantic_private__", None)
    return read


def _joined(parts: list[Any], dtype: type, count: int) -> np.ndarray:
    """The cycles' columns (lists, or arrays where they were planned on columns) end to end."""
    if parts and all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts).astype(dtype, copy=False)
    return np.fromiter(chain.from_iterable(parts), dtype=dtype, count=count)


def _innovation_stats(counts: np.ndarray, values: np.ndarray,
                      obs: np.ndarray) -> list[tuple[float | None, float | None, float | None]]:
    """Each cycle's innovation mean and RMS and their expected RMS (None for a cycle that weighed nothing), for
    a whole batch in a few numpy calls: ``counts`` observations per cycle, their ``values`` and the worker's
    ``obs`` rows (background mean, expected spread, std), cycle after cycle."""
    out: list[tuple[float | None, float | None, float | None]] = [(None, None, None)] * len(counts)
    weighed = np.flatnonzero(counts)
    if weighed.size == 0:
        return out
    starts = (np.cumsum(counts) - counts)[weighed]
    d = values - obs[:, 0]
    n = counts[weighed].astype(float)
    means = np.add.reduceat(d, starts) / n
    rms = np.sqrt(np.add.reduceat(d * d, starts) / n)
    expected = np.sqrt(np.add.reduceat(obs[:, 1] ** 2, starts) / n)
    for k, m, r, e in zip(weighed.tolist(), means.tolist(), rms.tolist(), expected.tolist(), strict=True):
        out[k] = (m, r, e)
    return out


def observation_rows(stored: Any) -> list[dict[str, Any]]:
    """A record's observations as the API gives them, a mapping per observation (name, stream, offset, value,
    std), from the columns it keeps (or from the list records kept before)."""
    if isinstance(stored, list):
        return stored
    stream = stored["stream"]
    return [{"name": n, "stream": stream, "offset": o, "value": v, "std": s}
            for n, o, v, s in zip(stored["name"], list_of(stored["offset"]), list_of(stored["value"]),
                                  list_of(stored["std"]), strict=True)]


def innovation_rows(stored: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A record's innovations as the API gives them, name -> observed, background, innovation, expected and
    std (``InnovationRead``), from the columns it keeps (or from the mapping records kept before)."""
    columns = stored.get(COLUMNS)
    if columns is None:
        return stored
    return {n: {"observed": o, "background": b, "innovation": o - b, "expected": e, "std": s}
            for n, o, b, e, s in zip(columns["name"], list_of(columns["observed"]), list_of(columns["background"]),
                                     list_of(columns["expected"]), list_of(columns["std"]), strict=True)}


COLUMNS = "#columns"  # the key of a record's innovations kept as columns (no observation is named so)
_JSON = ("tuning", "offsets", "observations", "innovations", "ensemble")
_NUMPY = orjson.OPT_SERIALIZE_NUMPY  # the ensemble's members and weights, written from their arrays
_TABLE = cast(Table, AssimilationCycle.__table__)


@functools.cache
def _statement(pg: bool) -> Insert:
    """The insert, made once per kind of store: SQLAlchemy works out a new statement's cache key (its types'
    constructor arguments, by introspection) on every execution, about 3 ms, more than its thousand rows."""
    return insert(_TABLE).values({name: sql_cast(bindparam(f"json_{name}", type_=Text()), JSONB()) if pg else
                                  bindparam(f"json_{name}", type_=Text()) for name in _JSON})


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    """The records (a value per column, the JSON columns as ``json_<name>`` text written by orjson: floats in
    C, the members packed) in one executemany."""
    connection = session.connection()
    connection.execute(_statement(connection.dialect.name == "postgresql"), rows)
