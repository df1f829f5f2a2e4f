"""Cassandra TTLs in the destinations, on a real clock with short TTLs.

PostgreSQL: the expiry job (`expiry_interval`) physically deletes state rows (and static rows) once
their `_expires_at` has passed, in batches, and not a moment before, even after several passes; rows
without TTL stay. Through `ray-cdc run`'s `replicate()` the job runs beside the pipeline. ClickHouse
(chDB): `__live` hides an expired row and the TTL clause removes it from the table once merged
(OPTIMIZE ... FINAL) and its `purge_grace` has passed, while a row whose TTL has not passed survives
the same merge."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from ray_cdc.commitlog.arrow_batches import arrow_batches
from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.mutation_encoder import encode_mutation
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.reader import DecodedMutation
from ray_cdc.commitlog.segment_writer import SegmentWriter
from ray_cdc.config.models import Config
from ray_cdc.destinations.clickhouse import ClickHouseDestination
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.destinations.postgres.expiry import ExpiryJob, ExpiryThread, expiry_jobs
from ray_cdc.errors import TransientDestinationError
from ray_cdc.pipeline.run import EmbeddedServers, destination_factories, replicate
from ray_cdc.schema.cql_writer import schema_to_cql
from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
from ray_cdc.schema.types import parse_cql_type
from tests.integration.test_ray_pipeline import local_ray  # noqa: F401  (module fixture)

TTL = 5  # seconds: short, yet long enough for a loaded machine to look before it passes


def ttl_table(keyspace: str) -> TableSchema:
    t = parse_cql_type
    return TableSchema(keyspace, "sessions", uuid.uuid5(uuid.NAMESPACE_OID, keyspace), (
        ColumnSchema("user_id", t("int"), ColumnKind.PARTITION_KEY),
        ColumnSchema("n", t("int"), ColumnKind.CLUSTERING),
        ColumnSchema("token", t("text"), ColumnKind.REGULAR),
        ColumnSchema("region", t("text"), ColumnKind.STATIC)))


def mutations(table: TableSchema, now: int) -> list:
    """User 1: 5 rows expiring at now + TTL and a static cell too; user 2: 3 rows and a static cell
    without TTL."""
    expiring = MutationBuilder(table, {"user_id": 1}).static({"region": "eu"}, timestamp=now * 10**6, ttl=TTL, now=now)
    for n in range(5):
        expiring.insert({"n": n}, {"token": f"t{n}"}, timestamp=now * 10**6 + n, ttl=TTL, now=now)
    lasting = MutationBuilder(table, {"user_id": 2}).static({"region": "us"}, timestamp=now * 10**6)
    for n in range(3):
        lasting.insert({"n": n}, {"token": f"k{n}"}, timestamp=now * 10**6 + n)
    return [expiring.mutation(), lasting.mutation()]


def state_rows(dsn: str, keyspace: str) -> tuple[list, list]:
    """What is physically stored: (user_id, n) of the state table, user_id of the static table."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f'SELECT user_id, n FROM "{keyspace}".sessions__state ORDER BY 1, 2').fetchall()
        static = conn.execute(f'SELECT user_id FROM "{keyspace}".sessions__static ORDER BY 1').fetchall()
    return rows, [s for (s,) in static]


def wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


ALL_ROWS = [(1, n) for n in range(5)] + [(2, n) for n in range(3)]
LASTING = [(2, n) for n in range(3)]


def test_expiry_job_deletes_expired_rows_on_schedule_and_not_before(postgres_server):
    keyspace = "ttl_" + uuid.uuid4().hex[:8]
    table = ttl_table(keyspace)
    now = int(time.time())
    decoded = [DecodedMutation(CommitLogPosition(1, 100 + i), m) for i, m in enumerate(mutations(table, now))]
    dest = PostgresDestination(postgres_server.dsn, name=keyspace, schema=keyspace)
    dest.open()
    dest.ensure_table(table)
    for _, batch in arrow_batches(decoded):
        dest.write(table, batch, [])
    job = ExpiryJob(postgres_server.dsn, keyspace, schema=keyspace, batch_rows=2)  # 5 rows: 3 batches
    thread = ExpiryThread(job.run_once, 0.3, keyspace).start()
    try:
        while thread.passes < 3 and time.time() < now + TTL - 1:
            time.sleep(0.1)
        assert time.time() < now + TTL - 0.5, "the machine is too slow to look before the TTL passes"
        assert thread.passes >= 3 and thread.deleted == 0
        assert state_rows(postgres_server.dsn, keyspace) == (ALL_ROWS, [1, 2])  # nothing deleted early
        wait_until(now + TTL + 1.5)
        deadline = time.time() + 30
        while state_rows(postgres_server.dsn, keyspace) != (LASTING, [2]) and time.time() < deadline:
            time.sleep(0.2)
        assert state_rows(postgres_server.dsn, keyspace) == (LASTING, [2])
        assert thread.deleted == 6  # 5 rows and the static row
    finally:
        thread.stop()
    assert job.run_once() == {}  # nothing left to expire


