"""`ray-cdc run config.yaml --once` on a local Ray: two nodes into PostgreSQL and chDB."""

from __future__ import annotations

import uuid

from ray_cdc.cli import EXIT_OK, main
from ray_cdc.commitlog.workload import demo_tables
from ray_cdc.destinations.clickhouse import ClickHouseDestination
from ray_cdc.destinations.postgres import PostgresDestination
from tests.integration.test_local_pipeline import two_nodes  # noqa: F401  (module fixture)
from tests.integration.test_postgres_destination import compare
from tests.integration.test_ray_pipeline import local_ray  # noqa: F401  (module fixture)


def test_run_once_replicates_every_node_into_every_destination(local_ray, postgres_server, two_nodes,  # noqa: F811
                                                               tmp_path, capsys, monkeypatch):
    root, _, states, n_segments = two_nodes
    schema = "c_" + uuid.uuid4().hex[:8]
    monkeypatch.setenv("PG_DSN", postgres_server.dsn)
    config = tmp_path / "config.yaml"
    config.write_text(f"""
sources:
  - {{name: a, commitlog_dir: {root / 'a'}}}
  - {{name: b, commitlog_dir: {root / 'b'}}}
schema:
  cql_file: {root / 'a' / 'schema.cql'}
destinations:
  {schema}: {{type: postgres, dsn: "${{PG_DSN}}", schema: {schema}}}
  ch: {{type: clickhouse, dsn: "chdb://{tmp_path / 'clickhouse'}"}}
pipeline:
  batch_rows: 500
  state_dir: {tmp_path / 'state'}
""")
    assert main(["run", str(config), "--once"]) == EXIT_OK
    assert "replicated" in capsys.readouterr().out

    pg = PostgresDestination(postgres_server.dsn, name=schema, schema=schema)  # offsets are kept by name
    pg.open()
    for table in demo_tables():
        compare(pg, table, states[table.qualified_name])
    ch = ClickHouseDestination(f"chdb://{tmp_path / 'clickhouse'}", name="ch", database="default")
    ch.open()
    for destination in (pg, ch):
        offsets = destination.committed_offsets()
        assert len(offsets) == 2 * n_segments and all(o.completed for o in offsets.values()), destination.name
    assert ch.live_count(demo_tables()[-1]) > 0
    ch.close()


def test_a_config_typo_is_rejected_before_anything_starts(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("sources: [{name: a, commitlog_dir: x}]\nschema: {from_log: true}\npipeline: {batch_row: 5}\n")
    assert main(["run", str(config)]) == 1
    err = capsys.readouterr().err
    assert "pipeline.batch_row" in err and "batch_rows" in err
