"""Prometheus metrics of the stream hub, read at scrape time: records appended and dropped as duplicates,
the lag of every stream with functions, and the input quality of every stream with checks (records per
flag, failures per check, lateness of the newest batch)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from twinengine.streams.hub import StreamHub

__all__ = ["StreamsCollector"]


class StreamsCollector(Collector):
    def __init__(self, opened: Callable[[], StreamHub | None]) -> None:
        self.opened = opened  # the hub once a request or a loop opened it: a scrape opens no log

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        hub = self.opened()
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
        flags = CounterMetricFamily("twin_stream_quality_records", "Records appended per quality flag",
                                    labels=["stream", "flag"])
        failed = CounterMetricFamily("twin_stream_quality_check_failures", "Records that failed a quality check",
                                     labels=["stream", "check"])
        late = GaugeMetricFamily("twin_stream_lateness_seconds", "Arrival minus newest event time of the newest "
                                 "batch", labels=["stream"])
        for key, counters in sorted(dict(hub.quality).items()):
            for flag, count in zip(("good", "suspect", "bad"), counters.flags, strict=True):
                flags.add_metric([key, flag], float(count))
            for check, count in sorted(counters.checks.items()):
                failed.add_metric([key, check], float(count))
            late.add_metric([key], counters.lateness_s)
        yield flags
        yield failed
        yield late
