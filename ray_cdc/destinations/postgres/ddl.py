"""CQL -> PostgreSQL types, and the tables one Cassandra table becomes.

Per Cassandra table `t` (in schema `<keyspace>` unless configured):
- `t__state`: one row per primary key (partition key + clustering), every regular column, and the
  bookkeeping of the merge: `_ts bigint[]` (the writetime of each regular column's current cell or
  tombstone, by column ordinal; empty: `_wt` for each, see merge.stored_ts), `_row_ts` (row liveness: the writetime of the last INSERT),
  `_row_del` (the newest row/partition/range tombstone applied to the row), `_wt` (the row's newest
  writetime), `_expires_at`, `_ck` (an order-preserving byte key of the clustering columns, for range
  tombstones) and `_live` (generated: the row has liveness or a non-null cell). Dead rows are kept:
  their per-column writetimes are what keeps older late-arriving writes out. A non-frozen collection
  or UDT column `c` also has `"_cells.c"` (jsonb): its elements with their own writetimes, TTLs and
  tombstones, and its complex deletion; `c` is rendered from it (see cells.py).
- `t`: a VIEW of the live, unexpired rows of `t__state` with the user's columns, `_writetime` and
  `_expires_at`. This is the user-facing table: it answers as Cassandra's SELECT would now (a row
  kept alive only by collection elements that have all expired is gone; a partition with live static
  cells and no live row is one row with its clustering and regular columns NULL).
- `t__static` (+ view `t__statics`) when the table has static columns: the same per partition key.
- `t__deleted_partitions`, `t__deleted_rows`, `t__deleted_ranges`: tombstones, newest per key, so
  that later-arriving older writes stay deleted.

Type choices: `time` becomes `bigint` nanoseconds since midnight (PostgreSQL's `time` keeps
microseconds only; the column comment says so); `duration` becomes `interval`, which keeps
microseconds: nanoseconds below a microsecond are truncated (documented loss). Collections, tuples
and UDTs are `jsonb`; vectors of float/double are `real[]` / `double precision[]`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ray_cdc.schema.model import ColumnSchema, TableSchema
from ray_cdc.schema.types import CqlType

#: simple CQL type -> PostgreSQL type
PG_TYPES: dict[str, str] = {
    "ascii": "text", "text": "text", "varchar": "text", "blob": "bytea", "custom": "bytea",
    "boolean": "boolean", "tinyint": "smallint", "smallint": "smallint", "int": "integer",
    "bigint": "bigint", "counter": "bigint", "varint": "numeric", "decimal": "numeric",
    "float": "real", "double": "double precision", "date": "date", "time": "bigint",
    "timestamp": "timestamptz", "duration": "interval", "uuid": "uuid", "timeuuid": "uuid",
    "inet": "inet", "empty": "text",
}
_JSON_KINDS = frozenset(("list", "set", "map", "tuple", "udt"))
_VECTOR_ELEMENTS = {"float": "real[]", "double": "double precision[]"}
MAX_VALUE_COLUMNS = 62  # the present-columns mask is a bigint


def pg_type(t: CqlType) -> str:
    if t.name in _JSON_KINDS:
        return "jsonb"
    if t.name == "vector":
        return _VECTOR_ELEMENTS.get(t.params[0].name, "jsonb")
    return PG_TYPES[t.name]


def qi(name: str) -> str:
    """A quoted SQL identifier (Cassandra names may be mixed-case or reserved words)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Target:
    """One merge target: a state table keyed by `keys`, holding `values` with per-column writetimes."""

    schema: str
    state: str  # table name
    view: str
    keys: tuple[ColumnSchema, ...]
    values: tuple[ColumnSchema, ...]
    has_ck: bool  # keeps the `_ck` order key (the rows target of a table with clustering columns)

    @property
    def qstate(self) -> str:
        return f"{qi(self.schema)}.{qi(self.state)}"


