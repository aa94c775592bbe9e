"""How a rerun's outputs compare with its original's: each output identical (the same SHA-256), within a stated
tolerance (numbers that differ by no more than ``atol + rtol * |original|``, with the largest difference per
variable), or different, with why: an input changed, the app or engine is another version, a model version
differs, or the app declares its results may vary from run to run."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from twinengine.crates.record import RunRecord
from twinengine.crates.stream_inputs import StreamChange, change_reason

__all__ = ["ATOL", "RTOL", "compare"]

ATOL, RTOL = 1e-9, 1e-9
Reader = Callable[[str], bytes | None]


def _leaves(value: Any, path: str, out: dict[str, list[tuple[str, float]]], top: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        out.setdefault(top, []).append((path, math.nan if value is None else hash(value)))
    elif isinstance(value, int | float):
        out.setdefault(top, []).append((path, float(value)))
    elif isinstance(value, dict):
        for key in sorted(value):
            _leaves(value[key], f"{path}.{key}" if path else str(key), out, top or str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _leaves(item, f"{path}[{i}]", out, top or "value")


def _json_variables(content: bytes) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {}
    _leaves(json.loads(content), "", out, "")
    return out


def _netcdf_variables(content: bytes) -> dict[str, list[tuple[str, float]]]:
    import numpy as np
    import xarray as xr

    out: dict[str, list[tuple[str, float]]] = {}
    ids: dict[str, bool] = {}
    with xr.open_dataset(io.BytesIO(content), engine="h5netcdf") as ds:
        for name in sorted(map(str, ds.variables)):
            values = np.asarray(ds[name].values)
            if values.dtype.kind not in "fiub" and all(str(v).startswith(("run-", "ens-")) for v in values.ravel()):
                ids[name] = True  # which runs made the values (an ensemble's members): another rerun, others
                continue
            if values.dtype.kind in "fiub":
                flat = values.astype("float64").ravel()
                out[name] = [(f"{name}[{i}]", float(v)) for i, v in enumerate(flat)]
            else:
                out[name] = [(f"{name}[{i}]", float(hash(str(v)))) for i, v in enumerate(values.ravel())]
    return out


def _variables(name: str, media_type: str, content: bytes) -> dict[str, list[tuple[str, float]]] | None:
    try:
        if media_type.startswith("application/json") or name.endswith(".json"):
            return _json_variables(content)
        if "netcdf" in media_type or name.endswith(".nc"):
            return _netcdf_variables(content)
    except Exception:  # unreadable as its type: compared by checksum only
        return None
    return None


def _numbers(name: str, media_type: str, old: bytes, new: bytes, atol: float, rtol: float) -> dict[str, Any] | None:
    """Per variable, the largest absolute difference; None where the files cannot be compared value by value."""
    a, b = _variables(name, media_type, old), _variables(name, media_type, new)
    if a is None or b is None:
        return None
    largest: dict[str, float] = {}
    within = True
    for var in sorted(set(a) | set(b)):
        left, right = a.get(var, []), b.get(var, [])
        if [p for p, _ in left] != [p for p, _ in right]:
            return {"within": False, "largest": largest, "shape": f"variable {var} has another shape or layout"}
        worst = 0.0
        for (_, x), (_, y) in zip(left, right, strict=True):
            if math.isnan(x) and math.isnan(y):
                continue
            gap = abs(x - y)
            if math.isnan(gap):
                gap = math.inf
            worst = max(worst, gap)
            if gap > atol + rtol * abs(x):
                within = False
        largest[var] = worst
    return {"within": within, "largest": largest}


def _why(original: RunRecord, rerun: RunRecord, changed: Sequence[StreamChange] = ()) -> list[str]:
    reasons = []
    told = {(c.kind, c.name) for c in changed}  # said from the rerun's own check, with both checksums
    if original.app_sha256 and rerun.app_sha256 and original.app_sha256 != rerun.app_sha256:
        reasons.append(f"the app version changed: {original.app} ({original.app_sha256[:12]}) then, {rerun.app} "
                       f"({rerun.app_sha256[:12]}) now")
    before = {(i.kind, i.name): i for i in original.inputs}
    for item in rerun.inputs:
        old = before.get((item.kind, item.name))
        if old is None or (item.kind, item.name) in told:
            continue
        if old.sha256 and item.sha256 and old.sha256 != item.sha256:
            reasons.append(f"an input changed: {item.kind} {item.name} (sha256 {old.sha256[:12]} then, "
                           f"{item.sha256[:12]} now)")
        elif item.properties.get("changed") or old.properties.get("changed"):
            reasons.append(f"an input changed: {item.kind} {item.name} changed since the original run")
        elif old.version != item.version and item.kind == "collection":
            reasons.append(f"an input changed: collection {item.name} version {old.version} then, {item.version} now")
    if original.parameters.get("twin_parameters") != rerun.parameters.get("twin_parameters"):
        reasons.append("an input changed: the twin's parameters are not those of the original run")
    used = {(m.registered, m.version) for m in original.models if m.role == "used"}
    now = {(m.registered, m.version) for m in rerun.models if m.role == "used"}
    if used != now:
        reasons.append(f"a model version differs: {sorted(used)} then, {sorted(now)} now (the original's may be "
                       "retired)")
    if original.engine_version != rerun.engine_version:
        reasons.append(f"another engine version: {original.engine_version} then, {rerun.engine_version} now")
    said = rerun.nondeterministic or original.nondeterministic
    if said:
        reasons.append(f"nondeterminism declared by the app: {said}")
    return reasons


def compare(original: RunRecord, old_bytes: Reader, rerun: RunRecord, new_bytes: Reader, *, atol: float = ATOL,
            rtol: float = RTOL, changed: Sequence[StreamChange] = ()) -> dict[str, Any]:
    """The diff (``crates.schemas.RerunDiff``'s fields) of two ended runs of the same procedure. ``changed``: the
    stream inputs whose records the rerun found changed before it started, said whatever the verdict (the
    outputs may be the same although the records are not)."""
    outputs = []
    new_by_name = {o.name: o for o in rerun.outputs}
    for old in original.outputs:
        new = new_by_name.pop(old.name, None)
        entry: dict[str, Any] = {"name": old.name, "original_sha256": old.sha256,
                                 "rerun_sha256": new.sha256 if new else None}
        if new is None:
            entry |= {"verdict": "different", "why": "the rerun made no such output"}
        elif new.sha256 == old.sha256:
            entry["verdict"] = "identical"
        else:
            a, b = old_bytes(old.name), new_bytes(new.name)
            numbers = _numbers(old.name, old.media_type, a, b, atol, rtol) if a is not None and b is not None else None
            if numbers is None:
                entry |= {"verdict": "different", "why": "the checksums differ" + (
                    "" if a is not None else " (the original's bytes are not at hand: only its checksum)")}
            else:
                entry["largest_difference"] = numbers["largest"]
                exact = numbers["within"] and not any(numbers["largest"].values())
                entry["verdict"] = "identical" if exact else "within_tolerance" if numbers["within"] else "different"
                if exact:
                    entry["why"] = ("every value identical; the file differs only in the ids of the runs that made "
                                    "them (another rerun's members)")
                if not numbers["within"]:
                    entry["why"] = numbers.get("shape") or "values differ by more than the tolerance"
        outputs.append(entry)
    outputs += [{"name": name, "original_sha256": None, "rerun_sha256": o.sha256, "verdict": "different",
                 "why": "the original made no such output"} for name, o in new_by_name.items()]
    verdicts = {o["verdict"] for o in outputs}
    verdict = "different" if "different" in verdicts else "within_tolerance" if "within_tolerance" in verdicts \
        else "identical"
    return {"original": original.id, "rerun": rerun.id, "kind": original.kind, "verdict": verdict,
            "tolerance": {"atol": atol, "rtol": rtol}, "outputs": outputs,
            "why": [change_reason(c) for c in changed] + (_why(original, rerun, changed) if verdict != "identical"
                                                          else []),
            "status": rerun.status}
