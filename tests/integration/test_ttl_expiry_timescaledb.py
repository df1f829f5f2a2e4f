"""The expiry job on a real TimescaleDB hypertable (rows spread over several chunks, each with its own
row ids): a pass deletes exactly the rows whose TTL has passed, in every chunk, in batches; rows whose
TTL has not passed yet and rows without TTL stay. (The schedule itself, on a real clock, is tested on
PostgreSQL in test_ttl_expiry.py: this server is too slow to set up for a TTL of seconds.)"""

from __future__ import annotations

import time
import uuid

import psycopg

from ray_cdc.commitlog.arrow_batches import arrow_batches
from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.reader import DecodedMutation
from ray_cdc.destinations.postgres.expiry import ExpiryJob
from ray_cdc.destinations.timescaledb import HypertableSettings
from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
from ray_cdc.schema.types import parse_cql_type
from tests.integration.test_timescaledb_destination import timescaledb_server, tsdb  # noqa: F401

HOUR = 3600
DAY_MS = 86_400_000


def readings_table(keyspace: str) -> TableSchema:
    t = parse_cql_type
    return TableSchema(keyspace, "readings", uuid.uuid5(uuid.NAMESPACE_OID, keyspace), (
        ColumnSchema("sensor", t("int"), ColumnKind.PARTITION_KEY),
        ColumnSchema("at", t("timestamp"), ColumnKind.CLUSTERING),
        ColumnSchema("value", t("double"), ColumnKind.REGULAR)))


def stored(dsn: str, keyspace: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f'SELECT sensor, count(*) FROM "{keyspace}".readings__state GROUP BY 1 ORDER BY 1').fetchall()


def test_expiry_job_deletes_expired_rows_in_every_chunk(timescaledb_server):  # noqa: F811
    keyspace = "ttlts_" + uuid.uuid4().hex[:8]
    table = readings_table(keyspace)
    now = int(time.time())
    # sensor 1: expired an hour ago; 2: no TTL; 3: expires in an hour
    writes = {1: (HOUR, now - 2 * HOUR), 2: (0, now), 3: (HOUR, now)}
    builders = [MutationBuilder(table, {"sensor": sensor}) for sensor in writes]
    for day in range(6):  # six days: six chunks of one day
        for builder, (ttl, written) in zip(builders, writes.values()):
            builder.insert({"at": 1_700_000_000_000 + day * DAY_MS}, {"value": day / 2},
                           timestamp=written * 10**6, ttl=ttl, now=written)
    decoded = [DecodedMutation(CommitLogPosition(1, 100 + i), b.mutation()) for i, b in enumerate(builders)]
    dest = tsdb(timescaledb_server.dsn, keyspace, hypertables=HypertableSettings(chunk_interval=86400))
    dest.open()
    dest.ensure_table(table)
    for _, batch in arrow_batches(decoded):
        dest.write(table, batch, [])
    dest.close()  # one client at a time on this server
    with psycopg.connect(timescaledb_server.dsn) as conn:
        chunks = conn.execute("SELECT num_chunks FROM timescaledb_information.hypertables "
                              "WHERE hypertable_schema = %s", (keyspace,)).fetchall()
    assert chunks == [(6,)]

    assert stored(timescaledb_server.dsn, keyspace) == [(1, 6), (2, 6), (3, 6)]

    job = ExpiryJob(timescaledb_server.dsn, keyspace, schema=keyspace, batch_rows=4)  # 6 rows: 2 batches
    assert job.run_once() == {f"{keyspace}.readings__state": 6}
    assert stored(timescaledb_server.dsn, keyspace) == [(2, 6), (3, 6)]
    assert job.run_once() == {}
