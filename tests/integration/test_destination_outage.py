"""PostgreSQL goes away for 20 s in the middle of a run: the writer retries with backoff and, once
the server is back, finishes; the result equals the oracle (nothing lost, nothing doubled)."""

from __future__ import annotations

import threading
import time
import uuid

from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.commitlog.workload import demo_tables
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.pipeline.local import replicate_available
from ray_cdc.pipeline.writing import DestinationWriter, RetryPolicy
from ray_cdc.schema.registry import SchemaRegistry
from tests.integration.test_local_pipeline import two_nodes  # noqa: F401  (module fixture)
from tests.integration.test_postgres_destination import compare

OUTAGE_SECONDS = 20


def test_writer_rides_out_a_20_second_outage(postgres_server, two_nodes):  # noqa: F811
    root, schema, states, n_segments = two_nodes
    name = "o_" + uuid.uuid4().hex[:8]
    destination = PostgresDestination(postgres_server.dsn, name=name, schema=name)
    destination.open()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    writer = DestinationWriter(destination, policy=RetryPolicy(initial=0.5, maximum=4), sleep=sleep)
    first_write = threading.Event()
    original_write = destination.write

    def write(*args, **kwargs):  # the outage starts once replication is under way
        first_write.set()
        return original_write(*args, **kwargs)

    destination.write = write
    down_for: list[float] = []

    def outage():
        first_write.wait(60)
        postgres_server.stop()
        started = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        postgres_server.start()
        down_for.append(time.monotonic() - started)

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    summary = replicate_available({"a": root / "a", "b": root / "b"},
                                  lambda node: CommitLogReader(SchemaRegistry(schema)), {"pg": writer},
                                  batch_rows=100)
    thread.join()
    assert down_for and down_for[0] >= OUTAGE_SECONDS
    assert sum(slept) >= OUTAGE_SECONDS * 0.5 and len(slept) >= 3  # it waited, with growing backoff
    assert summary.segments == 2 * n_segments
    for table in demo_tables():
        compare(destination, table, states[table.qualified_name])
    offsets = destination.committed_offsets()
    assert len(offsets) == 2 * n_segments and all(o.completed for o in offsets.values())
