"""Observations accumulated from the writers' reports, and their Prometheus rendering."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.commitlog.workload import demo_tables, generate
from ray_cdc.destinations.clickhouse import ClickHouseDestination
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.observability.metrics import render
from ray_cdc.observability.models import DestinationStatus, NodeStatus, StatusReport
from ray_cdc.observability.observations import LATENCY_BUCKETS, RATE_WINDOW, Observations
from ray_cdc.observability.observed import table_name
from ray_cdc.offsets import Offset
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.registry import SchemaRegistry
from ray_cdc.snapshot.progress import range_offset
from ray_cdc.snapshot.ranges import TokenRange


class Clock:
    """A settable time source (the observations take any callable)."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rows_commits_and_latencies_accumulate_per_destination_and_table():
    obs = Observations()
    obs.written("pg", "ks.a", 10, 0.004)
    obs.written("pg", "ks.a", 5, 0.3)
    obs.written("pg", "ks.b", 7, 100.0)
    obs.written("ch", "ks.a", 1, 0.02)
    snap = obs.snapshot()
    assert snap.rows == {("pg", "ks.a"): 15, ("pg", "ks.b"): 7, ("ch", "ks.a"): 1}
    assert snap.commits == {"pg": 3, "ch": 1}
    counts = snap.latency["pg"].counts
    assert counts[0] == 1 and counts[LATENCY_BUCKETS.index(0.5)] == 1 and counts[-1] == 1
    assert snap.latency["pg"].total == pytest.approx(100.304)


def test_rows_per_second_covers_the_last_window():
    clock = Clock()
    obs = Observations(clock)
    clock.now += 10
    obs.written("pg", "ks.a", 500, 0.1)
    assert obs.snapshot().rows_per_second["pg"] == pytest.approx(50.0)  # young: over its 10 s of life
    clock.now += RATE_WINDOW - 5
    obs.written("pg", "ks.a", 600, 0.1)
    assert obs.snapshot().rows_per_second["pg"] == pytest.approx(1100 / RATE_WINDOW)
    clock.now += 10  # the first batch left the window
    assert obs.snapshot().rows_per_second["pg"] == pytest.approx(600 / RATE_WINDOW)


def test_committed_offsets_keep_the_furthest_and_count_completed_segments():
    obs = Observations()
    obs.committed("pg", [Offset("a", 1, 100, True), Offset("a", 2, 50)], at_start=True)  # found at start
    obs.committed("pg", [Offset("a", 2, 80)])
    obs.committed("pg", [Offset("a", 2, 60)])  # a late report of an older commit
    assert obs.snapshot().committed["pg"]["a/2"] == Offset("a", 2, 80)
    assert obs.snapshot().segments_completed == {}
    obs.committed("pg", [Offset("a", 2, 90, True), Offset("a", 3, 10, True)])
    whole = range_offset("ks.t", TokenRange(-10, 10), 10, completed=True)
    obs.committed("pg", [whole])  # a snapshot range is not a segment
    snap = obs.snapshot()
    assert snap.segments_completed == {"pg": 2}
    assert snap.committed["pg"]["a/2"].completed and snap.committed["pg"][whole.partition_id] == whole


def _status() -> StatusReport:
    return StatusReport(generated_at=1.0, phase="running", pass_id="x-1", passes=1,
                        nodes={"a": NodeStatus(segments_total=3, segments_done=1, lag_bytes=2048,
                                               lag_seconds=7.5, segments=[])},
                        destinations={"pg": DestinationStatus(rows_written=22, rows_per_second=2.0, commits=3,
                                                              lag_bytes=1024)},
                        dlq_entries=4, snapshot={})


def _samples(text: bytes) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def test_rendering_has_counters_histograms_and_gauges():
    obs = Observations()
    obs.written("pg", "ks.a", 15, 0.004)
    obs.written("pg", "ks.a", 7, 0.3)
    obs.committed("pg", [Offset("a", 1, 5)], at_start=True)
    obs.committed("pg", [Offset("a", 1, 9, True)])
    samples = _samples(render(obs.snapshot(), _status()))
    assert samples[("ray_cdc_rows_written_total", (("destination", "pg"), ("table", "ks.a")))] == 22
    bucket = "ray_cdc_batch_commit_seconds_bucket"
    assert samples[(bucket, (("destination", "pg"), ("le", "0.005")))] == 1
    assert samples[(bucket, (("destination", "pg"), ("le", "0.25")))] == 1
    assert samples[(bucket, (("destination", "pg"), ("le", "0.5")))] == 2  # cumulative
    assert samples[(bucket, (("destination", "pg"), ("le", "+Inf")))] == 2
    assert samples[("ray_cdc_batch_commit_seconds_count", (("destination", "pg"),))] == 2
    assert samples[("ray_cdc_batch_commit_seconds_sum", (("destination", "pg"),))] == pytest.approx(0.304)
    assert samples[("ray_cdc_segments_completed_total", (("destination", "pg"),))] == 1
    assert samples[("ray_cdc_lag_bytes", (("node", "a"),))] == 2048
    assert samples[("ray_cdc_lag_seconds", (("node", "a"),))] == 7.5
    assert samples[("ray_cdc_segments_done", (("node", "a"),))] == 1
    assert samples[("ray_cdc_segments", (("node", "a"),))] == 3
    assert samples[("ray_cdc_destination_lag_bytes", (("destination", "pg"),))] == 1024
    assert samples[("ray_cdc_dlq_entries", ())] == 4


def test_an_unreadable_dlq_is_no_sample_rather_than_zero():
    status = _status().model_copy(update={"dlq_entries": None})
    assert not any(name == "ray_cdc_dlq_entries" for name, _ in _samples(render(Observations().snapshot(), status)))


def test_table_names_of_what_write_and_write_prepared_are_given(tmp_path):
    """`write` gets a TableSchema; `write_prepared` each destination's own prepared batch."""
    summary = generate(tmp_path, rows=200, tables=demo_tables(), seed=3)
    reader = CommitLogReader(SchemaRegistry(load_cql_schema(tmp_path / "schema.cql")))
    table, batch = next(iter(reader.arrow_batches(summary.segments)))
    unopened = PostgresDestination("postgresql://nobody@127.0.0.1:1/none", name="pg", schema="s")  # prepare is pure
    for given in (table, ClickHouseDestination.prepare(table, batch), unopened.prepare(table, batch)):
        assert table_name(given) == table.qualified_name
    assert table_name(batch) == "unknown"
