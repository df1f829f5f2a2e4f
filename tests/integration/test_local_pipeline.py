"""The replication loop without Ray (the plain pieces the actors wrap), into a real PostgreSQL.

Two nodes hold the same segments (RF = 2): every change arrives twice and the destination must
still equal the oracle. A run interrupted after some change sets resumes from the committed
offsets; a second run applies nothing again; retention removes fully committed segments.
"""

from __future__ import annotations

import shutil
import uuid

import pytest

from ray_cdc.commitlog.reader import CommitLogReader, sort_segments
from ray_cdc.commitlog.workload import demo_tables, generate
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.pipeline.local import replicate_available
from ray_cdc.pipeline.writing import DestinationWriter
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.registry import SchemaRegistry
from tests.integration.test_postgres_destination import compare
from tests.support.expected_state import expected_state


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("nodes")
    summary = generate(root / "a", rows=4000, tables=demo_tables(), seed=21, segment_size=256 << 10,
                       preallocate=False)
    shutil.copytree(root / "a", root / "b")  # the second replica logged the same mutations
    schema = load_cql_schema(root / "a" / "schema.cql")
    changes = list(CommitLogReader(SchemaRegistry(schema)).changes(summary.segments))
    return root, schema, expected_state(changes), len(summary.segments)


def _writer(postgres_server, schema_name):
    destination = PostgresDestination(postgres_server.dsn, name=schema_name, schema=schema_name)
    destination.open()
    return DestinationWriter(destination)


def _run(root, schema, writers, **kwargs):
    return replicate_available({"a": root / "a", "b": root / "b"},
                               lambda node: CommitLogReader(SchemaRegistry(schema)), writers,
                               batch_rows=300, **kwargs)


def _check(writer, states):
    for table in demo_tables():
        compare(writer.destination, table, states[table.qualified_name])
        if table.static:
            compare(writer.destination, table, states[table.qualified_name], static=True)


def test_two_replicas_replicate_once_each_and_converge(postgres_server, two_nodes):
    root, schema, states, n_segments = two_nodes
    writer = _writer(postgres_server, "p_" + uuid.uuid4().hex[:8])
    summary = _run(root, schema, {"pg": writer})
    assert summary.segments == 2 * n_segments
    _check(writer, states)
    offsets = writer.destination.committed_offsets()
    assert len(offsets) == 2 * n_segments and all(o.completed for o in offsets.values())

    again = _run(root, schema, {"pg": _writer(postgres_server, writer.destination.name)})
    assert again.rows == {} and again.segments == 0  # everything was committed: nothing is queued
    _check(writer, states)


def test_an_interrupted_run_resumes_from_the_committed_offsets(postgres_server, two_nodes):
    root, schema, states, _ = two_nodes
    name = "p_" + uuid.uuid4().hex[:8]
    writer = _writer(postgres_server, name)
    writer.start()
    reader = CommitLogReader(SchemaRegistry(schema))
    first = sort_segments((root / "a").glob("CommitLog-*.log"))[0]
    sets = list(reader.change_sets(first, max_rows=300))
    for change_set in sets[: len(sets) // 2]:  # "crash" half way through the first segment
        writer.apply("a", change_set)
    resumed = _run(root, schema, {"pg": _writer(postgres_server, name)})
    assert resumed.skipped_rows["pg"] == 0  # resumed after the offset: nothing read twice for node a
    _check(writer, states)


def test_retention_deletes_segments_every_destination_committed(postgres_server, two_nodes, tmp_path):
    root, schema, states, n_segments = two_nodes
    shutil.copytree(root, tmp_path / "copy")
    writer = _writer(postgres_server, "p_" + uuid.uuid4().hex[:8])
    _run(tmp_path / "copy", schema, {"pg": writer}, retention="archive", archive_dir=tmp_path / "archive")
    assert not list((tmp_path / "copy" / "a").glob("CommitLog-*"))
    assert len(list((tmp_path / "archive").glob("*/CommitLog-*.log"))) == 2 * n_segments
    _check(writer, states)
