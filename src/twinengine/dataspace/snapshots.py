"""The history a transfer under a stream offer serves: the twin's stream as it stood when the provider accepted
the transfer, written once to the lake as an Arrow IPC file of the stream's declared fields (the form
``twin stream send`` and ``POST .../records`` read), checksummed like every lake file.

Taken by the courier outside every unit of work (the records are read in bounded parts, compacted segments first,
then the log: ``streams.checksum.stream_records``), before the start message goes: the data address lists it
like an offered file, a resumed pull reads the same bytes, and the provider keeps exactly what left under which
transfer. A snapshot taken again after a crash finds the one already registered and keeps it.

A live offer's pushed transfer takes parts instead (``take_part``): what arrived since the last part, each a file
named by its offsets, so that the parts of one transfer follow each other without a gap or a repeat.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import select

from twinengine.auth.principal import SYSTEM
from twinengine.dataspace.connector import Connector
from twinengine.dataspace.models import TransferProcess
from twinengine.dataspace.protocol import Role
from twinengine.dataspace.transfer import offer_of
from twinengine.lake.models import Did

__all__ = ["MEDIA_TYPE", "SCOPE", "Part", "bounds", "file_name", "sources", "take", "take_part"]

SCOPE = "dataspace"  # the lake scope of what stream offers served
MEDIA_TYPE = "application/vnd.apache.arrow.file"
META_KEY = "served"  # a snapshot's meta: the offer, transfer, twin, stream and offsets it holds


def file_name(stream: str) -> str:
    """The snapshot's name in the data address (``gauges.arrow``)."""
    return f"{stream}.arrow"


@dataclass
class _Source:
    offer_id: str
    provider_pid: str
    stream: str
    twin_id: str
    twin_name: str
    declared: Any
    endpoint: str
    window: dict[str, Any] | None = None  # the offer's: since, until (ISO 8601), last (seconds), key, quality


def _source(connector: Connector, transfer_id: int) -> _Source:
    """What provider transfer ``transfer_id`` serves of its stream offer."""
    from twinengine.dataspace.dataplane import default_endpoint
    from twinengine.twins.models import Twin
    from twinengine.twins.service import manifest_for

    with connector.db.session(readonly=True) as session:
        row = session.get(TransferProcess, transfer_id)
        if row is None or row.role != Role.PROVIDER:
            raise LookupError(f"no provider transfer {transfer_id}")
        offer = offer_of(session, row)
        if offer is None or offer.stream is None or offer.owner_twin is None:
            raise LookupError(f"transfer {row.provider_pid} is not under a stream offer")
        twin = session.get(Twin, offer.owner_twin)
        if twin is None:
            raise LookupError(f"twin {offer.owner_twin} of offer {offer.id} is gone")
        declared = manifest_for(session, twin).streams.get(offer.stream)
        if declared is None:
            raise LookupError(f"twin {twin.name} no longer has a stream {offer.stream}")
        assert row.provider_pid is not None
        found = _Source(offer.id, row.provider_pid, offer.stream, twin.id, twin.name, declared,
                        default_endpoint(session, connector), offer.window)
    return found


def _taken(connector: Connector, did: str) -> bool:
    """Whether ``did`` is in the lake whole already (written by an earlier try of the same step)."""
    scope, name = did.split(":", 1)
    with connector.db.session(readonly=True) as session:
        return session.scalar(select(Did.sha256).where(Did.scope == scope, Did.name == name)) is not None


def take(connector: Connector, transfer_id: int) -> str:
    """Write the stream history of provider transfer ``transfer_id``'s offer to the lake (once); its DID."""
    source = _source(connector, transfer_id)
    did = f"{SCOPE}:transfers/{source.provider_pid.rsplit(':', 1)[-1]}/{file_name(source.stream)}"
    if not _taken(connector, did):
        _store(connector, source, did, start=0, end=None)
    return did


@dataclass
class Part:
    """One part of a live stream's push: the records at offsets [start, end) as a lake file."""

    did: str
    name: str
    start: int
    end: int


def take_part(connector: Connector, transfer_id: int, start: int) -> Part | None:
    """The records a live transfer has not pushed yet (offsets from ``start`` to the stream's end now), written to
    the lake as one part; None when none arrived. Taken again after a crash, a part with the same offsets is
    found and kept."""
    from twinengine.streams.hub import stream_key

    source = _source(connector, transfer_id)
    if connector.streams is None:
        raise LookupError("this engine's streams are not open to the data space")
    hub, _sink = connector.streams()
    end = hub.end(stream_key(source.twin_id, source.stream))
    if end <= start:
        return None
    name = f"{source.stream}-{start:012d}-{end:012d}.arrow"
    did = f"{SCOPE}:transfers/{source.provider_pid.rsplit(':', 1)[-1]}/{name}"
    if not _taken(connector, did):
        _store(connector, source, did, start=start, end=end)
    return Part(did=did, name=name, start=start, end=end)


