"""Rows a destination refuses go to the DLQ actor through Ray; the stream never stops for them.

A workload of one table whose `at` timestamps are mostly ordinary, some in year 2400 (PostgreSQL
stores them, ClickHouse's DateTime64 stops at 2299) and some in year 300000 (beyond PostgreSQL's
timestamptz too). After one run into PostgreSQL and chDB: each refused row is in the dead-letter
store (files, and PostgreSQL) with its reason, source position, destination and table, and its
payload (Arrow IPC) holds exactly that row; each destination equals the oracle minus the rows it
refused — every other row of their batches and of the stream is there."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timezone

import pytest

from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.mutation_encoder import encode_mutation
from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.commitlog.segment_writer import SegmentWriter
from ray_cdc.destinations.clickhouse import ClickHouseDestination
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.dlq import DeadLetterFilter
from ray_cdc.pipeline.distributed import NodeSource, replicate_available_on_ray
from ray_cdc.pipeline.factories import DeadLetterFactory, DestinationFactory
from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
from ray_cdc.schema.registry import SchemaRegistry
from ray_cdc.schema.types import parse_cql_type
from tests.integration.pipeline_checks import assert_clickhouse_equals_oracle, assert_postgres_equals_oracle
from tests.integration.test_ray_pipeline import local_ray  # noqa: F401  (module fixture)
from tests.support.expected_state import expected_state

SEGMENT = 1_800_000_000_000
YEAR_2400 = int(datetime(2400, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)  # ClickHouse refuses
YEAR_300000 = 9_404_000_000_000_000  # ms since the epoch: beyond PostgreSQL's timestamptz (294276 AD)


def events_table(keyspace: str) -> TableSchema:
    t = parse_cql_type
    return TableSchema(keyspace, "events", uuid.uuid5(uuid.NAMESPACE_OID, keyspace), (
        ColumnSchema("id", t("bigint"), ColumnKind.PARTITION_KEY),
        ColumnSchema("ck", t("int"), ColumnKind.CLUSTERING),
        ColumnSchema("at", t("timestamp"), ColumnKind.REGULAR),
        ColumnSchema("note", t("text"), ColumnKind.REGULAR)))


def write_workload(directory, table, rng, *, rows: int = 900, per_segment: int = 300):
    """Segments of single-row inserts; returns the positions of the rows each destination refuses."""
    directory.mkdir(parents=True)
    bad = {"pg": set(), "ch": set()}
    for s in range(rows // per_segment):
        with SegmentWriter(directory, segment_id=SEGMENT + s) as writer:
            for i in range(per_segment):
                n = s * per_segment + i
                roll = rng.random()
                at = YEAR_300000 if roll < 0.01 else YEAR_2400 if roll < 0.04 else 1_700_000_000_000 + n
                builder = MutationBuilder(table, {"id": n % 97}).insert(
                    {"ck": n}, {"at": at, "note": f"row {n}"}, timestamp=1_000_000 + n)
                position = writer.append(encode_mutation(builder.mutation()))
                if at != 1_700_000_000_000 + n:
                    bad["ch"].add((position.segment_id, position.offset))
                if at == YEAR_300000:
                    bad["pg"].add((position.segment_id, position.offset))
        writer.write_cdc_index(completed=True)
    return bad


@pytest.mark.parametrize("store", ["files", "postgres"])
def test_refused_rows_end_in_the_dlq_and_the_rest_everywhere(local_ray, postgres_server, tmp_path, store):  # noqa: F811
    seed = random.randrange(1 << 30)
    print(f"seed={seed}")
    keyspace = "dlq_" + uuid.uuid4().hex[:8]
    table = events_table(keyspace)
    bad = write_workload(tmp_path / "a", table, random.Random(seed))
    assert bad["pg"] and len(bad["ch"]) > len(bad["pg"])
    changes = list(CommitLogReader(SchemaRegistry([table])).changes(sorted((tmp_path / "a").glob("*.log"))))

    ch_dsn = f"chdb://{tmp_path / 'clickhouse'}"
    factories = {"pg": DestinationFactory(keyspace, "postgres", postgres_server.dsn, schema=keyspace),
                 "ch": DestinationFactory("ch", "clickhouse", ch_dsn, database="default")}
    dlq = (DeadLetterFactory("files", str(tmp_path / "dlq")) if store == "files"
           else DeadLetterFactory("postgres", postgres_server.dsn, f"dlq_{keyspace}"))
    summary = replicate_available_on_ray({"a": NodeSource(tmp_path / "a")},
                                         lambda node: CommitLogReader(SchemaRegistry([table])), factories,
                                         batch_rows=128, dead_letters=dlq)
    assert summary.readers[0]["rows"] == 900

    dead = dlq()
    try:
        for name, refused in bad.items():
            destination = keyspace if name == "pg" else "ch"
            entries = dead.list(DeadLetterFilter(destination=destination))
            positions = set()
            for entry in entries:
                full = dead.get(entry.id)
                assert (full.keyspace, full.table, full.node, full.error_class) == (keyspace, "events", "a",
                                                                                     "RejectedRow")
                assert "range" in full.message, full.message  # the destination's own reason
                rows = list(zip(full.payload.column("_segment_id").to_pylist(),
                                full.payload.column("_position").to_pylist()))
                assert (full.segment_id, full.position) == min(rows)  # where a replay starts
                assert full.payload.column("note").to_pylist() and full.rows == len(rows)
                positions.update(rows)
            assert positions == refused, name  # every refused row, and nothing else
    finally:
        getattr(dead, "close", lambda: None)()

    def oracle_without(refused):
        return expected_state([c for c in changes if (c.position.segment_id, c.position.offset) not in refused])

    pg = PostgresDestination(postgres_server.dsn, name=keyspace, schema=keyspace)
    pg.open()
    assert_postgres_equals_oracle(pg, oracle_without(bad["pg"]), [table])
    ch = ClickHouseDestination(ch_dsn, name="ch", database="default")
    ch.open()
    try:
        assert_clickhouse_equals_oracle(ch, oracle_without(bad["ch"]), [table])
        for destination in (pg, ch):
            offsets = destination.committed_offsets()
            assert len(offsets) == 3 and all(o.completed for o in offsets.values()), destination.name
    finally:
        ch.close()
