"""CoverageJSON (OGC Community Standard 21-069r2) from an ``Extraction``, serialised without per-value loops.

Range values stay numpy arrays until orjson writes them (NaN becomes ``null``), so a two-million-value
grid costs one pass in C. A large grid whose reads are still pending is written time step run by time
step run while the rest is read (``encode_parts``): the writing thread takes read jobs itself whenever no
finished run is waiting, and orjson holds the GIL but chunk decoding does not, so the two overlap instead
of adding up, as long as the writer hands the GIL over between pieces (``_offer_gil``).
Referencing: CRS84 for x/y, the Gregorian calendar for t, a vertical CRS for z.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import numpy as np
import orjson

from twinengine.access.extract import Coverage, Extraction, ParameterInfo
from twinengine.access.reads import Reads

__all__ = ["MEDIA_TYPE", "dumps", "encode_parts", "to_covjson"]

PIECE_VALUES = 65_536  # values per orjson call while chunks are read (about 1 ms holding the GIL)
OVERLAP_VALUES = 200_000  # answers at least this large are written while their chunks are being read

MEDIA_TYPE = "application/vnd.cov+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def _times(values: np.ndarray) -> list[str]:
    text = np.datetime_as_string(values.astype("datetime64[s]"), unit="s")
    return [f"{t}Z" for t in text.tolist()]


def _numbers(values: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(values)  # also lays out transposed views for the flat reshape
    return arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float64)


def _label(info: ParameterInfo) -> str:
    return info.long_name or (info.standard_name or info.name).replace("_", " ")


def _parameter(info: ParameterInfo, base: ParameterInfo | None = None) -> dict[str, Any]:
    """A Parameter; a statistic of another (``base``) names its UncertML measure and, having no observed
    property of its own, describes itself as that measure of the base's."""
    label = _label(info)
    observed: dict[str, Any] = {"id": info.standard_name or info.name, "label": {"en": label}}
    if base is not None and info.statistic is not None:
        measure = info.statistic.rsplit("/", 1)[-1].replace("-", " ")
        if info.quantile is not None:
            measure = f"{info.quantile:g} {measure}"
        label = f"{_label(base)} {measure}"
        observed = {"label": {"en": label}}
    out: dict[str, Any] = {"type": "Parameter", "description": {"en": label}, "observedProperty": observed}
    if info.statistic is not None:
        out["statisticalMeasure"] = info.statistic
        if info.quantile is not None:
            out["quantileLevel"] = info.quantile
    if info.units:
        out["unit"] = {"label": {"en": info.units}, "symbol": info.units}
    return out