def test_expiry_job_reports_an_unreachable_server_without_its_password():
    job = ExpiryJob("postgresql://ray:pa55word@127.0.0.1:1/db", "pg_ops")
    with pytest.raises(TransientDestinationError, match="pg_ops: expiry job") as error:
        job.run_once()
    assert "pa55word" not in str(error.value)


def write_segment(directory, table: TableSchema, now: int) -> None:
    directory.mkdir(parents=True)
    (directory / "schema.cql").write_text(schema_to_cql([table]))
    with SegmentWriter(directory, segment_id=1_820_000_000_000) as writer:
        for m in mutations(table, now):
            writer.append(encode_mutation(m))
        later = MutationBuilder(table, {"user_id": 3}).insert({"n": 0}, {"token": "hour"}, timestamp=now * 10**6,
                                                                ttl=3600, now=now)
        writer.append(encode_mutation(later.mutation()))
    writer.write_cdc_index(completed=True)


def run_config(tmp_path, dsn: str, keyspace: str) -> Config:
    return Config.model_validate({
        "sources": [{"name": "a", "commitlog_dir": str(tmp_path / "a")}],
        "schema": {"cql_file": str(tmp_path / "a" / "schema.cql")},
        "destinations": {"pg": {"type": "postgres", "dsn": dsn, "schema": keyspace, "expiry_interval": 1},
                         # a 1 s grace: the test sees the physical removal (default: 10 days)
                         "ch": {"type": "clickhouse", "dsn": f"chdb://{tmp_path / 'clickhouse'}",
                                "purge_grace": "1s"}},
        "pipeline": {"poll_interval": 0.5, "state_dir": str(tmp_path / "state")},
        "observability": {"port": 0}})


def test_run_expires_rows_in_postgres_and_clickhouse(local_ray, postgres_server, tmp_path):  # noqa: F811
    keyspace = "ttlrun_" + uuid.uuid4().hex[:8]
    table = ttl_table(keyspace)
    now = int(time.time()) + 20  # the rows expire 25 s from now: time for the pipeline to deliver them
    write_segment(tmp_path / "a", table, now)
    stop = threading.Event()
    runner = threading.Thread(target=replicate, args=(run_config(tmp_path, postgres_server.dsn, keyspace),),
                              kwargs={"stop": stop}, daemon=True)
    runner.start()
    try:
        wait_until(now + TTL + 3)  # expired for 3 s: the job (every second) has had its passes
        deadline = time.time() + 300  # a loaded machine may still be replicating
        while state_rows_or_none(postgres_server.dsn, keyspace) != (LASTING + [(3, 0)], [2]) and time.time() < deadline:
            time.sleep(0.5)
        assert state_rows_or_none(postgres_server.dsn, keyspace) == (LASTING + [(3, 0)], [2])
    finally:
        stop.set()
        runner.join(120)
    assert not runner.is_alive()

    ch = ClickHouseDestination(f"chdb://{tmp_path / 'clickhouse'}", name="ch", database="default")
    ch.open()
    try:
        live = ch.client.query_arrow(f"SELECT user_id, n FROM `{keyspace}`.`sessions__live` ORDER BY 1, 2")
        # user 1's rows and static row hidden at once; user 2's static row is its own (n NULL)
        assert {tuple(r.values()) for r in live.to_pylist()} == {*LASTING, (2, None), (3, 0)}
        ch.client.command(f"OPTIMIZE TABLE `{keyspace}`.`sessions` FINAL")  # a merge applies the TTL clause
        stored = ch.client.query_arrow(f"SELECT DISTINCT user_id FROM `{keyspace}`.`sessions` ORDER BY 1")
        assert [r["user_id"] for r in stored.to_pylist()] == [2, 3]  # gone; the 1-hour row is not
        expires = ch.client.query_arrow(f"SELECT toUInt32(_expires_at) AS e FROM `{keyspace}`.`sessions` "
                                        "WHERE user_id = 3")
        assert [r["e"] for r in expires.to_pylist()] == [now + 3600]  # the user-visible expiry column
    finally:
        ch.close()


def state_rows_or_none(dsn: str, keyspace: str):
    try:
        return state_rows(dsn, keyspace)
    except psycopg.errors.UndefinedTable:
        return None  # not created yet


def test_expiry_jobs_run_for_postgres_destinations_with_an_interval_only(tmp_path, postgres_server):
    config = Config.model_validate({
        "sources": [{"name": "a", "commitlog_dir": str(tmp_path)}], "schema": {"from_log": True},
        "destinations": {"ops": {"type": "postgres", "dsn": postgres_server.dsn, "expiry_interval": "1h"},
                         "plain": {"type": "postgres", "dsn": postgres_server.dsn},
                         "ch": {"type": "clickhouse", "dsn": f"chdb://{tmp_path / 'ch'}"}}})
    factories = destination_factories(config, EmbeddedServers())
    with expiry_jobs(config.destinations, factories) as threads:
        assert [t.name for t in threads] == ["ops"] and threads[0].interval == 3600
        assert threads[0].alive
    assert not threads[0].alive  # stopped with the run
