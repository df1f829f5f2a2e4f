"""`ALTER TABLE` on a live Cassandra 2.1 node while one continuous `ray-cdc run` (not --once) follows
its archived commitlog: columns added and dropped on the cluster are picked up by the running
process for the changes that follow, into PostgreSQL and ClickHouse (chDB), each ending equal to
`SELECT *` row by row.

Each phase waits until the run has committed every archived segment before the next ALTER, so the
readers certainly hold the older schema when the newer data reaches them: the pickup cannot come
from a reader built after the ALTER, only from the running one reloading the cluster's schema.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from ray_cdc.config.loader import load_config
from ray_cdc.pipeline.factories import ReaderFactory
from tests.integration.test_live_replication import (  # noqa: F401 - node and state are fixtures
    all_segments_done,
    archive_everything,
    new_keyspace,
    node,
    start_run,
    state,
)
from tests.integration.test_snapshot import assert_equal, cassandra_rows, clickhouse_rows, fill, postgres_rows
from tests.integration.test_snapshot import table_of as snapshot_table_of
from tests.services.cassandra_node import CassandraNode

pytestmark = pytest.mark.cassandra

PARTITIONS = 40
DROPPED = "t"  # a column of the table from the start, written in every phase before the DROP


def write_config(tmp: Path, state: Path, node: CassandraNode, ks: str, pg_dsn: str, pg_name: str) -> Path:
    config = tmp / "config.yaml"
    config.write_text(f"""
sources:
  - {{name: n1, commitlog_dir: {node.archive_dir}}}
schema:
  cassandra: {{contact_points: [{node.host}], port: {node.port}}}
tables: {{include: ["{ks}.many"]}}
destinations:
  {pg_name}: {{type: postgres, dsn: "{pg_dsn}"}}
  ch: {{type: clickhouse, dsn: "chdb://{state / 'clickhouse'}"}}
snapshot: {{consistency: ONE, fetch_size: 100, parallelism: 1, split_count: 4}}
pipeline: {{batch_rows: 300, state_dir: {state}, poll_interval: 1, segment_retention: keep}}
observability: {{host: 127.0.0.1, port: 0}}
""")
    return config


def inserts(session, ks: str, tag: str, extra: str = "", values: tuple = ()) -> None:
    """One new row in every partition; `extra` names more columns, set to `values`."""
    for p in range(PARTITIONS):
        session.execute(f"INSERT INTO {ks}.many (id, ck, i{extra and ', ' + extra}) "
                        f"VALUES (%s, %s, %s{', %s' * len(values)})", (p, tag, p, *values))


def commit_all(run, node: CassandraNode, session, ks: str) -> None:
    run.wait_for("every archived segment applied", all_segments_done(archive_everything(node, session, ks)))


def pg_columns(dsn: str, ks: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                            "AND table_name = 'many'", (ks,)).fetchall()
    return {r[0] for r in rows}


def test_alter_table_on_the_cluster_is_followed_by_the_running_process(node, tmp_path, state, postgres_server):
    session = node.session()
    ks = new_keyspace(session)
    fill(session, ks, PARTITIONS)
    pg_name = f"pg_{uuid.uuid4().hex[:8]}"
    run = start_run(write_config(tmp_path, state, node, ks, postgres_server.dsn, pg_name), tmp_path / "run.log")
    try:
        run.wait_port()
        pid = run.process.pid
        inserts(session, ks, "before", f"{DROPPED}", ("old schema",))
        commit_all(run, node, session, ks)  # the readers have decoded with the first schema

        session.execute(f"ALTER TABLE {ks}.many ADD note text")
        session.execute(f"ALTER TABLE {ks}.many ADD tags map<int, text>")
        inserts(session, ks, "added", f"{DROPPED}, note, tags", ("added", "a note", {1: "one", 2: "two"}))
        for p in range(0, PARTITIONS, 3):  # older rows get the new columns too
            session.execute(f"UPDATE {ks}.many SET note = %s, tags[%s] = %s WHERE id = %s AND ck = 'before'",
                            (f"later {p}", p, f"v{p}", p))
        session.execute(f"DELETE tags[2] FROM {ks}.many WHERE id = 1 AND ck = 'added'")
        commit_all(run, node, session, ks)

        session.execute(f"ALTER TABLE {ks}.many DROP {DROPPED}")
        inserts(session, ks, "dropped", "note, tags", ("after the drop", {7: "seven"}))
        for p in range(1, PARTITIONS, 4):
            session.execute(f"UPDATE {ks}.many SET tags[%s] = 'again' WHERE id = %s AND ck = 'added'", (p + 100, p))
        commit_all(run, node, session, ks)

        assert run.process.pid == pid and run.process.poll() is None, "the run was restarted"
        assert run.status()["dlq_entries"] == 0, "changes went to the dead letters"
        assert run.stop() == 0, run.output()[-4000:]
    finally:
        run.stop()

    table = snapshot_table_of(session, ks)
    assert {"note", "tags"} <= {c.name for c in table.regular} and DROPPED not in {c.name for c in table.regular}
    expected = cassandra_rows(session, table)
    assert sum(1 for k in expected if k[1] in ("before", "added", "dropped")) == PARTITIONS * 3  # one a phase
    assert sum(1 for r in expected.values() if r["tags"]) >= PARTITIONS * 2
    assert_equal(expected, postgres_rows(postgres_server.dsn, table, name=pg_name, schema=None), "PostgreSQL")
    assert_equal(expected, clickhouse_rows(state / "clickhouse", table), "ClickHouse")
    # schema_evolution.dropped_columns defaults to keep: the dropped column stays in the destination
    assert DROPPED in pg_columns(postgres_server.dsn, ks)


def test_a_reader_built_before_an_alter_decodes_the_added_columns_of_later_segments(node, tmp_path, state,
                                                                                      postgres_server):
    """The reader a run's reader actor builds (ReaderFactory), loaded before `ALTER TABLE ... ADD`,
    meets cells of the new columns: it reloads the schema from the cluster itself, whatever its actor
    does between segments, and decodes them (before: `has no column 'note'`, an undecodable mutation)."""
    session = node.session()
    ks = new_keyspace(session)
    config = load_config(write_config(tmp_path, state, node, ks, postgres_server.dsn, "pg"))
    reader = ReaderFactory(config.schema_source, {s.name: s for s in config.sources})("n1")
    session.execute(f"ALTER TABLE {ks}.many ADD note text")
    session.execute(f"ALTER TABLE {ks}.many ADD tags map<int, text>")
    inserts(session, ks, "added", "note, tags", ("a note", {1: "one"}))
    archive_everything(node, session, ks)
    added = [c for c in reader.changes(sorted(node.archived_segments()))
             if c.table.keyspace == ks and c.table.name == "many" and c.clustering.get("ck") == "added"]
    assert len(added) == PARTITIONS
    assert {c.cells["note"].value for c in added} == {"a note"}
    assert all(c.cells["tags"].value == {1: "one"} for c in added), added[0].cells["tags"]
