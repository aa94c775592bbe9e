"""The streams part of the Python SDK, reached as ``client.streams``: append, read, follow, bind, buffers."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pydantic import TypeAdapter

from twinengine._html import table
from twinengine.errors import EngineUnavailable, error_from_payload
from twinengine.quality.indicators import QualityReport
from twinengine.streams.schemas import (
    AppendAck,
    BindingRead,
    BufferFillRead,
    BufferRead,
    DeadLetterRead,
    FunctionEvent,
    FunctionRead,
    FunctionResumed,
    ProducerRead,
    RecordPage,
    StreamRead,
)
from twinengine.timeutil import TimeLike, iso_instant
from twinengine.twins.schemas import RevisionRead

if TYPE_CHECKING:
    import pandas as pd

    from twinengine.transport import Transport

__all__ = ["Records", "StreamsClient", "parse_sse"]

List = list  # the method named list shadows the builtin inside the class

ARROW = "application/vnd.apache.arrow.stream"


def _seg(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _default(value: Any) -> Any:
    if isinstance(value, datetime) or (type(value).__module__ == "numpy" and getattr(value, "dtype", None) is not None
                                       and value.dtype.kind == "M" and value.ndim == 0):
        return iso_instant(value, "records")
    if type(value).__module__ == "numpy" and getattr(value, "dtype", None) is not None and value.dtype.kind in "biuf":
        return value.tolist()  # an array field's samples (NaN as the JSON token NaN, read back as NaN)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


class Records(RecordPage):
    """A page of stream records: ``to_pandas()`` gives one row per record."""

    def to_pandas(self) -> pd.DataFrame:
        """Records as rows; ``time`` and ``_arrival`` columns as UTC datetimes."""
        import pandas as pd

        frame = pd.DataFrame(self.items)
        for column in ("time", "_arrival"):
            if column in frame.columns:
                frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce", format="mixed")
        return frame

    def _repr_html_(self) -> str:
        columns = list(dict.fromkeys(k for item in self.items[:50] for k in item))
        rows = ([item.get(c) for c in columns] for item in self.items[:50])
        more = f"; first 50 of {self.count}" if self.count > 50 else ""
        return table(f"{self.stream}: {self.count} records{more}", columns, rows, caption=self.twin_id)


def parse_sse(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Server-Sent Events from text lines: each event as {"event", "id", "data"} (comments skipped)."""
    event: dict[str, str] = {}
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield {**event, "data": "\n".join(data)}
            event, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name in ("event", "id"):
            event[name] = value
    if data:
        yield {**event, "data": "\n".join(data)}


