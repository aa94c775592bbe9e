"""Prometheus metrics of the stream hub, read at scrape time: records appended and dropped as duplicates,
and the lag of every stream with functions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from twinengine.runtime import Runtime

__all__ = ["StreamsCollector"]


class StreamsCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        hub = self.runtime._streams
        if hub is None:  # no stream touched yet: nothing to say, and no reason to open the log
            return
        appended = CounterMetricFamily("twin_stream_records_appended", "Records made durable in stream logs")
        appended.add_metric([], float(hub.stats["records"]))
        yield appended
        dropped = CounterMetricFamily("twin_stream_records_duplicate", "Records dropped as producer repeats")
        dropped.add_metric([], float(hub.stats["duplicates"]))
        yield dropped
        lag = GaugeMetricFamily("twin_stream_lag_records", "Records the slowest function has not handled",
                                labels=["stream"])
        for key in sorted(hub.consumed_keys()):
            lag.add_metric([key], float(hub.lag(key)))
        yield lag
