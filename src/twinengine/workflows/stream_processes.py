"""``load_stream``: a twin's stream history (compacted segments from the lake, then the log's open tail) as a
dataset with one ``record`` per stream record, so graphs read streams like any other data. An array field
``x`` is a (record, x_sample) variable (values of varying length padded with NaN). A field's uncertainty comes
as variables beside it (``level_std``, ``level_q05``, ``level_members``) that ``level`` lists in CF's
``ancillary_variables``.

The runtime hands the engine the reader (``engine.services["read_stream"]``); a stream changes as records
arrive, so the process is never served from the result cache.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xarray as xr

from twinengine.errors import ProcessParameterInvalid
from twinengine.quality.pedigree import flag_counts
from twinengine.quality.plan import QUALITY
from twinengine.quality.spec import FLAGS
from twinengine.streams.arrays import as_matrix, is_array
from twinengine.streams.checksum import records_checksum
from twinengine.streams.uncertainty import UNCERTAINTY, variables
from twinengine.timeutil import parse_instant
from twinengine.workflows.context import current

__all__ = ["QUALITY_KEPT", "STREAM_SPECS", "keep_quality", "load_stream", "to_records_dataset"]

_OFFSET, _ARRIVAL = "_offset", "_arrival"


def instant_argument(value: Any, where: str) -> datetime | None:
    """A process argument that is a time: None, a datetime, or an ISO 8601 string; ``where`` names it in the
    error (``load_stream: temporal_extent``)."""
    raw = getattr(value, "root", value)
    if raw is None or isinstance(raw, datetime):
        return raw
    try:
        return parse_instant(str(raw))
    except ValueError:
        raise ProcessParameterInvalid(f"{where} {raw!r} is not an ISO 8601 instant") from None


def to_records_dataset(table: pa.Table | None, time_field: str) -> xr.Dataset:
    """Stream records as an xarray dataset along ``record`` (indexed by the stream offset); times as UTC."""
    if table is None or table.num_rows == 0:
        return xr.Dataset(coords={"record": np.array([], dtype=np.int64)})
    offsets = np.asarray(table.column(_OFFSET).to_numpy(zero_copy_only=False), dtype=np.int64)
    data: dict[str, Any] = {}
    for name in table.column_names:
        if name in (_OFFSET, _ARRIVAL, UNCERTAINTY):
            continue
        column = table.column(name)
        if is_array(column.type):  # an array field: its own sample dimension, e.g. (record, strain_sample)
            data[name] = (("record", f"{name}_sample"), as_matrix(column))
        elif pa.types.is_timestamp(column.type):
            values = column.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
            data[name] = ("record", values.astype("datetime64[ns]"))
        else:
            data[name] = ("record", np.asarray(column.to_pylist() if pa.types.is_string(column.type)
                                               else column.to_numpy(zero_copy_only=False)))
    ds = xr.Dataset(data, coords={"record": offsets})
    if UNCERTAINTY in table.column_names:
        for name, made in variables(table.column(UNCERTAINTY)).items():
            ds = ds.assign({k: xr.Variable(dims, values, attrs) for k, (dims, values, attrs) in made.items()})
            if name in ds and made:
                ds[name].attrs["ancillary_variables"] = " ".join(made)
    if time_field in ds:
        ds = ds.set_coords(time_field)
    return ds


QUALITY_KEPT: dict[str, tuple[str, ...] | None] = {"good": ("good",), "suspect": ("good", "suspect"), "any": None}


def keep_quality(table: pa.Table | None, quality: str) -> pa.Table | None:
    """The records whose flag is at least ``quality`` (``good``: good only; ``suspect``: good and suspect;
    ``any``: all); a record with no flag counts as good."""
    kept = QUALITY_KEPT[quality]
    if kept is None or table is None or QUALITY not in table.column_names:
        return table
    column = table.column(QUALITY)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    values = ([code for code, flag in enumerate(FLAGS) if flag.value in kept] if pa.types.is_integer(column.type)
              else list(kept))
    mask = pc.fill_null(pc.is_in(column, value_set=pa.array(values, type=column.type)), True)
    return table.filter(mask)


def load_stream(stream: str, temporal_extent: Any = None, twin: str | None = None,
                quality: str | None = "any") -> xr.Dataset:
    ctx = current()
    quality = getattr(quality, "root", quality) or "any"
    if quality not in QUALITY_KEPT:
        raise ProcessParameterInvalid(f"load_stream: quality {quality!r} is not one of good, suspect, any")
    reader = ctx.services.get("read_stream")
    if reader is None:
        raise ProcessParameterInvalid("load_stream: this engine has no stream store")
    ref = twin or ctx.twin
    if ref is None:
        raise ProcessParameterInvalid("load_stream: this run has no twin; pass twin")
    since = until = None
    if temporal_extent is not None:
        items = getattr(temporal_extent, "root", temporal_extent)
        where = "load_stream: temporal_extent"
        since, until = instant_argument(items[0], where), instant_argument(items[1], where)
    table, time_field, twin_id = reader(ctx.principal, ref, stream, since, until)
    table = keep_quality(table, quality)  # the pedigree below speaks of the records the run uses, no others
    ds = to_records_dataset(table, time_field)
    entry: dict[str, Any] = {"collection": f"stream:{twin_id}/{stream}", "node": ctx.node,
                             "version": str(int(ds["record"].max()) + 1) if ds.sizes.get("record") else "0"}
    read = records_checksum(table)  # what the run read, named by its records' checksum (a crate's input)
    entry |= {"sha256": read.sha256, "records": read.records, "bytes": read.bytes, "quality_kept": quality,
              "since": since.isoformat() if since else None, "until": until.isoformat() if until else None}
    if table is not None and QUALITY in table.column_names:  # the flags of the records it uses (pedigree)
        entry["quality"] = flag_counts(table.column(QUALITY))
    ctx.inputs.append(entry)
    ctx.log("info", f"load_stream {stream}: {ds.sizes.get('record', 0)} records")
    return ds


_INTERVAL = {"type": "array", "subtype": "temporal-interval", "minItems": 2, "maxItems": 2}
STREAM_SPECS: list[tuple[dict[str, Any], Any, bool]] = [(
    {"id": "load_stream", "summary": "Load a twin's stream history (lake segments plus the live tail)",
     "description": "Records of a stream of the run's twin (or `twin`) whose event time is in [start, end), "
                    "as a dataset along `record` (the stream offset); an array field `x` has the dimensions "
                    "(`record`, `x_sample`).",
     "categories": ["engine", "import"],
     "parameters": [
         {"name": "stream", "schema": {"type": "string"}, "optional": False, "description": "Stream name"},
         {"name": "temporal_extent", "schema": [_INTERVAL, {"type": "null"}], "optional": True, "default": None,
          "description": "[start, end) in event time; open ends as null"},
         {"name": "twin", "schema": [{"type": "string"}, {"type": "null"}], "optional": True, "default": None,
          "description": "Twin name or id; default the run's twin"},
         {"name": "quality", "schema": [{"type": "string", "enum": list(QUALITY_KEPT)}, {"type": "null"}],
          "optional": True, "default": "any",
          "description": "The worst input quality flag kept: `good` (good records only), `suspect` (good and "
                         "suspect: bad records left out) or `any` (every record). The run's quality pedigree "
                         "counts only the records kept."}],
     "returns": {"description": "The records", "schema": {"type": "object", "subtype": "vector-cube"}}},
    load_stream, False)]
