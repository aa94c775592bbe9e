"""Real-time data from the physical twin: durable streams, ingestion, functions on arrival, buffers.

The pieces other packages use: the hub a runtime holds (``runtime.streams``), the log backend contract,
what a function on arrival receives, and the seams to the lake (``SegmentSink``, ``load_stream``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twinengine.streams.backends.base import StreamLog
    from twinengine.streams.compaction import ClosedSegment, SegmentSink, load_stream
    from twinengine.streams.functions import FunctionContext
    from twinengine.streams.hub import AppendResult, StreamHub, stream_key

__all__ = ["AppendResult", "ClosedSegment", "FunctionContext", "SegmentSink", "StreamHub", "StreamLog",
           "load_stream", "stream_key"]

# Imported on first use: the streams' tables (which migrations import) need none of these (pyarrow, pandas).
_WHERE = {"StreamLog": "backends.base", "ClosedSegment": "compaction", "SegmentSink": "compaction",
          "load_stream": "compaction", "FunctionContext": "functions", "AppendResult": "hub", "StreamHub": "hub",
          "stream_key": "hub"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"twinengine.streams.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'twinengine.streams' has no attribute {name!r}")
