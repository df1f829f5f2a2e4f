"""`ray-cdc segments dump --cassandra HOST:PORT`: schemas (and table ids) from a live cluster.

The live test node is Cassandra 2.1 (descriptor-4 segments, read by a later issue), so the segments
here are written by ray_cdc's own writer for the table the cluster defines, with the id the cluster
gave it: the dump can only decode them if the schema and id really came from the cluster.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from ray_cdc.cli import EXIT_OK, main
from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.mutation_encoder import encode_mutation
from ray_cdc.commitlog.segment_writer import SegmentWriter
from ray_cdc.schema.cluster import load_cluster_schema

pytestmark = pytest.mark.cassandra
KEYSPACE = "cdc_dump"


def test_dump_decodes_with_the_live_cluster_schema(cassandra_node, tmp_path, capsys):
    session = cassandra_node.session()
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    session.execute(f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.readings (sensor text, at timestamp, value double, "
                    "tags set<text>, PRIMARY KEY (sensor, at)) WITH CLUSTERING ORDER BY (at DESC)")
    [table] = [t for t in load_cluster_schema(["127.0.0.1"], port=cassandra_node.port, keyspaces=[KEYSPACE])
               if t.name == "readings"]
    at = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    ts = 1_764_158_400_000_000
    writer = SegmentWriter(tmp_path, segment_id=ts // 1000, version=7)
    writer.append(encode_mutation(MutationBuilder(table, {"sensor": "s-1"}).insert(
        {"at": at}, {"value": 21.5, "tags": {"north", "roof"}}, timestamp=ts).mutation()))
    writer.close()

    code = main(["segments", "dump", str(writer.path), "--cassandra", f"127.0.0.1:{cassandra_node.port}"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    [row] = [json.loads(line) for line in out.splitlines()]
    assert row["table_id"] == str(table.id)
    assert (row["keyspace"], row["table"]) == (KEYSPACE, "readings")
    assert row["partition_key"] == {"sensor": "s-1"}
    assert row["clustering"] == {"at": "2026-11-26T12:00:00.000Z"}
    assert row["cells"]["value"]["value"] == 21.5
    assert sorted(row["cells"]["tags"]["value"]) == ["north", "roof"]
