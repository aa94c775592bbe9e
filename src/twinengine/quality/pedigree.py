"""Pedigree: the quality of the inputs a result was computed from travels with it.

A run records, per input it read, the flags of the stream records it used (good / suspect / bad counts; an
input without checks is "unchecked"). The worst flag among them is the run's input quality: a state value the
run writes says so when it is suspect or bad, and so do the run's STAC item and provenance record. A quality
report of a run (or of a model version, through the run that trained it) lists every input with its counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from twinengine.quality.spec import FLAGS, Flag

__all__ = ["InputQuality", "QualityReport", "ValueQuality", "flag_counts", "input_quality", "quality_report",
           "records_quality", "report_from_provenance", "value_quality", "worst"]

UNCHECKED = "unchecked"


def _absent(value: Any) -> bool:
    return value is None


class ValueQuality(BaseModel):
    """Kept with a value computed from inputs that were not all good, or that failed its property's checks."""

    model_config = ConfigDict(extra="forbid")

    flag: Literal["suspect", "bad"] = Field(description="The worst flag among the records it was computed from "
                                                        "and the state checks it failed itself.")
    run: str | None = Field(default=None, description="The run that computed it.")
    inputs: list[str] = Field(default_factory=list, description="The inputs that were suspect or bad.")
    function: str | None = Field(default=None, exclude_if=_absent,
                                 description="The function on arrival that computed it (instead of a run).")
    records: dict[str, int] | None = Field(default=None, exclude_if=_absent,
                                           description="A function's call: its records per flag.")
    checks: list[str] | None = Field(default=None, exclude_if=_absent,
                                     description="The state checks of its property it failed (e.g. spike:level).")


def flag_counts(column: pa.ChunkedArray | pa.Array | None) -> dict[str, int] | None:
    """Counts per flag of a ``_quality`` column (as the log keeps it, codes 0, 1, 2, or as reads give it,
    names; null counts as good), or None without one."""
    if column is None:
        return None
    counts = {flag.value: 0 for flag in FLAGS}
    for row in pc.value_counts(column).to_pylist():
        value = row["values"]
        name = Flag.GOOD.value if value is None else FLAGS[value].value if isinstance(value, int) else str(value)
        counts[name] = counts.get(name, 0) + int(row["counts"])
    return counts


def worst(counts: dict[str, int] | None) -> str:
    """The worst flag with at least one record, or "unchecked" when the input has no flags."""
    if counts is None:
        return UNCHECKED
    for flag in reversed(FLAGS):
        if counts.get(flag.value):
            return flag.value
    return Flag.GOOD.value


def input_quality(inputs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The quality report of what a run used: every input with its counts and flag, and the worst flag of
    the checked ones (``good`` when none was checked or all were good)."""
    listed: dict[tuple[str, str], dict[str, Any]] = {}
    for item in inputs:
        key = (str(item["collection"]), str(item.get("version") or ""))
        counts = item.get("quality")
        entry = listed.setdefault(key, {"collection": key[0], "version": key[1] or None, "records": None,
                                        "flag": UNCHECKED})
        if counts is not None:  # an input read more than once (an ensemble's members) counts its largest read
            entry["records"] = {f: max((entry["records"] or {}).get(f, 0), n) for f, n in counts.items()}
            entry["flag"] = worst(entry["records"])
    order = [f.value for f in FLAGS]
    flags = [e["flag"] for e in listed.values() if e["flag"] != UNCHECKED]
    flag = max(flags, key=order.index) if flags else Flag.GOOD.value
    return {"flag": flag, "inputs": list(listed.values())}


def value_quality(report: dict[str, Any], run_id: str) -> dict[str, Any] | None:
    """What a value computed by run ``run_id`` says of its inputs: None when they were good, else the flag,
    the run and the inputs that were not good."""
    if report["flag"] == Flag.GOOD.value:
        return None
    doubtful = [e["collection"] for e in report["inputs"] if e["flag"] in (Flag.SUSPECT.value, Flag.BAD.value)]
    return {"flag": report["flag"], "run": run_id, "inputs": doubtful}


def records_quality(records: Iterable[dict[str, Any]], *, function: str, stream: str) -> dict[str, Any] | None:
    """What a value written by a function on arrival says of the records of its call (``_quality`` of each,
    as reads give it): None when they were all good, else the worst flag, the function, the stream
    (``stream:TWIN/STREAM``) and the records per flag."""
    counts = {flag.value: 0 for flag in FLAGS}
    for record in records:
        name = str(record.get("_quality") or Flag.GOOD.value)
        counts[name] = counts.get(name, 0) + 1
    flag = worst(counts)
    if flag == Flag.GOOD.value:
        return None
    return {"flag": flag, "run": None, "inputs": [stream], "function": function, "records": counts}


class InputQuality(BaseModel):
    collection: str = Field(description="What was read: a collection, stream:TWIN/STREAM, related:TWIN/TYPE.")
    version: str | None = Field(description="Its version when read (a stream's end offset).")
    flag: Literal["good", "suspect", "bad", "unchecked"] = Field(
        description="The worst flag of the records used; unchecked when the input has no quality checks.")
    records: dict[str, int] | None = Field(description="Records used per flag (absent when unchecked).")


class QualityReport(BaseModel):
    """The quality of every input a run or a model version used."""

    subject: str = Field(description="run:ID, or model:TWIN/MODEL/VERSION.")
    flag: Literal["good", "suspect", "bad"] = Field(description="The worst flag among the checked inputs.")
    inputs: list[InputQuality]


def _plain(value: Any) -> Any:
    return value.get("$") if isinstance(value, dict) else value


def report_from_provenance(subject: str, document: dict[str, Any]) -> QualityReport:
    """A run's report from its PROV-JSON (inputs are ``twin:Dataset`` entities with ``twin:quality`` and
    per-flag record counts; a run recorded before inputs were rated lists them as unchecked)."""
    inputs = []
    for attrs in (document.get("entity") or {}).values():
        if _plain(attrs.get("prov:type")) != "twin:Dataset":
            continue
        counts = {flag.value: int(_plain(attrs[f"twin:{flag.value}Records"])) for flag in FLAGS
                  if f"twin:{flag.value}Records" in attrs}
        inputs.append({"collection": str(_plain(attrs.get("twin:collection"))),
                       "version": str(_plain(attrs.get("twin:version")) or "") or None,
                       "quality": counts or None})
    return quality_report(subject, inputs)


def quality_report(subject: str, inputs: Iterable[dict[str, Any]]) -> QualityReport:
    report = input_quality(inputs)
    return QualityReport(subject=subject, flag=report["flag"], inputs=[
        InputQuality(collection=e["collection"], version=e["version"], flag=e["flag"], records=e["records"])
        for e in report["inputs"]])
