"""Records a function on arrival publishes (``ctx.publish``) to another stream of its own twin.

The worker only sends them back as data; the engine checks each call's records against the target stream's
declaration as the call returns (a bad record fails that call, like a bad state update), then appends a
slice's records with the same path as ingestion (quality flags, durability) before the transaction that
moves the function's checkpoint. So records are never lost; a crash between the append and that transaction
runs the calls again and may append their records twice (at-least-once, as for any producer without
sequence numbers).

A function may publish only to the streams it declares under ``publishes``: never to the stream it runs on,
and the manifest refuses a cycle of streams through functions, so published records cannot wake their own
function forever. The target is always a stream of the consumer's twin: no twin is named, none can be.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from twinengine.catalog.manifest import FunctionSpec, Manifest, Stream
from twinengine.errors import ValidationFailed
from twinengine.streams import records as stream_records
from twinengine.streams.hub import StreamHub, stream_key
from twinengine.streams.service import quality_plan

__all__ = ["MAX_PUBLISHED", "Published", "append_published", "check_published"]

MAX_PUBLISHED = 100_000  # records one call may publish
Published = list[tuple[str, Stream, pa.Table]]  # (target stream, its declaration, checked records) in order


def check_published(manifest: Manifest, spec: FunctionSpec, items: list[Any]) -> Published:
    """One call's ``ctx.publish`` requests, each checked against its target's declaration; raises ValueError
    naming the stream, record and field of the first problems."""
    out: Published = []
    total = 0
    for item in items:
        if not (isinstance(item, Mapping) and isinstance(item.get("stream"), str)
                and isinstance(item.get("records"), list)):
            raise ValueError("publish: malformed request (a stream name and a list of records)")
        target, batch = str(item["stream"]), item["records"]
        if target not in spec.publishes:
            declared = ", ".join(spec.publishes) or "none"
            why = " (the stream it runs on)" if target == spec.stream else ""
            raise ValueError(f"publish: {target!r}{why} is not a stream this function publishes to "
                             f"(publishes: {declared})")
        declaration = manifest.streams.get(target)
        if declaration is None:  # the manifest's check refuses this; a replaced manifest may not have it
            raise ValueError(f"publish: {manifest.ref} declares no stream {target!r}")
        total += len(batch)
        if total > MAX_PUBLISHED:
            raise ValueError(f"publish: more than {MAX_PUBLISHED} records in one call")
        if not batch:
            continue
        try:
            table = stream_records.check_records(declaration, batch)
        except ValidationFailed as exc:
            raise ValueError(f"publish to {target!r}: " + "; ".join(str(p) for p in exc.problems)) from None
        out.append((target, declaration, table))
    return out


def append_published(hub: StreamHub, twin_id: str, published: Published) -> int:
    """Append checked records, one append per target stream in publishing order (each returns once durable,
    flagged by the target's quality checks); returns how many records were appended."""
    by_stream: dict[str, tuple[Stream, list[pa.Table]]] = {}
    for target, declaration, table in published:
        by_stream.setdefault(target, (declaration, []))[1].append(table)
    count = 0
    for target, (declaration, tables) in by_stream.items():
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        hub.append(stream_key(twin_id, target), table, time_field=declaration.time_field,
                   quality=quality_plan(declaration))
        count += table.num_rows
    return count