@dataclass(frozen=True)
class TableNames:
    schema: str
    table: TableSchema
    rows: Target
    static: Target | None

    def q(self, suffix: str) -> str:
        return f"{qi(self.schema)}.{qi(self.table.name + suffix)}"


def names_for(table: TableSchema, schema: str | None) -> TableNames:
    schema = schema or table.keyspace
    pk, ck = table.partition_key, table.clustering
    rows = Target(schema, table.name + "__state", table.name, pk + ck, table.regular, bool(ck))
    static = None
    if table.static:
        static = Target(schema, table.name + "__static", table.name + "__statics", pk, table.static, False)
    return TableNames(schema, table, rows, static)


def _column_defs(columns) -> list[str]:
    out = []
    for c in columns:
        out.append(f"{qi(c.name)} {pg_type(c.type)}")
    return out


def complex_values(t: Target) -> list[ColumnSchema]:
    """The target's non-frozen collection / UDT columns (merged element by element)."""
    return [c for c in t.values if c.is_complex]


def live_column(t: Target) -> str:
    """`_live`: the row has liveness or a non-null cell (re-created when the value columns change)."""
    live = " OR ".join(["_row_ts > _row_del"] + [f"{qi(c.name)} IS NOT NULL" for c in t.values])
    return f"_live boolean GENERATED ALWAYS AS ({live}) STORED"


def _state_ddl(t: Target) -> list[str]:
    from ray_cdc.destinations.postgres import cells

    keys = [qi(c.name) for c in t.keys]
    cells_defs = [f"{qi(cells.state_column(c))} jsonb" for c in complex_values(t)]
    cols = _column_defs(t.keys) + _column_defs(t.values) + cells_defs + [
        "_ts bigint[] NOT NULL", "_row_ts bigint NOT NULL DEFAULT 0", "_row_del bigint NOT NULL DEFAULT 0",
        "_wt bigint NOT NULL DEFAULT 0", "_expires_at timestamptz",
        *(["_ck bytea"] if t.has_ck else []),
        live_column(t),
        f"PRIMARY KEY ({', '.join(keys)})",
    ]
    stmts = [f"CREATE TABLE IF NOT EXISTS {t.qstate} ({', '.join(cols)})"]
    # No index on (partition key, _ck): range tombstones find a partition's rows through the primary
    # key's prefix and filter on _ck; a second index would cost every insert about 40% more.
    for c in t.values:
        if c.type.name == "time":
            stmts.append(f"COMMENT ON COLUMN {t.qstate}.{qi(c.name)} IS 'CQL time: nanoseconds since midnight'")
    return stmts


def shown_sql(t: Target, alias: str) -> list[str]:
    """The view's user columns of state rows `alias`: non-frozen collections without expired elements."""
    from ray_cdc.destinations.postgres import cells

    out = [f"{alias}.{qi(c.name)}" for c in t.keys]
    for c in t.values:
        if c.is_complex:
            view = cells.view_sql(qi(t.schema), c, f"{alias}.{qi(c.name)}", f"{alias}.{qi(cells.state_column(c))}")
            out.append(f"{view} AS {qi(c.name)}")
        else:
            out.append(f"{alias}.{qi(c.name)}")
    return out


def visible_sql(t: Target, alias: str) -> str:
    """Whether Cassandra would return state row `alias` now: live, unexpired, and, when it has
    non-frozen collections, kept alive by something other than elements that have all expired since
    (the stored `_live` counts those columns as long as they hold any element)."""
    from ray_cdc.destinations.postgres import cells

    out = f"{alias}._live AND ({alias}._expires_at IS NULL OR {alias}._expires_at > now())"
    expiring = complex_values(t)
    if expiring:
        alive = [f"{alias}._row_ts > {alias}._row_del"]
        alive += [f"{alias}.{qi(c.name)} IS NOT NULL" for c in t.values if not c.is_complex]
        alive += [f"{cells.view_sql(qi(t.schema), c, f'{alias}.{qi(c.name)}', f'{alias}.{qi(cells.state_column(c))}')}"
                  " IS NOT NULL" for c in expiring]
        out += f" AND ({' OR '.join(alive)})"
    return out


