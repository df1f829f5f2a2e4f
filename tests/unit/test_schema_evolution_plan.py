"""Schema evolution planning and batch shaping (ray_cdc.destinations.evolution), with the PostgreSQL and
ClickHouse type dialects, without a server."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

from ray_cdc.commitlog.arrow_batches import arrow_batches
from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.reader import DecodedMutation
from ray_cdc.destinations.clickhouse import evolve as ch
from ray_cdc.destinations.evolution import (
    DestColumn,
    IncompatibleColumnChange,
    SchemaEvolutionError,
    fit_batch,
    plan,
)
from ray_cdc.destinations.postgres import evolve as pg
from ray_cdc.destinations.postgres.ddl import names_for
from ray_cdc.errors import RayCdcError
from ray_cdc.schema.model import ColumnKind, ColumnSchema, DroppedColumn, TableSchema
from ray_cdc.schema.types import parse_cql_type
from tests.unit.test_config import MINIMAL

PG = pg.dialect("pg")
CH = ch.dialect("ch")
ID = uuid.uuid4()


def table(*regular: tuple[str, str], dropped=()) -> TableSchema:
    cols = [ColumnSchema("id", parse_cql_type("int"), ColumnKind.PARTITION_KEY)]
    cols += [ColumnSchema(n, parse_cql_type(t), ColumnKind.REGULAR) for n, t in regular]
    return TableSchema("ks", "t", ID, tuple(cols), tuple(dropped))


def stored(dialect, *columns: tuple[str, str]) -> list[DestColumn]:
    return [DestColumn(n, dialect.type_of(parse_cql_type(t)), ColumnKind.REGULAR) for n, t in columns]


def values(layout: TableSchema) -> list[tuple[str, str]]:
    return [(c.name, c.type.cql()) for c in layout.regular]


@pytest.mark.parametrize("dialect", [PG, CH])
def test_same_schema_needs_nothing_and_is_its_own_layout(dialect):
    t = table(("a", "int"), ("b", "text"))
    p = plan(t, stored(dialect, ("a", "int"), ("b", "text")), dialect)
    assert not p.changes_table and not p.conflicts and p.layout is t


@pytest.mark.parametrize("dialect", [PG, CH])
def test_added_column_goes_after_the_stored_ones(dialect):
    # Cassandra orders regular columns by name: the new `aa` comes first in the schema, last in the table
    t = table(("aa", "text"), ("b", "int"))
    p = plan(t, stored(dialect, ("b", "int")), dialect)
    assert [c.name for c in p.add] == ["aa"]
    assert values(p.layout) == [("b", "int"), ("aa", "text")]


@pytest.mark.parametrize("dialect", [PG, CH])
def test_older_batch_lacking_a_column_drops_nothing(dialect):
    newer = table(("a", "int"), ("b", "timestamp"))
    older = table(("a", "int"))
    p = plan(older, stored(dialect, ("a", "int"), ("b", "timestamp")), dialect, known=newer)
    assert not p.changes_table
    assert values(p.layout) == [("a", "int"), ("b", "timestamp")]


@pytest.mark.parametrize("policy", ["keep", "drop"])
def test_dropped_column_kept_or_dropped(policy):
    t = table(("a", "int"), dropped=[DroppedColumn("gone", parse_cql_type("text"), 5)])
    p = plan(t, stored(PG, ("a", "int"), ("gone", "text")), PG, dropped_columns=policy)
    if policy == "keep":
        assert p.drop == [] and values(p.layout) == [("a", "int"), ("gone", "text")]
    else:
        assert p.drop == ["gone"] and values(p.layout) == [("a", "int")]


@pytest.mark.parametrize("dialect, old, new", [(PG, "int", "bigint"), (PG, "float", "double"),
                                               (PG, "smallint", "varint"), (CH, "int", "bigint"),
                                               (CH, "tinyint", "int"), (CH, "float", "double")])
def test_widening_is_applied(dialect, old, new):
    p = plan(table(("a", new)), stored(dialect, ("a", old)), dialect)
    assert [c.name for c in p.widen] == ["a"] and not p.conflicts
    assert values(p.layout) == [("a", new)]


@pytest.mark.parametrize("dialect", [PG, CH])
def test_varchar_to_text_is_the_same_stored_type(dialect):
    assert not plan(table(("a", "text")), stored(dialect, ("a", "ascii")), dialect).changes_table


@pytest.mark.parametrize("dialect", [PG, CH])
def test_batch_narrower_than_the_stored_column_fits(dialect):
    p = plan(table(("a", "int")), stored(dialect, ("a", "bigint")), dialect)
    assert not p.changes_table and not p.conflicts
    assert values(p.layout) == [("a", "bigint")]


@pytest.mark.parametrize("dialect, old, new", [(PG, "text", "int"), (PG, "int", "timestamp"),
                                               (CH, "text", "int"), (CH, "int", "text")])
def test_incompatible_change_is_a_conflict_naming_table_and_column(dialect, old, new):
    p = plan(table(("a", new), ("b", "int")), stored(dialect, ("a", old), ("b", "int")), dialect)
    [conflict] = p.conflicts
    assert isinstance(conflict, IncompatibleColumnChange) and isinstance(conflict, RayCdcError)
    assert (conflict.table, conflict.column) == ("ks.t", "a")
    assert "ks.t" in str(conflict) and "column a" in str(conflict) and dialect.name in str(conflict)
    assert not p.changes_table
    assert values(p.layout)[0] == ("a", old)  # the column stays as stored


def test_unmappable_stored_column_is_a_typed_error():
    with pytest.raises(SchemaEvolutionError, match="ks.t: column odd is stored as tsvector"):
        plan(table(("a", "int")), [DestColumn("odd", "tsvector", ColumnKind.REGULAR)], PG)


# --- fit_batch -------------------------------------------------------------------------------------------


def batch_of(t: TableSchema, rows: list[dict]) -> pa.RecordBatch:
    decoded = [DecodedMutation(CommitLogPosition(1, 100 * (i + 1)),
                               MutationBuilder(t, {"id": i}).insert({}, cells, timestamp=1000 + i).mutation())
               for i, cells in enumerate(rows)]
    [(_, batch)] = list(arrow_batches(decoded))
    return batch


def test_fit_batch_refuses_rows_writing_a_conflicting_column_and_shapes_the_rest():
    stored_t = table(("a", "text"), ("b", "bigint"), ("c", "text"))
    batch_t = table(("a", "int"), ("b", "int"))  # a: text -> int (conflict); b narrower; c unknown to it
    p = plan(batch_t, stored(PG, ("a", "text"), ("b", "bigint"), ("c", "text")), PG, known=stored_t)
    batch = batch_of(batch_t, [{"a": 1, "b": 10}, {"b": 20}, {"a": None}, {"b": 40}])
    fitted = fit_batch(batch, p.layout, p.conflicts)
    assert [r for r, _ in fitted.refused] == [0, 2]  # a value or a cell deletion of `a`
    assert all("column a" in reason for _, reason in fitted.refused)
    out = fitted.batch
    assert out.column("b").type == pa.int64() and out.column("b").to_pylist() == [20, 40]
    assert out.column("a").to_pylist() == [None, None] and out.column("c").to_pylist() == [None, None]
    assert fitted.original_rows([(1, "refused by the server")]) == [
        (0, fitted.refused[0][1]), (2, fitted.refused[1][1]), (3, "refused by the server")]


def test_fit_batch_leaves_a_batch_in_shape_alone():
    t = table(("a", "int"))
    batch = batch_of(t, [{"a": 1}])
    assert fit_batch(batch, t).batch is batch


# --- the DDL -------------------------------------------------------------------------------------------------


def test_postgres_evolution_rebuilds_live_and_remaps_writetimes():
    before = stored(PG, ("a", "int"), ("gone", "text"), ("b", "int"))
    t = table(("a", "bigint"), ("b", "int"), ("new", "text"),
              dropped=[DroppedColumn("gone", parse_cql_type("text"), 5)])
    p = plan(t, before, PG, dropped_columns="drop")
    names = names_for(p.layout, "s")
    sql = pg.evolution_sql(p, {names.rows.state: before}, names)
    assert sql[0] == 'DROP VIEW IF EXISTS "s"."t"'
    assert sql[1] == 'ALTER TABLE "s"."t__state" DROP COLUMN _live'
    alter = sql[2]
    assert 'ADD COLUMN "new" text' in alter and 'ALTER COLUMN "a" TYPE bigint' in alter
    assert 'DROP COLUMN "gone"' in alter
    # a keeps its writetime (slot 1), b moves from slot 3 to 2, the new column starts at 0
    # (a row written whole has an empty `_ts`: each kept column's writetime is then its `_wt`)
    kept = [f"COALESCE(_ts[{i}], CASE WHEN cardinality(_ts) = 0 THEN _wt ELSE 0 END)" for i in (1, 3)]
    assert sql[3] == f'UPDATE "s"."t__state" SET _ts = ARRAY[{kept[0]}, {kept[1]}, 0]::bigint[]'
    assert sql[4].startswith('ALTER TABLE "s"."t__state" ADD COLUMN _live boolean GENERATED ALWAYS AS')
    assert '"new" IS NOT NULL' in sql[4]


def test_postgres_no_change_no_statements():
    t = table(("a", "int"))
    p = plan(t, stored(PG, ("a", "int")), PG)
    names = names_for(p.layout, "s")
    assert pg.evolution_sql(p, {names.rows.state: stored(PG, ("a", "int"))}, names) == []


def test_clickhouse_evolution_statements():
    t = table(("a", "bigint"), ("m", "map<text, int>"))
    p = plan(t, stored(CH, ("a", "int")), CH)
    drop_view, alter = ch.evolution_statements(p, had_elements=False)
    assert drop_view == "DROP VIEW IF EXISTS `ks`.`t__live`"
    assert "ADD COLUMN IF NOT EXISTS `m` Map(String, Nullable(Int32))" in alter
    assert "ADD COLUMN IF NOT EXISTS _cells Map(String, String)" in alter  # its first non-frozen collection
    assert "MODIFY COLUMN `a` Nullable(Int64)" in alter


def test_clickhouse_types_are_compared_as_clickhouse_prints_them():
    assert ch.normalized("Tuple(`0` Nullable(Int32), `1` String)") == ch.normalized("Tuple(0 Nullable(Int32), 1 String)")
    assert CH.cql_of("Nullable(DateTime64(3, 'UTC'))".replace(" ", "")) == parse_cql_type("timestamp")


# --- the configuration ----------------------------------------------------------------------------------------

CONFIG = MINIMAL + """\
destinations:
  pg: {type: postgres, dsn: "postgresql://u@db/x"}
  ch: {type: clickhouse, dsn: "http://ch:8123"}
  ts: {type: timescaledb, dsn: "postgresql://u@db/y"}
"""


def test_dropped_columns_setting_reaches_every_destination(tmp_path):
    from ray_cdc.config import load_config
    from ray_cdc.pipeline.run import EmbeddedServers, destination_factories

    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    assert load_config(path, environ={}).schema_evolution.dropped_columns == "keep"
    path.write_text(CONFIG + "schema_evolution:\n  dropped_columns: drop\n")
    factories = destination_factories(load_config(path, environ={}), EmbeddedServers())
    assert {n: f().__dict__["_dropped_columns"] for n, f in factories.items()} == {"pg": "drop", "ch": "drop",
                                                                                   "ts": "drop"}


@pytest.mark.parametrize("section, problem", [("  dropped_columns: delete\n", "dropped_columns"),
                                              ("  droped_columns: keep\n", "droped_columns")])
def test_bad_schema_evolution_settings_are_rejected_naming_the_key(tmp_path, section, problem):
    from ray_cdc.config import load_config
    from ray_cdc.errors import ConfigError

    path = tmp_path / "config.yaml"
    path.write_text(CONFIG + "schema_evolution:\n" + section)
    with pytest.raises(ConfigError, match=f"schema_evolution.{problem}"):
        load_config(path, environ={})
