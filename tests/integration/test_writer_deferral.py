"""The writer's deferral rules against a real PostgreSQL (no Ray): a set that does not follow the
destination's offset is never applied; an unreachable server makes `apply` give up after
`detach_after` and then answer at once while its breaker is open; a set already committed is
skipped. What the readers and the coordinator build on (tests/integration/test_destination_outage.py
shows the whole behaviour on Ray)."""

from __future__ import annotations

import random
import time
import uuid

from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.pipeline.writing import DestinationWriter, RetryPolicy
from ray_cdc.schema.registry import SchemaRegistry
from tests.integration.test_dlq_pipeline import events_table, write_workload
from tests.services.postgres import free_port


def _sets(tmp_path, keyspace):
    table = events_table(keyspace)
    write_workload(tmp_path / "a", table, random.Random(5), rows=300, per_segment=300)
    [segment] = sorted((tmp_path / "a").glob("CommitLog-*.log"))
    return list(CommitLogReader(SchemaRegistry([table])).change_sets(segment, max_rows=100))


def test_a_set_after_a_gap_is_deferred_never_applied(postgres_server, tmp_path):
    name = "w_" + uuid.uuid4().hex[:8]
    first, second, *_ = _sets(tmp_path, name)
    destination = PostgresDestination(postgres_server.dsn, name=name, schema=name)
    destination.open()
    writer = DestinationWriter(destination, detach_after=1.0)
    writer.start()
    early = writer.apply("a", second, first.end)  # `first` is not applied yet
    assert early.status == "deferred" and "gap" in early.reason and early.rows == 0
    assert destination.committed_offsets() == {}  # nothing written, no offset moved
    assert writer.apply("a", first, None).status == "applied"
    applied = writer.apply("a", second, first.end)
    assert applied.status == "applied" and applied.offset.position == second.end.offset
    assert writer.apply("a", first, None).status == "skipped"  # a replay
    assert destination.committed_offsets()[f"a/{second.segment_id}"].position == second.end.offset


def test_an_unreachable_destination_defers_quickly_then_at_once(tmp_path):
    name = "w_" + uuid.uuid4().hex[:8]
    first, *_ = _sets(tmp_path, name)
    dsn = f"postgresql://nobody:Secret7@127.0.0.1:{free_port()}/x?connect_timeout=2"
    destination = PostgresDestination(dsn, name=name, schema=name)
    slept: list[float] = []

    def sleep(seconds):
        slept.append(seconds)
        time.sleep(seconds)

    writer = DestinationWriter(destination, policy=RetryPolicy(initial=0.1, maximum=5), detach_after=1.0,
                               sleep=sleep)
    started = time.monotonic()
    result = writer.apply("a", first, None)
    took = time.monotonic() - started
    assert result.status == "deferred" and "Secret7" not in result.reason
    # it retried with (jittered) backoff within detach_after, then let go
    assert slept and sum(slept) <= 1.0 and took < 5
    started = time.monotonic()
    again = writer.apply("a", first, None)
    assert again.status == "deferred" and "unavailable" in again.reason
    assert time.monotonic() - started < 0.05  # the breaker answers without touching the network
