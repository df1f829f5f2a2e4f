"""Schema changes reach every destination: PostgreSQL (`postgres_server`), TimescaleDB (the real
extension, `timescaledb_server`; the test table clusters on a timestamp, so its state table is a
hypertable) and ClickHouse (chDB).

A schema change is what the pipeline hands a writer: batches decoded with a newer TableSchema version
of the same table id (the registry's version at the change's time). Each test writes through the
destination's public `write` and reads the user-facing view (PostgreSQL: the `<t>` view; ClickHouse:
`<t>__live`) and the stored column types from the catalog.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from ray_cdc.commitlog.arrow_batches import arrow_batches
from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.mutation_encoder import encode_mutation
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.reader import ChangeSet, CommitLogReader, DecodedMutation
from ray_cdc.destinations.clickhouse import ClickHouseDestination
from ray_cdc.destinations.evolution import StalePreparedError
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.destinations.timescaledb import TimescaleDbDestination
from ray_cdc.dlq.file_store import FileDeadLetterStore
from ray_cdc.pipeline.writing import DestinationWriter, TableBatch
from ray_cdc.schema.cql import parse_cql_schema
from ray_cdc.schema.model import ColumnKind, ColumnSchema, DroppedColumn, TableSchema
from ray_cdc.schema.types import parse_cql_type
from ray_cdc.transforms.transformer import TransformedSet
from tests.integration.test_timescaledb_destination import timescaledb_server  # noqa: F401 - a fixture
from tests.unit import test_schema_history as history

BASE = 1_700_000_000_000_000
AT = datetime(2024, 1, 1, tzinfo=timezone.utc)
_positions = itertools.count(100, 100)


def col(name: str, cql: str, kind: ColumnKind = ColumnKind.REGULAR) -> ColumnSchema:
    return ColumnSchema(name, parse_cql_type(cql), kind)


def base_table(**types: str) -> TableSchema:
    """(id int, at timestamp) primary key, then the given regular columns."""
    keys = (col("id", "int", ColumnKind.PARTITION_KEY), col("at", "timestamp", ColumnKind.CLUSTERING))
    return TableSchema("evo_" + uuid.uuid4().hex[:8], "events", uuid.uuid4(),
                       keys + tuple(col(n, t) for n, t in types.items()))


def version(table: TableSchema, *, dropped: tuple[DroppedColumn, ...] = (), **types: str) -> TableSchema:
    """The next version of `table` (same id): its key columns and the given regular columns."""
    keys = tuple(c for c in table.columns if c.kind is not ColumnKind.REGULAR)
    return replace(table, columns=keys + tuple(col(n, t) for n, t in types.items()), dropped=dropped)


def upsert(table: TableSchema, key: int, values: dict, ts: int):
    """One batch: an insert of row `key` with `values`, decoded as the pipeline would with `table`."""
    mutation = MutationBuilder(table, {"id": key}).insert({"at": AT}, values, timestamp=BASE + ts).mutation()
    [(decoded_as, batch)] = list(arrow_batches([DecodedMutation(CommitLogPosition(1, next(_positions)), mutation)]))
    return decoded_as, batch


def write(dest, table: TableSchema, key: int, values: dict, ts: int):
    decoded_as, batch = upsert(table, key, values, ts)
    return dest.write(decoded_as, batch, [])


# --- the three destinations -------------------------------------------------------------------------------


class Postgres:
    def __init__(self, dsn: str, cls=PostgresDestination):
        self.dsn, self.cls = dsn, cls

    def make_unopened(self, table: TableSchema):
        return self.cls(self.dsn, name=table.keyspace, schema=table.keyspace)

    def make(self, table: TableSchema, dropped_columns: str = "keep"):
        dest = self.cls(self.dsn, name=table.keyspace, schema=table.keyspace, dropped_columns=dropped_columns)
        dest.open()
        return dest

    @staticmethod
    def _query(dest, sql: str, params=()):
        # through the destination's own connection: the TimescaleDB test server takes one client at a time
        return dest._run("test query", lambda cur: (cur.execute(sql, params), cur.fetchall(),
                                                    [d.name for d in cur.description])[1:])

    def rows(self, dest, table: TableSchema) -> dict[int, dict]:
        rows, names = self._query(dest, f'SELECT * FROM "{table.keyspace}"."{table.name}"')
        return {r[0]: {n: v for n, v in zip(names, r) if not n.startswith("_")} for r in rows}

    def static(self, dest, table: TableSchema) -> dict[int, int]:
        rows, _ = self._query(dest, f'SELECT id, s FROM "{table.keyspace}"."{table.name}__statics"')
        return dict(rows)

    def types(self, dest, table: TableSchema) -> dict[str, str]:
        rows, _ = self._query(dest, "SELECT column_name, data_type FROM information_schema.columns "
                                    "WHERE table_schema = %s AND table_name = %s",
                              (table.keyspace, table.name + "__state"))
        return dict(rows)

    def hypertable(self, dest, table: TableSchema) -> bool:
        rows, _ = self._query(dest, "SELECT count(*) FROM timescaledb_information.hypertables "
                                    "WHERE hypertable_schema = %s AND hypertable_name = %s",
                              (table.keyspace, table.name + "__state"))
        return rows[0][0] == 1


class ClickHouse:
    def __init__(self, directory):
        self.dsn = f"chdb://{directory}"

    def make_unopened(self, table: TableSchema):
        return ClickHouseDestination(self.dsn, name="clickhouse", database="ray_cdc_evo")

    def make(self, table: TableSchema, dropped_columns: str = "keep"):
        dest = ClickHouseDestination(self.dsn, name="clickhouse", database="ray_cdc_evo",
                                     dropped_columns=dropped_columns)
        dest.open()
        return dest

    def rows(self, dest, table: TableSchema) -> dict[int, dict]:
        rows = dest.client.query_arrow(f"SELECT * FROM `{table.keyspace}`.`{table.name}__live`").to_pylist()
        return {r["id"]: r for r in rows}

    def static(self, dest, table: TableSchema) -> dict[int, int]:
        rows = dest.client.query_arrow(f"SELECT DISTINCT id, s FROM `{table.keyspace}`.`{table.name}__live` "
                                       "WHERE s IS NOT NULL").to_pylist()
        return {r["id"]: r["s"] for r in rows}

    def types(self, dest, table: TableSchema) -> dict[str, str]:
        rows = dest.client.query_arrow(f"SELECT name, type FROM system.columns WHERE database = "
                                       f"'{table.keyspace}' AND table = '{table.name}'").to_pylist()
        return {r["name"]: r["type"] for r in rows}


@pytest.fixture(scope="module")
def clickhouse_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(params=["postgres", "timescaledb", "clickhouse"])
def side(request, clickhouse_dir):
    if request.param == "postgres":
        return Postgres(request.getfixturevalue("postgres_server").dsn)
    if request.param == "timescaledb":
        return Postgres(request.getfixturevalue("timescaledb_server").dsn, TimescaleDbDestination)
    return ClickHouse(clickhouse_dir)


WIDE = {"postgres": "bigint", "timescaledb": "bigint", "clickhouse": "Nullable(Int64)"}


def kind_of(side) -> str:
    if isinstance(side, ClickHouse):
        return "clickhouse"
    return "timescaledb" if side.cls is TimescaleDbDestination else "postgres"


# --- tests ---------------------------------------------------------------------------------------------------


def test_added_column_appears_older_rows_null(side):
    v1 = base_table(v="int")
    dest = side.make(v1)
    write(dest, v1, 1, {"v": 1}, 10)
    write(dest, v1, 2, {"v": 2}, 10)
    if kind_of(side) == "timescaledb":
        assert side.hypertable(dest, v1)
    v2 = version(v1, v="int", extra="text")
    write(dest, v2, 3, {"v": 3, "extra": "new row"}, 20)
    write(dest, v2, 1, {"extra": "later"}, 30)
    assert "extra" in side.types(dest, v2)
    rows = side.rows(dest, v2)
    assert {k: (r["v"], r["extra"]) for k, r in rows.items()} == {
        1: (1, "later"), 2: (2, None), 3: (3, "new row")}
    # a late batch decoded with the old version: nothing is dropped, the new column keeps its value
    write(dest, v1, 1, {"v": 11}, 40)
    write(dest, v2, 2, {"extra": "after the replay"}, 50)
    rows = side.rows(dest, v2)
    assert {k: (r["v"], r["extra"]) for k, r in rows.items()} == {
        1: (11, "later"), 2: (2, "after the replay"), 3: (3, "new row")}
    dest.close()


@pytest.mark.parametrize("policy", ["keep", "drop"])
def test_dropped_column_kept_or_dropped(side, policy):
    v1 = base_table(v="int", note="text")
    dest = side.make(v1, policy)
    write(dest, v1, 1, {"v": 1, "note": "old"}, 10)
    v2 = version(v1, v="int", dropped=(DroppedColumn("note", parse_cql_type("text"), BASE + 15),))
    write(dest, v2, 2, {"v": 2}, 20)
    write(dest, v2, 1, {"v": 10}, 30)
    rows = side.rows(dest, v2)
    assert {k: r["v"] for k, r in rows.items()} == {1: 10, 2: 2}
    if policy == "keep":
        assert "note" in side.types(dest, v2)
        assert (rows[1]["note"], rows[2]["note"]) == ("old", None)  # nothing writes it any more
    else:
        assert "note" not in side.types(dest, v2)
        assert all("note" not in r for r in rows.values())
    dest.close()


def test_int_widened_to_bigint_keeps_data_and_takes_big_values(side):
    v1 = base_table(v="int", w="float")
    dest = side.make(v1)
    write(dest, v1, 1, {"v": 5, "w": 1.5}, 10)
    v2 = version(v1, v="bigint", w="double")
    big = 2**40
    write(dest, v2, 2, {"v": big, "w": 1e300}, 20)
    assert side.types(dest, v2)["v"] == WIDE[kind_of(side)]
    rows = side.rows(dest, v2)
    assert {k: (r["v"], r["w"]) for k, r in rows.items()} == {1: (5, 1.5), 2: (big, 1e300)}
    # an older batch (int) still fits the wider column
    write(dest, v1, 3, {"v": 7}, 30)
    assert side.rows(dest, v2)[3]["v"] == 7
    dest.close()


def test_incompatible_change_sends_its_rows_to_the_dlq_other_tables_keep_going(side, tmp_path):
    v1 = base_table(v="int", note="text")
    other = replace(base_table(v="int"), keyspace=v1.keyspace, name="other")
    dest = side.make(v1)
    dlq = FileDeadLetterStore(tmp_path / "dlq")
    writer = DestinationWriter(dest, dead_letters=dlq)
    writer.start()

    def apply(*batches):
        position = next(_positions)
        return writer.apply("n1", ChangeSet(1, CommitLogPosition(1, position + 99), list(batches)))

    apply(upsert(v1, 1, {"v": 1, "note": "text value"}, 10), upsert(other, 1, {"v": 1}, 10))
    v2 = version(v1, v="int", note="int")  # text -> int: no destination converts that
    result = apply(upsert(v2, 2, {"v": 2, "note": 42}, 20),  # writes the changed column: refused
                   upsert(v2, 3, {"v": 3}, 20),  # does not: written
                   upsert(other, 2, {"v": 2}, 20))
    assert (result.status, result.dead_letters) == ("applied", 1)
    [entry] = dlq.list()
    assert (entry.table, entry.rows) == (v1.name, 1)
    assert "note" in entry.message and "cannot convert" in entry.message, entry.message
    assert {k: r["v"] for k, r in side.rows(dest, v2).items()} == {1: 1, 3: 3}
    assert {k: r["note"] for k, r in side.rows(dest, v2).items()} == {1: "text value", 3: None}
    assert {k: r["v"] for k, r in side.rows(dest, other).items()} == {1: 1, 2: 2}
    dest.close()


def test_new_table_appears_and_dropped_table_keeps_its_data(side):
    first = base_table(v="int")
    dest = side.make(first)
    write(dest, first, 1, {"v": 1}, 10)
    later = replace(base_table(v="int", label="text"), keyspace=first.keyspace, name="arrived_later")
    write(dest, later, 7, {"v": 7, "label": "first change"}, 20)
    assert {k: (r["v"], r["label"]) for k, r in side.rows(dest, later).items()} == {7: (7, "first change")}
    dest.close()
    # `first` is dropped in Cassandra: no batch of it arrives again; a new destination object (a
    # restarted writer) still finds its rows
    dest = side.make(first)
    write(dest, later, 8, {"v": 8}, 30)
    assert {k: r["v"] for k, r in side.rows(dest, first).items()} == {1: 1}
    dest.close()


def test_batch_prepared_before_the_change_is_prepared_again_by_the_writer(side):
    """The transform stage prepares batches with an unopened destination, which cannot know that the
    destination's table has columns the batch's schema lacks: the writer prepares them again."""
    v1 = base_table(v="int", note="text")
    dest = side.make(v1)
    writer = DestinationWriter(dest)
    writer.start()
    v2 = version(v1, v="int", extra="text")

    def apply(*tables_and_values):
        items = []
        for table, key, values, ts in tables_and_values:
            decoded_as, batch = upsert(table, key, values, ts)
            items.append(TableBatch(decoded_as, batch, side.make_unopened(table).prepare(decoded_as, batch)))
        position = next(_positions)
        return writer.apply("n1", TransformedSet(1, CommitLogPosition(1, position + 99), False, items))

    assert apply((v1, 1, {"v": 1, "note": "a"}, 10)).status == "applied"
    assert apply((v2, 2, {"v": 2, "extra": "x"}, 20)).status == "applied"  # the writer adds `extra`
    with pytest.raises(StalePreparedError):  # prepared for the table without `extra`
        decoded_as, batch = upsert(v1, 3, {"v": 3}, 30)
        dest.write_prepared(side.make_unopened(v1).prepare(decoded_as, batch), [])
    assert apply((v1, 3, {"v": 3, "note": "c"}, 30)).status == "applied"
    rows = side.rows(dest, v2)
    assert {k: (r["v"], r["note"], r["extra"]) for k, r in rows.items()} == {
        1: (1, "a", None), 2: (2, None, "x"), 3: (3, "c", None)}
    dest.close()


@pytest.mark.parametrize("policy", ["keep", "drop"])
def test_schema_changes_read_from_the_log_reach_the_destination(side, policy, tmp_path):
    """The pipeline's own schema source: segments holding the table's creation, an ALTER TABLE ADD and
    a DROP as system_schema mutations between its rows (CommitLogReader(schema_from_log=True))."""
    ks = "evo_" + uuid.uuid4().hex[:8]
    table_id = uuid.uuid4()
    base = parse_cql_schema(f"CREATE TABLE {ks}.users (id int PRIMARY KEY, name text) WITH ID = {table_id};")[0]
    wider = parse_cql_schema(f"CREATE TABLE {ks}.users (id int PRIMARY KEY, name text, age int) "
                             f"WITH ID = {table_id};")[0]
    narrower = replace(wider, columns=tuple(c for c in wider.columns if c.name != "name"))

    def row(table, key, values, ts):
        return encode_mutation(MutationBuilder(table, {"id": key}).insert({}, values, timestamp=BASE + ts).mutation())

    bodies = [history._create_table(base, BASE), row(base, 1, {"name": "ann"}, 1),
              history._add_column(wider, "age", BASE + 2), row(wider, 2, {"name": "bob", "age": 33}, 3),
              history._drop_column(wider, "name", "text", BASE + 4), row(narrower, 3, {"age": 7}, 5)]
    segment = history._segment(tmp_path, BASE // 1000, bodies)
    dest = side.make(base, policy)
    for table, batch in CommitLogReader(schema_from_log=True).arrow_batches([segment]):
        assert not dest.write(table, batch, []).rejected
    rows = side.rows(dest, narrower)
    assert {k: r["age"] for k, r in rows.items()} == {1: None, 2: 33, 3: 7}
    if policy == "keep":
        assert {k: r["name"] for k, r in rows.items()} == {1: "ann", 2: "bob", 3: None}
    else:
        assert all("name" not in r for r in rows.values()) and "name" not in side.types(dest, base)
    dest.close()


def test_added_collection_and_static_columns(side):
    """A non-frozen set (merged element by element: PostgreSQL adds its element-state column,
    ClickHouse its element columns) and a first static column (PostgreSQL: a new static table)."""
    v1 = base_table(v="int")
    dest = side.make(v1)
    write(dest, v1, 1, {"v": 1}, 10)
    v2 = replace(v1, columns=v1.columns + (col("tags", "set<text>"), col("s", "int", ColumnKind.STATIC)))

    def apply(builder):
        [(decoded_as, batch)] = list(arrow_batches([DecodedMutation(CommitLogPosition(1, next(_positions)),
                                                                    builder.mutation())]))
        assert not dest.write(decoded_as, batch, []).rejected

    apply(MutationBuilder(v2, {"id": 1}).append_to({"at": AT}, "tags", {"x", "y"}, BASE + 20))
    apply(MutationBuilder(v2, {"id": 1}).append_to({"at": AT}, "tags", {"z"}, BASE + 30))
    apply(MutationBuilder(v2, {"id": 2}).insert({"at": AT}, {"v": 2}, timestamp=BASE + 20))
    apply(MutationBuilder(v2, {"id": 2}).static({"s": 5}, timestamp=BASE + 40))
    rows = side.rows(dest, v2)
    assert {k: (r["v"], sorted(r["tags"] or [])) for k, r in rows.items()} == {1: (1, ["x", "y", "z"]), 2: (2, [])}
    assert side.static(dest, v2) == {2: 5}
    dest.close()
