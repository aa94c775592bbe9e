"""One appended batch as bytes in the log: a small JSON header (offsets, times, producer) and Arrow IPC.

The header is readable without decoding the records, so recovery and indexing stay cheap. Record offsets
are per stream and gap-free: a batch holds records ``base .. base + count - 1``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import pyarrow as pa

__all__ = ["BatchHeader", "decode", "decode_header", "encode", "header_complete"]

MAGIC = b"TWB1"
_LEN = struct.Struct("<I")


@dataclass(frozen=True)
class BatchHeader:
    base: int  # offset of the first record
    count: int
    arrival_us: int  # when the engine accepted the batch (µs since the epoch, UTC)
    tmin_us: int  # earliest and latest event time in the batch
    tmax_us: int
    producer: str | None = None
    seq: int | None = None  # producer sequence number of the first record

    @property
    def end(self) -> int:
        return self.base + self.count

    def to_json(self) -> bytes:
        body: dict[str, object] = {"base": self.base, "count": self.count, "arrival": self.arrival_us,
                                   "tmin": self.tmin_us, "tmax": self.tmax_us}
        if self.producer is not None:
            body.update(producer=self.producer, seq=self.seq)
        return json.dumps(body, separators=(",", ":")).encode()


def encode(header: BatchHeader, table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    head = header.to_json()
    return b"".join((MAGIC, _LEN.pack(len(head)), head, sink.getvalue().to_pybytes()))


def header_complete(payload: bytes) -> bool:
    """Does this (possibly truncated) payload hold the whole header?"""
    return len(payload) >= 8 and len(payload) >= 8 + _LEN.unpack_from(payload, 4)[0]


def decode_header(payload: bytes) -> BatchHeader:
    if payload[:4] != MAGIC:
        raise ValueError("not a stream batch")
    (size,) = _LEN.unpack_from(payload, 4)
    raw = json.loads(payload[8: 8 + size])
    return BatchHeader(base=raw["base"], count=raw["count"], arrival_us=raw["arrival"], tmin_us=raw["tmin"],
                       tmax_us=raw["tmax"], producer=raw.get("producer"), seq=raw.get("seq"))


def decode(payload: bytes) -> tuple[BatchHeader, pa.Table]:
    header = decode_header(payload)
    (size,) = _LEN.unpack_from(payload, 4)
    table = pa.ipc.open_stream(pa.py_buffer(payload)[8 + size:]).read_all()
    return header, table
