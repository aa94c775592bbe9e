"""Cycles that ran, written at once: each analysis a state revision with its uncertainty (std, quantiles,
members: one numpy call for every entry), each cycle a record with its observations, innovations and ensemble;
the revisions of a batch go in one ``append_revisions`` and its records in one insert.

Values are built as ``twins.state.validate_write`` would build them from the writes (a test holds the two
equal); the first cycle of each batch, and any cycle with a value that is not a finite number, goes through
``validate_write`` itself, which reports what is wrong.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import orjson
from sqlalchemy import Table, Text, bindparam, insert
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
from twinengine.twin_assimilation.plan import Planned
from twinengine.twins import state as twin_state
from twinengine.twins.models import Twin
from twinengine.twins.schemas import PropertyWrite, StateKind
from twinengine.twins.state import NewValue

__all__ = ["QUANTILES", "Batch", "quantiles", "record", "statistics", "values_of"]

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


def _innovations(planned: Planned, obs: np.ndarray) -> dict[str, Any]:
    """Name → observed, background mean, innovation, expected spread and error std (``InnovationRead``)."""
    out: dict[str, Any] = {}
    for j, u in enumerate(planned.used):
        background, expected = float(obs[j, 0]), float(obs[j, 1])
        out[u["name"]] = {"observed": u["value"], "background": background, "innovation": u["value"] - background,
                          "expected": expected, "std": u["std"]}
    return out


def record(session: Session, batch: Batch, plans: list[Planned], got: dict[str, Any], *,
           prior_cycle: str | None) -> list[AssimilationCycle]:
    """Write the cycles the worker ran (``got``: its answer) as revisions and records; returns the records."""
    done = int(got["members"].shape[0])
    rows: list[AssimilationCycle] = []
    pending: list[twin_state.Pending] = []
    at, now = 0, utcnow()
    every = np.asarray(got["members"], dtype=float)
    weights = [None if w is None else np.asarray(w, dtype=float) for w in got["log_weights"]]
    means, stds, qs = statistics(every, weights)
    for k, planned in enumerate(plans[:done]):
        analysed, log_weights, std = every[k], weights[k], stds[k]
        obs = np.asarray(got["obs"][at:at + len(planned.used)], dtype=float)  # none when nothing was weighed
        at += len(planned.used)
        for j, u in enumerate(planned.used):
            u["std"] = float(obs[j, 2])
        values = values_of(batch, planned, analysed, means[k], std, qs[k], checked=k == 0)
        pending.append((values, f"assimilation cycle {planned.number}: {batch.method.value}, {batch.members} "
                                f"members, seed {batch.seed}, {len(planned.used)} observations"))
        innovations = _innovations(planned, obs)
        d = np.asarray([i["innovation"] for i in innovations.values()])
        e = np.asarray([i["expected"] for i in innovations.values()])
        row = AssimilationCycle(
            id="as-" + secrets.token_hex(6), created_at=now, twin_id=batch.twin.id, number=planned.number,
            owner=batch.principal.name, method=batch.method.value, members=int(analysed.shape[0]), seed=batch.seed,
            tuning=batch.tuning, valid_time=planned.when.time,
            offsets={planned.stream: [planned.when.first, planned.when.end]},
            observations=planned.used, innovations=innovations, obs_count=len(planned.used),
            innovation_mean=float(d.mean()) if d.size else None,
            innovation_rms=float(np.sqrt(np.mean(d**2))) if d.size else None,
            expected_rms=float(np.sqrt(np.mean(e**2))) if e.size else None, spread=float(np.mean(std)),
            ensemble={"names": list(batch.spec.state), "members": analysed.tolist(), "forcing": planned.forcing,
                      "log_weights": None if log_weights is None else log_weights.tolist(),
                      "ess": got["ess"][k], "late": planned.when.late, "prior": prior_cycle},
            origin_cycle=prior_cycle if planned.number == 1 else None)
        prior_cycle = row.id
        rows.append(row)
    if not rows:
        return rows
    first = twin_state.append_revisions(session, [(batch.twin, pending)], author=batch.principal.name,
                                        manifests={batch.twin.id: batch.manifest})[batch.twin.id]
    for k, row in enumerate(rows):
        row.revision = first + k
    _insert(session, rows)
    return rows


_JSON = ("tuning", "offsets", "observations", "innovations", "ensemble")
_TABLE = cast(Table, AssimilationCycle.__table__)


def _insert(session: Session, rows: list[AssimilationCycle]) -> None:
    """The records in one executemany, their JSON written by orjson (floats in C: a record's ensemble is
    N x n numbers, which the JSON type's ``json.dumps`` made the largest cost of a cycle)."""
    connection = session.connection()
    pg = connection.dialect.name == "postgresql"
    statement = insert(_TABLE).values({name: sql_cast(bindparam(f"json_{name}", type_=Text()), JSONB()) if pg else
                                       bindparam(f"json_{name}", type_=Text()) for name in _JSON})
    plain = [c.name for c in _TABLE.c if c.name not in _JSON]
    connection.execute(statement, [{**{name: getattr(row, name) for name in plain},
                                    **{f"json_{name}": orjson.dumps(getattr(row, name)).decode() for name in _JSON}}
                                   for row in rows])