def _parameters(infos: dict[str, ParameterInfo]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Parameters, and one ParameterGroup per value that comes with its statistics (mean and standard
    deviation, quantiles): CoverageJSON's way of carrying uncertainty."""
    parameters = {name: _parameter(info, infos.get(info.base) if info.base else None)
                  for name, info in infos.items()}
    groups = []
    for name, info in infos.items():
        members = [other for other, o in infos.items() if o.base == name]
        if members:
            groups.append({"type": "ParameterGroup", "label": {"en": f"{_label(info)} with its uncertainty"},
                           "observedProperty": parameters[name]["observedProperty"], "members": [name, *members]})
    return parameters, groups


def _referencing(coverage: Coverage, z_units: str | None) -> list[dict[str, Any]]:
    names = set(coverage.axes) | set(coverage.composite or {})
    refs: list[dict[str, Any]] = [{"coordinates": ["x", "y"], "system": {"type": "GeographicCRS", "id": CRS84}}]
    if "z" in names:
        axis: dict[str, Any] = {"name": {"en": "level"}}
        if z_units:
            axis["unit"] = {"symbol": z_units}
        refs.append({"coordinates": ["z"], "system": {"type": "VerticalCRS", "cs": {"csAxes": [axis]}}})
    if "t" in names:
        refs.append({"coordinates": ["t"], "system": {"type": "TemporalRS", "calendar": "Gregorian"}})
    return refs


def _domain(coverage: Coverage) -> tuple[str, dict[str, Any]]:
    axes: dict[str, Any] = {}
    domain_type = coverage.domain_type
    for name in ("x", "y", "z"):
        if name in coverage.axes:
            axes[name] = {"values": _numbers(coverage.axes[name])}
    if "t" in coverage.axes:
        axes["t"] = {"values": _times(coverage.axes["t"])}
    if coverage.composite is not None:
        columns = dict(coverage.composite)
        if "t" in columns and np.isnat(columns["t"]).all():
            columns.pop("t")
            domain_type = "MultiPoint"
        lists = [_times(v) if k == "t" else _numbers(v).tolist() for k, v in columns.items()]
        axes["composite"] = {"dataType": "tuple", "coordinates": list(columns),
                             "values": [list(row) for row in zip(*lists, strict=True)]}
    return domain_type, {"type": "Domain", "domainType": domain_type, "axes": axes}


def _ranges(coverage: Coverage) -> dict[str, Any]:
    out = {}
    names = list(coverage.axis_names)
    # Grids go out x before y: any reader honours axisNames, and Polytope's covjsonkit assumes this order.
    swap = names[-2:] == ["y", "x"]
    if swap:
        names[-2:] = ["x", "y"]
    for name, values in coverage.ranges.items():
        arr = _numbers(np.swapaxes(values, -1, -2) if swap else values)
        body: dict[str, Any] = {"type": "NdArray", "dataType": "float", "values": arr.reshape(-1)}
        if names:
            body["axisNames"] = names
            body["shape"] = list(arr.shape)
        out[name] = body
    return out


def to_covjson(extraction: Extraction, *, z_units: str | None = None) -> dict[str, Any]:
    """A Coverage, or a CoverageCollection when the extraction has several coverages (or asks for one)."""
    parameters, groups = _parameters(extraction.parameters)
    coverages = []
    for coverage in extraction.coverages:
        domain_type, domain = _domain(coverage)
        coverages.append((domain_type, domain, _ranges(coverage), _referencing(coverage, z_units)))
    if not extraction.collection and len(coverages) == 1:
        domain_type, domain, ranges, refs = coverages[0]
        domain["referencing"] = refs
        single = {"type": "Coverage", "domain": domain, "parameters": parameters, "ranges": ranges}
        return single | ({"parameterGroups": groups} if groups else {})
    return {
        "type": "CoverageCollection",
        "domainType": coverages[0][0],
        "parameters": parameters,
        **({"parameterGroups": groups} if groups else {}),
        "referencing": coverages[0][3],
        "coverages": [{"type": "Coverage", "domain": domain, "ranges": ranges}
                      for _, domain, ranges, _ in coverages],
    }


def dumps(document: dict[str, Any]) -> bytes:
    """JSON bytes; numpy arrays are written by orjson in C (NaN and inf as null)."""
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


def encode_parts(extraction: Extraction, *, z_units: str | None = None) -> list[bytes | memoryview]:
    """CoverageJSON of ``extraction`` as consecutive pieces, to be written in turn (joining ten megabytes
    costs a copy into fresh memory). When its reads are pending and it is one large grid coverage, this
    thread writes every run of time steps as soon as its chunks are read, at most ``PIECE_VALUES`` values
    per call into orjson, offering the GIL to other threads after each, and takes read jobs itself while
    nothing is ready to be written."""
    ranges = _overlappable(extraction) if extraction.pending is not None else None
    if ranges is None:
        return [dumps(to_covjson(extraction.complete(), z_units=z_units))]
    pending, extraction.pending = extraction.pending, None
    assert pending is not None
    filled = _Filled(list(ranges))
    reads = Reads(on_change=filled.changed)
    try:
        pending(filled.advance, reads)
        parts = _write(extraction, ranges, filled, reads, z_units)
        reads.finish()
    except BaseException:
        reads.cancel()
        raise
    return parts


def _write(extraction: Extraction, ranges: dict[str, np.ndarray], filled: _Filled, reads: Reads,
           z_units: str | None) -> list[bytes | memoryview]:
    document = to_covjson(extraction, z_units=z_units)
    markers = {}
    for name, body in document["ranges"].items():
        markers[name] = f"values-{uuid.uuid4().hex}"
        body["values"] = markers[name]  # replaced below by the values, written as they are read
    rest = dumps(document)
    parts: list[bytes | memoryview] = []
    for name, values in ranges.items():
        head, rest = rest.split(b'"' + markers[name].encode() + b'"', 1)
        parts += [head, b"["]
        rows, per_row, done = values.shape[0], values[0].size if values.shape[0] else 0, 0
        step = max(1, PIECE_VALUES // max(per_row, 1))
        while done < rows:
            now = min(filled.wait(name, done, reads), done + step)
            if per_row:
                piece = orjson.dumps(values[done:now].reshape(-1), option=orjson.OPT_SERIALIZE_NUMPY)
                parts += [b","] if done else []
                parts.append(memoryview(piece)[1:-1])  # without its brackets, not copied
                _offer_gil()
            done = now
        parts.append(b"]")
    parts.append(rest)
    return parts


def _offer_gil() -> None:
    """Let a thread waiting for the GIL take it. A decoding thread needs the GIL back after each system call
    (open, read, decompress, close); a writer that never lets go makes it wait out the interpreter's switch
    interval (5 ms) every time: measured, 20 chunks that decode in 51 ms alone took 435 ms while orjson
    wrote in another thread, and 98 ms with this after every piece."""
    time.sleep(0)  # releases the GIL even for zero seconds; a waiting thread that is ready takes it


def _overlappable(extraction: Extraction) -> dict[str, np.ndarray] | None:
    """The range arrays to write while they fill (as laid out for writing, sharing the buffers being
    filled), or None when this answer is better written once complete: small, several coverages, or any
    range that writing would copy (then the copy would be taken before the values are there)."""
    if extraction.values < OVERLAP_VALUES or len(extraction.coverages) != 1 or extraction.collection:
        return None
    coverage = extraction.coverages[0]
    swap = list(coverage.axis_names[-2:]) == ["y", "x"]
    if not coverage.axis_names or coverage.axis_names[0] != "t":
        return None
    out = {}
    for name, values in coverage.ranges.items():
        laid_out = np.swapaxes(values, -1, -2) if swap else values
        if not laid_out.flags.c_contiguous or laid_out.dtype not in (np.float32, np.float64):
            return None
        out[name] = laid_out
    return out


class _Filled:
    """How many leading time steps of each range are read, shared by the threads running read jobs and the
    writing thread."""

    def __init__(self, names: list[str]) -> None:
        self.rows = dict.fromkeys(names, 0)
        self._changed = threading.Condition()

    def advance(self, name: str, rows: int) -> None:
        with self._changed:
            self.rows[name] = rows
            self._changed.notify_all()

    def changed(self) -> None:
        """A read job ended: a waiting writer looks at the reads again."""
        with self._changed:
            self._changed.notify_all()

    def wait(self, name: str, done: int, reads: Reads) -> int:
        """How many time steps of ``name`` are read, once more than ``done`` are; read jobs are run here in
        the meantime, and when none is left to take, this waits for the threads running the last ones."""
        while True:
            with self._changed:
                while self.rows[name] <= done:
                    if reads.error is not None:
                        raise reads.error
                    if reads.waiting():
                        break
                    if reads.settled():
                        raise RuntimeError(f"the reads of {name!r} ended before all its values were read")
                    self._changed.wait()
                else:
                    return self.rows[name]
            reads.run_one()
