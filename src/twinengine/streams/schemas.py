"""Request and response models of the streams API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from twinengine.catalog.manifest import FunctionTrigger, StreamField
from twinengine.quality.spec import Check, QualityPolicy

__all__ = [
    "AppendAck",
    "BindingRead",
    "BindingWrite",
    "BufferCreate",
    "BufferFillRead",
    "BufferRead",
    "DeadLetterRead",
    "FunctionEvent",
    "FunctionRead",
    "FunctionResumed",
    "RecordPage",
    "StreamRead",
]

TOPIC = r"^[^#+\x00]{1,255}$"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AppendAck(BaseModel):
    """Sent once the records are durable in the stream's log."""

    twin_id: str
    stream: str
    first_offset: int = Field(description="Offset of the first record appended.")
    count: int = Field(description="Records appended.")
    duplicates: int = Field(description="Records dropped as repeats of a producer's sequence numbers.")
    next_offset: int


class ProducerRead(BaseModel):
    """Where a producer's sequence stands on a stream: send the next record as ``next_seq``."""

    twin_id: str
    stream: str
    producer: str
    last_seq: int | None = Field(description="Highest sequence number appended (null: none yet).")
    next_seq: int = Field(description="The sequence number the producer's next record takes.")


class RecordPage(BaseModel):
    # A float field may hold NaN and ±Infinity (the Arrow log keeps them); JSON has no such numbers, so they are
    # written as the tokens NaN, Infinity and -Infinity (read by Python's json and the SDK), never as null.
    model_config = ConfigDict(ser_json_inf_nan="constants")

    twin_id: str
    stream: str
    count: int
    next_offset: int = Field(description="Pass as `start` to read on.")
    end_offset: int = Field(description="Offset the next appended record will get.")
    items: list[dict[str, Any]] = Field(description="Records with `_offset` and `_arrival` (engine time).")


class StreamRead(BaseModel):
    name: str
    description: str | None
    time_field: str
    key: str | None
    fields: dict[str, StreamField]
    quality: list[Check] = Field(default_factory=list, description="The stream's declared input quality checks.")
    end_offset: int
    lag: int = Field(description="Records the slowest function has not handled yet.")
    mqtt_topic: str | None


class BindingWrite(_Input):
    mqtt_topic: str = Field(pattern=TOPIC, description="MQTT topic (no wildcards) whose messages feed the stream.")


class BindingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    twin_id: str
    stream: str
    mqtt_topic: str
    created_by: str
    created_at: datetime


class FunctionRead(BaseModel):
    name: str
    stream: str
    entrypoint: str
    trigger: FunctionTrigger
    publishes: list[str] = Field(default_factory=list, description="Streams of the twin it may append to.")
    joins: list[str] = Field(default_factory=list, description="Streams joined to its stream on event time.")
    offset: int = Field(description="Records below this offset were handled.")
    lag: int
    calls: int
    dead_letters: int
    paused: bool = Field(default=False, description="Paused after a run of dead-lettered batches; resume it.")
    paused_reason: str | None = Field(default=None, description="Why it was paused: the last failure, where.")
    paused_at: datetime | None = Field(default=None, description="When it was paused (UTC); null while it runs.")
    held: str | None = Field(default=None, description="Why it waits though it has records: the twin's owner's "
                                                       "compute quota is used up (its records are kept; it goes "
                                                       "on once the quota allows).")


class FunctionResumed(BaseModel):
    function: str
    offset: int = Field(description="Where it takes the records again: the first of the failed run.")
    replayed: int = Field(description="Dead letters of that run, dropped: their records are handled again.")


class FunctionEvent(BaseModel):
    offset: int
    time: datetime
    function: str
    kind: str = Field(description="What the function emitted, or workflow.requested for start_workflow.")
    data: dict[str, Any]


class DeadLetterRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    twin_id: str
    function: str
    stream: str
    first_offset: int
    last_offset: int
    attempts: int
    error: str
    created_at: datetime


class BufferCreate(_Input):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
    stream: str = Field(max_length=64)
    policy: Literal["count", "time", "external"]
    records: int | None = Field(default=None, ge=1, le=10**12, description="count policy: seal at this many.")
    seconds: float | None = Field(default=None, gt=0, le=10**8, description="time policy: seal after this long.")
    discard_after: bool = Field(default=True, description="Discard a fill once a retraining consumed it.")
    quality: QualityPolicy = Field(default_factory=QualityPolicy,
                                   description="Records left out of fills by quality flag, e.g. {exclude: [bad]}.")


class BufferFillRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    buffer_id: int
    twin_id: str
    stream: str
    start_offset: int
    end_offset: int
    status: str
    reason: str
    sealed_at: datetime
    consumed_at: datetime | None
    note: str | None

    @property
    def records(self) -> int:
        return self.end_offset - self.start_offset


class BufferRead(BaseModel):
    id: int
    twin_id: str
    name: str
    stream: str
    policy: str
    records: int | None
    seconds: float | None
    discard_after: bool
    quality: QualityPolicy
    start_offset: int
    filled: int = Field(description="Records in the fill in progress.")
    opened_at: datetime
    fills: list[BufferFillRead]
