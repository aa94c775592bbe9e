"""Real-time data from the physical twin: durable streams, ingestion, functions on arrival, buffers.

The pieces other packages use: the hub a runtime holds (``runtime.streams``), the log backend contract,
what a function on arrival receives, and the seams to the lake (``SegmentSink``, ``load_stream``).
"""

from twinengine.streams.backends.base import StreamLog
from twinengine.streams.compaction import ClosedSegment, SegmentSink, load_stream
from twinengine.streams.functions import FunctionContext
from twinengine.streams.hub import AppendResult, StreamHub, stream_key

__all__ = ["AppendResult", "ClosedSegment", "FunctionContext", "SegmentSink", "StreamHub", "StreamLog",
           "load_stream", "stream_key"]