def view_ddl(names: TableNames, t: Target) -> str:
    """The user-facing view of a target. For the rows of a table with static columns, a partition that
    has live static cells and no live row shows as one row with the clustering and regular columns
    NULL, as Cassandra's SELECT returns it."""
    view = f"{qi(t.schema)}.{qi(t.view)}"
    select = (f"SELECT {', '.join(shown_sql(t, 's'))}, s._wt AS _writetime, s._expires_at "
              f"FROM {t.qstate} AS s WHERE {visible_sql(t, 's')}")
    static = names.static
    if t is names.rows and static is not None:
        pk = names.table.partition_key
        nulls = [f"NULL::{pg_type(c.type)} AS {qi(c.name)}" for c in names.table.clustering + t.values]
        same_partition = " AND ".join(f"x.{qi(c.name)} = p.{qi(c.name)}" for c in pk)
        select += (f" UNION ALL SELECT {', '.join(f'p.{qi(c.name)}' for c in pk)}, {', '.join(nulls)}, "
                   f"p._wt AS _writetime, p._expires_at FROM {static.qstate} AS p WHERE {visible_sql(static, 'p')} "
                   f"AND NOT EXISTS (SELECT 1 FROM {t.qstate} AS x WHERE {same_partition} AND {visible_sql(t, 'x')})")
    return f"CREATE OR REPLACE VIEW {view} AS {select}"


def table_ddl(names: TableNames) -> list[str]:
    """Idempotent statements creating every table and view of one Cassandra table."""
    table = names.table
    n_values = max(len(table.regular), len(table.static))
    if n_values > MAX_VALUE_COLUMNS:
        raise ValueError(f"{table.qualified_name}: more than {MAX_VALUE_COLUMNS} non-key columns")
    pk = _column_defs(table.partition_key)
    pk_names = ", ".join(qi(c.name) for c in table.partition_key)
    stmts = [f"CREATE SCHEMA IF NOT EXISTS {qi(names.schema)}"]
    if any(c.is_complex for c in table.static + table.regular):
        from ray_cdc.destinations.postgres import cells

        stmts += cells.function_ddl(qi(names.schema), names.schema)
    targets = [names.rows] + ([names.static] if names.static is not None else [])
    for t in targets:
        stmts += _state_ddl(t)
    stmts += [view_ddl(names, t) for t in targets]
    stmts.append(f"CREATE TABLE IF NOT EXISTS {names.q('__deleted_partitions')} "
                 f"({', '.join(pk)}, deleted_at bigint NOT NULL, PRIMARY KEY ({pk_names}))")
    if table.clustering:
        key = _column_defs(table.partition_key + table.clustering)
        key_names = ", ".join(qi(c.name) for c in table.partition_key + table.clustering)
        stmts.append(f"CREATE TABLE IF NOT EXISTS {names.q('__deleted_rows')} "
                     f"({', '.join(key)}, deleted_at bigint NOT NULL, PRIMARY KEY ({key_names}))")
        # lo inclusive, hi exclusive, both order keys (see ckey.py); '' and '\xff' are the open ends
        stmts.append(f"CREATE TABLE IF NOT EXISTS {names.q('__deleted_ranges')} "
                     f"({', '.join(pk)}, lo bytea NOT NULL, hi bytea NOT NULL, deleted_at bigint NOT NULL, "
                     f"PRIMARY KEY ({pk_names}, lo, hi))")
    return stmts


OFFSETS_DDL = """CREATE TABLE IF NOT EXISTS {schema}.ray_cdc_offsets (
    destination text NOT NULL,
    partition_id text NOT NULL,
    node text NOT NULL,
    segment_id bigint NOT NULL,
    position bigint NOT NULL,
    completed boolean NOT NULL DEFAULT false,
    events bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (destination, partition_id))"""