def bounds(window: dict[str, Any] | None, *, now: datetime) -> tuple[datetime | None, datetime | None]:
    """The times a window keeps, [since, until) (None: unbounded); a rolling one (``last``) ends ``now``."""
    if not window:
        return None, None
    if window.get("last") is not None:
        return now - timedelta(seconds=float(window["last"])), None
    since, until = window.get("since"), window.get("until")
    return (datetime.fromisoformat(since) if since else None, datetime.fromisoformat(until) if until else None)


def _store(connector: Connector, source: _Source, did: str, *, start: int, end: int | None) -> tuple[int, int]:
    """Records [start, end) (end None: the stream's end now) written to the lake as ``did``, those in the
    offer's window only (a live transfer's later parts: those at or after its ``since``); (records, end)."""
    from twinengine.lake.uploads import upload_file
    from twinengine.streams.hub import stream_key

    if connector.streams is None:
        raise LookupError("this engine's streams are not open to the data space")
    hub, sink = connector.streams()
    end = hub.end(stream_key(source.twin_id, source.stream)) if end is None else end
    handle, path = tempfile.mkstemp(prefix="snapshot-", suffix=".arrow", dir=connector.settings.data_dir)
    os.close(handle)
    since, until = bounds(source.window, now=datetime.now(UTC)) if start == 0 or not (source.window or {}).get(
        "last") else (None, None)  # a rolling window's live parts after the first are new readings
    try:
        window = source.window or {}
        records = _write(connector, hub, sink, source.declared, source.twin_id, source.stream, start, end, path,
                         since=since, until=until, keys=sources(window), quality=window.get("quality"),
                         fields=window.get("fields"))
        meta: dict[str, Any] = {META_KEY: {"offer": source.offer_id, "transfer": source.provider_pid,
                                           "twin": source.twin_name, "stream": source.stream,
                                           "offsets": [start, end], "records": records}}
        if source.window:
            meta[META_KEY]["window"] = {"since": since.isoformat() if since else None,
                                        "until": until.isoformat() if until else None,
                                        **{k: window[k] for k in ("key", "keys", "quality", "fields")
                                           if window.get(k) is not None}}
        upload_file(connector.db, connector.lake, principal=SYSTEM, path=Path(path), did=did,
                    endpoint=source.endpoint, media_type=MEDIA_TYPE, meta=meta)
    finally:
        os.unlink(path)
    return records, end


def sources(window: dict[str, Any]) -> list[str] | None:
    """The key values a window keeps (its one ``key`` or its ``keys``), or None for every source."""
    if window.get("keys"):
        return list(window["keys"])
    return [window["key"]] if window.get("key") is not None else None


def _values(keys: list[str], kind: pa.DataType) -> pa.Array:
    """The key values as the key field's type (a number key offered as text); those that are none of it match
    no reading."""
    import pyarrow.compute as pc

    texts = pa.array(keys, type=pa.string())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return texts.cast(kind)
    kept = []
    for text in texts:
        try:
            kept.append(pc.cast(text, kind))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return pa.array([v.as_py() for v in kept], type=kind)


def _write(connector: Connector, hub: Any, sink: Any, declared: Any, twin_id: str, stream: str, start: int,
           end: int, path: str, *, since: datetime | None = None, until: datetime | None = None,
           keys: list[str] | None = None, quality: list[str] | None = None, fields: list[str] | None = None) -> int:
    """The records at offsets [start, end), declared fields only, into the Arrow IPC file ``path``; how many.
    With ``since``/``until``, only those whose time field is in [since, until); with ``keys``, those of these
    sources (the stream's key field); with ``quality``, those its checks flagged so; with ``fields``, only those
    fields (chosen after the readings are, so a key left out still chooses)."""
    import pyarrow.compute as pc

    from twinengine.streams.checksum import stream_records
    from twinengine.streams.records import arrow_schema

    schema = arrow_schema(declared)
    time_type = schema.field(declared.time_field).type
    kept = pa.schema([f for f in schema if f.name in fields]) if fields is not None else schema
    chosen = _values(keys, schema.field(declared.key).type) if keys is not None else None  # once, not per part
    records = 0
    with connector.db.session(readonly=True) as session, pa.OSFile(path, "wb") as out, \
            pa.ipc.new_file(out, kept) as writer:
        for part in stream_records(session, hub, sink, twin_id=twin_id, stream=stream, start=start, end=end,
                                   quality=quality):
            table = part.select(schema.names).cast(schema)
            if chosen is not None:
                table = table.filter(pc.fill_null(pc.is_in(table.column(declared.key), value_set=chosen), False))
            times = table.column(declared.time_field)
            if since is not None:
                table = table.filter(pc.greater_equal(times, pa.scalar(since, type=time_type)))
                times = table.column(declared.time_field)
            if until is not None:
                table = table.filter(pc.less(times, pa.scalar(until, type=time_type)))
            writer.write_table(table.select(kept.names))
            records += table.num_rows
    return records
