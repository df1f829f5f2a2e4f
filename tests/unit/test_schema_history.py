"""Schema history: an older segment is decoded with the schema in force when it was written."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.mutation_encoder import encode_mutation
from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.commitlog.segment_writer import SegmentWriter
from ray_cdc.schema.cql import parse_cql_schema
from ray_cdc.schema.model import ColumnKind
from ray_cdc.schema.registry import SchemaRegistry
from ray_cdc.schema.system_schema import SYSTEM_SCHEMA_TABLES

T_ALTER = 1_700_000_100_000_000  # µs: when `v` was dropped and re-added with another type
V1 = parse_cql_schema("CREATE TABLE ks.t (id int PRIMARY KEY, v int) WITH ID = 5a1c395e-b41f-11e5-9f22-ba0be0483c18;")[0]
V2 = parse_cql_schema(f"""
CREATE TABLE ks.t (id int PRIMARY KEY, v int) WITH ID = 5a1c395e-b41f-11e5-9f22-ba0be0483c18;
ALTER TABLE ks.t DROP v USING TIMESTAMP {T_ALTER};
ALTER TABLE ks.t ADD v text;
""")[0]
SYSTEM = {t.name: t for t in SYSTEM_SCHEMA_TABLES.values()}


def _segment(tmp_path, segment_id: int, bodies) -> str:
    writer = SegmentWriter(tmp_path, segment_id=segment_id, version=7)
    for body in bodies:
        writer.append(body)
    writer.close()
    return writer.path


def _row(table, key, value, ts) -> bytes:
    return encode_mutation(MutationBuilder(table, {"id": key}).insert({}, {"v": value}, timestamp=ts).mutation())


def test_each_segment_decodes_with_the_schema_of_its_time(tmp_path):
    before = T_ALTER - 60_000_000
    after = T_ALTER + 60_000_000
    old = _segment(tmp_path, before // 1000, [_row(V1, 1, 41, before)])
    new = _segment(tmp_path, after // 1000, [_row(V2, 2, "forty-two", after)])
    registry = SchemaRegistry()
    registry.add(V1)
    registry.add(V2, since=T_ALTER)
    changes = list(CommitLogReader(registry).changes([new, old]))  # any order in: segment-id order out
    assert [(c.partition_key["id"], c.cells["v"].value) for c in changes] == [(1, 41), (2, "forty-two")]


def test_a_mismatch_with_the_time_based_version_tries_the_others(tmp_path):
    # a segment created before the ALTER but written to after it: the lookup time picks V1, the bytes need V2
    late = _segment(tmp_path, (T_ALTER - 1_000_000) // 1000, [_row(V2, 3, "a text value long enough", T_ALTER + 5)])
    registry = SchemaRegistry()
    registry.add(V1)
    registry.add(V2, since=T_ALTER)
    [change] = CommitLogReader(registry).changes([late])
    assert change.cells["v"].value == "a text value long enough"


# --- schema changes found in the log itself ---------------------------------------------------------


def _create_table(table, ts) -> bytes:
    ks, name = table.keyspace, table.name
    tables = MutationBuilder(SYSTEM["tables"], {"keyspace_name": ks}).insert(
        {"table_name": name}, {"id": table.id, "flags": frozenset({"compound"}), "comment": ""}, timestamp=ts)
    columns = MutationBuilder(SYSTEM["columns"], {"keyspace_name": ks})
    for col in table.columns:
        _column_row(columns, name, col, ts)
    return encode_mutation(tables.mutation(columns))


def _column_row(builder, table_name, col, ts):
    keyed = col.kind in (ColumnKind.PARTITION_KEY, ColumnKind.CLUSTERING)
    builder.insert({"table_name": table_name, "column_name": col.name}, {
        "kind": col.kind.value, "position": col.position if keyed else -1, "type": col.type.cql(),
        "clustering_order": "none" if col.kind is not ColumnKind.CLUSTERING else "asc",
        "column_name_bytes": col.name.encode(),
    }, timestamp=ts)


def _add_column(table, column_name, ts) -> bytes:
    columns = MutationBuilder(SYSTEM["columns"], {"keyspace_name": table.keyspace})
    _column_row(columns, table.name, table.column(column_name), ts)
    return encode_mutation(columns.mutation())


def _drop_column(table, column_name, cql_type, ts) -> bytes:
    columns = MutationBuilder(SYSTEM["columns"], {"keyspace_name": table.keyspace}).delete_row(
        {"table_name": table.name, "column_name": column_name}, timestamp=ts)
    dropped = MutationBuilder(SYSTEM["dropped_columns"], {"keyspace_name": table.keyspace}).insert(
        {"table_name": table.name, "column_name": column_name},
        {"dropped_time": datetime.fromtimestamp(ts / 1e6, tz=timezone.utc), "type": cql_type, "kind": "regular"},
        timestamp=ts)
    return encode_mutation(columns.mutation(dropped))


@pytest.mark.parametrize("split_segments", [False, True])
def test_create_alter_add_and_drop_are_followed_from_the_log(tmp_path, split_segments):
    ts = 1_700_000_000_000_000
    base = parse_cql_schema(
        "CREATE TABLE app.users (id int PRIMARY KEY, name text) WITH ID = 0f0e0d0c-0b0a-1909-8807-060504030201;")[0]
    wider = parse_cql_schema("CREATE TABLE app.users (id int PRIMARY KEY, name text, age int) "
                             "WITH ID = 0f0e0d0c-0b0a-1909-8807-060504030201;")[0]
    bodies = [
        _create_table(base, ts),
        encode_mutation(MutationBuilder(base, {"id": 1}).insert({}, {"name": "ann"}, timestamp=ts + 1).mutation()),
        _add_column(wider, "age", ts + 2),
        encode_mutation(MutationBuilder(wider, {"id": 2}).insert({}, {"name": "bob", "age": 33},
                                                                  timestamp=ts + 3).mutation()),
        _drop_column(wider, "name", "text", ts + 4),
        # data written before the drop but logged after it still decodes: the dropped column is kept
        encode_mutation(MutationBuilder(wider, {"id": 3}).insert({}, {"name": "cy", "age": 7},
                                                                  timestamp=ts + 5).mutation()),
    ]
    first = ts // 1000
    if split_segments:
        paths = [_segment(tmp_path, first + i, [body]) for i, body in enumerate(bodies)]
    else:
        paths = [_segment(tmp_path, first, bodies)]
    reader = CommitLogReader(schema_from_log=True)
    changes = [(c.partition_key["id"], {k: v.value for k, v in c.cells.items()}) for c in reader.changes(paths)]
    assert changes == [(1, {"name": "ann"}), (2, {"name": "bob", "age": 33}), (3, {"name": "cy", "age": 7})]
    table = reader.registry.by_name("app", "users")
    assert [c.name for c in table.columns] == ["id", "age"]
    assert [(d.name, d.type.cql()) for d in table.dropped] == [("name", "text")]
    assert len(reader.registry.versions(table.id)) == 3
