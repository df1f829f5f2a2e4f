"""`/metrics`: the Prometheus text format, rendered by prometheus_client from one Snapshot of the
observations and one StatusReport.

Ray's own metrics API (`ray.util.metrics`) exports from each worker through its node's metrics
agent, on a port of Ray's; these figures are gathered in the driver instead, so that one endpoint of
ours carries them, between passes too.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ray_cdc.observability.models import StatusReport
from ray_cdc.observability.observations import LATENCY_BUCKETS, Histogram, Snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(observed: Snapshot, status: StatusReport) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures(observed, status))
    return generate_latest(registry)


class _Figures:
    def __init__(self, observed: Snapshot, status: StatusReport):
        self._observed, self._status = observed, status

    def collect(self) -> Iterator[Metric]:
        yield from _write_metrics(self._observed)
        yield from _status_metrics(self._status)


def _write_metrics(observed: Snapshot) -> Iterator[Metric]:
    rows = CounterMetricFamily("ray_cdc_rows_written", "rows applied, per destination and table",
                               labels=["destination", "table"])
    for (destination, table), count in sorted(observed.rows.items()):
        rows.add_metric([destination, table], count)
    yield rows
    latency = HistogramMetricFamily("ray_cdc_batch_commit_seconds",
                                    "seconds from writing a table batch to its commit, per destination",
                                    labels=["destination"])
    for destination, histogram in sorted(observed.latency.items()):
        latency.add_metric([destination], _cumulative(histogram), histogram.total)
    yield latency
    completed = CounterMetricFamily("ray_cdc_segments_completed", "segments a destination finished applying",
                                    labels=["destination"])
    for destination, count in sorted(observed.segments_completed.items()):
        completed.add_metric([destination], count)
    yield completed
    rate = GaugeMetricFamily("ray_cdc_rows_per_second", "rows applied per second over the last minute",
                             labels=["destination"])
    for destination, value in sorted(observed.rows_per_second.items()):
        rate.add_metric([destination], value)
    yield rate


def _cumulative(histogram: Histogram) -> list[tuple[str, float]]:
    buckets, running = [], 0
    for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), histogram.counts):
        running += count
        buckets.append((bound, running))
    return buckets


def _status_metrics(status: StatusReport) -> Iterator[Metric]:
    gauges = {name: GaugeMetricFamily(f"ray_cdc_{name}", text, labels=["node"]) for name, text in (
        ("lag_bytes", "durable segment bytes not yet committed by every destination"),
        ("lag_seconds", "age of the oldest segment some destination has not fully committed"),
        ("segments_done", "segment files on disk every destination applied completely"),
        ("segments", "segment files on disk"))}
    for node, figures in sorted(status.nodes.items()):
        for gauge, value in zip(gauges.values(), (figures.lag_bytes, figures.lag_seconds,
                                                  figures.segments_done, figures.segments_total)):
            gauge.add_metric([node], value)
    yield from gauges.values()
    lag = GaugeMetricFamily("ray_cdc_destination_lag_bytes", "durable segment bytes a destination lacks",
                            labels=["destination"])
    for destination, figures in sorted(status.destinations.items()):
        lag.add_metric([destination], figures.lag_bytes)
    yield lag
    if status.dlq_entries is not None:  # unreadable now: no sample rather than a false zero
        yield GaugeMetricFamily("ray_cdc_dlq_entries", "entries in the dead-letter store", value=status.dlq_entries)