class StreamsClient:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _path(self, twin: str, stream: str | None = None, tail: str = "") -> str:
        base = f"/api/v1/twins/{_seg(twin)}"
        return base + (f"/streams/{_seg(stream)}" if stream else "") + tail

    def list(self, twin: str) -> List[StreamRead]:
        data = self._transport.request("GET", self._path(twin, tail="/streams")).json()
        return TypeAdapter(List[StreamRead]).validate_python(data)

    def append(self, twin: str, stream: str, records: Sequence[Mapping[str, Any]] | pa.Table, *,
               producer: str | None = None, seq: int | None = None) -> AppendAck:
        """Append a batch (dicts go as JSON lines, a pyarrow Table as Arrow IPC); returns once durable."""
        if isinstance(records, pa.Table):
            body, kind = _ipc(records), ARROW
        else:
            body = "".join(json.dumps(r, default=_default) + "\n" for r in records).encode()
            kind = "application/x-ndjson"
        params = {k: v for k, v in {"producer": producer, "seq": seq}.items() if v is not None}
        response = self._transport.request("POST", self._path(twin, stream, "/records"), content=body,
                                           params=params, headers={"Content-Type": kind})
        return AppendAck.model_validate(response.json())

    def producer(self, twin: str, stream: str, producer: str) -> ProducerRead:
        """Where ``producer``'s sequence numbers stand on the stream: resume appending at ``.next_seq``."""
        return self._transport.get(ProducerRead, self._path(twin, stream, f"/producers/{_seg(producer)}"))

    def read(self, twin: str, stream: str, *, start: int | None = None, last: int | None = None,
             since: TimeLike | None = None, until: TimeLike | None = None, limit: int = 1000,
             quality: Sequence[str] | None = None) -> Records:
        """A page of records (each with its ``_quality`` flag and failed ``_checks``; ``quality=["good"]``
        keeps only those flags); ``.to_pandas()`` for a DataFrame (``read_arrow`` for an Arrow table)."""
        return self._transport.get(Records, self._path(twin, stream, "/records"), start=start, last=last,
                                   since=iso_instant(since, "since"),
                                   until=iso_instant(until, "until"), limit=limit,
                                   quality=list(quality) if quality else None)

    def read_arrow(self, twin: str, stream: str, *, start: int | None = None, last: int | None = None,
                   since: TimeLike | None = None, until: TimeLike | None = None, limit: int = 100_000,
                   quality: Sequence[str] | None = None) -> pa.Table:
        params = {k: v for k, v in {"start": start, "last": last, "since": iso_instant(since, "since"),
                                    "until": iso_instant(until, "until"), "limit": limit,
                                    "quality": list(quality) if quality else None}.items()
                  if v is not None}
        response = self._transport.request("GET", self._path(twin, stream, "/records"), params=params,
                                           headers={"Accept": ARROW})
        if not response.content:
            return pa.table({})
        return pa.ipc.open_stream(response.content).read_all()

    def _events(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, str]]:
        query = {k: v for k, v in params.items() if v is not None}
        try:
            with self._transport.stream("GET", path, params=query, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_payload(response.status_code, response.json())
                yield from parse_sse(response.iter_lines())
        except Exception as exc:
            if type(exc).__name__ in ("ConnectError", "ReadError", "RemoteProtocolError"):
                raise EngineUnavailable(f"lost the event stream: {exc}") from exc
            raise

    def follow(self, twin: str, stream: str, *, start: int | None = None, count: int | None = None,
               idle: float | None = None) -> Iterator[dict[str, Any]]:
        """New records as they become durable (from ``start`` if given), until ``count`` or ``idle`` seconds."""
        for event in self._events(self._path(twin, stream, "/events"), {"start": start, "count": count,
                                                                         "idle": idle}):
            yield json.loads(event["data"])

    def state_events(self, twin: str, *, after: int | None = None, count: int | None = None,
                     idle: float | None = None) -> Iterator[RevisionRead]:
        for event in self._events(self._path(twin, tail="/state/events"), {"after": after, "count": count,
                                                                            "idle": idle}):
            yield RevisionRead.model_validate_json(event["data"])

    def bind_mqtt(self, twin: str, stream: str, topic: str) -> BindingRead:
        return self._transport.send(BindingRead, "PUT", self._path(twin, stream, "/binding"), {"mqtt_topic": topic})

    def unbind_mqtt(self, twin: str, stream: str) -> None:
        self._transport.request("DELETE", self._path(twin, stream, "/binding"))

    def quality(self, twin: str, stream: str, *, start: TimeLike | None = None, end: TimeLike | None = None,
                window: str | None = None) -> QualityReport:
        """Input quality per window of event time: flag shares, failed checks, lateness, completeness."""
        return self._transport.get(QualityReport, self._path(twin, stream, "/quality"),
                                   **{"from": iso_instant(start, "start"),
                                      "to": iso_instant(end, "end"), "window": window})

    def functions(self, twin: str) -> List[FunctionRead]:
        data = self._transport.request("GET", self._path(twin, tail="/functions")).json()
        return TypeAdapter(List[FunctionRead]).validate_python(data)

    def events(self, twin: str, *, last: int = 100) -> List[FunctionEvent]:
        """Events the twin's functions emitted (``ctx.emit``) and workflow runs they asked for."""
        data = self._transport.request("GET", self._path(twin, tail="/functions/events"), params={"last": last}).json()
        return TypeAdapter(List[FunctionEvent]).validate_python(data)

    def dead_letters(self, twin: str, *, function: str | None = None, limit: int = 100) -> List[DeadLetterRead]:
        params = {k: v for k, v in {"function": function, "limit": limit}.items() if v is not None}
        data = self._transport.request("GET", self._path(twin, tail="/functions/dead-letters"), params=params).json()
        return TypeAdapter(List[DeadLetterRead]).validate_python(data)

    def resume_function(self, twin: str, function: str) -> FunctionResumed:
        """Resume a paused function: the records of the failed run that paused it are handled again."""
        data = self._transport.request("POST", self._path(twin, tail=f"/functions/{_seg(function)}/resume"))
        return FunctionResumed.model_validate(data.json())

    # -- retraining buffers ------------------------------------------------------------------------

    def create_buffer(self, twin: str, name: str, stream: str, *, policy: str, records: int | None = None,
                      seconds: float | None = None, discard_after: bool = True,
                      exclude: Sequence[str] | None = None) -> BufferRead:
        """A retraining buffer; ``exclude=["bad"]`` leaves records with those quality flags out of fills."""
        body = {"name": name, "stream": stream, "policy": policy, "records": records, "seconds": seconds,
                "discard_after": discard_after, "quality": {"exclude": list(exclude)} if exclude else None}
        return self._transport.send(BufferRead, "POST", self._path(twin, tail="/buffers"),
                                    {k: v for k, v in body.items() if v is not None})

    def buffers(self, twin: str) -> List[BufferRead]:
        data = self._transport.request("GET", self._path(twin, tail="/buffers")).json()
        return TypeAdapter(List[BufferRead]).validate_python(data)

    def buffer(self, twin: str, name: str) -> BufferRead:
        return self._transport.get(BufferRead, self._path(twin, tail=f"/buffers/{_seg(name)}"))

    def seal_buffer(self, twin: str, name: str) -> BufferFillRead:
        return self._transport.send(BufferFillRead, "POST", self._path(twin, tail=f"/buffers/{_seg(name)}/seal"), {})

    def fill_records(self, twin: str, name: str, fill: int) -> pa.Table:
        response = self._transport.request("GET", self._path(twin, tail=f"/buffers/{_seg(name)}/fills/{fill}/records"),
                                           headers={"Accept": ARROW})
        return pa.ipc.open_stream(response.content).read_all() if response.content else pa.table({})

    def consume_fill(self, twin: str, name: str, fill: int, *, success: bool = True,
                     note: str | None = None) -> BufferFillRead:
        return self._transport.send(BufferFillRead, "POST",
                                    self._path(twin, tail=f"/buffers/{_seg(name)}/fills/{fill}/consumed"),
                                    {"success": success, "note": note})
