"""ClickHouse DDL from a Cassandra table: type mapping, the replicated table and its side tables.

Type mapping (lossless first, then queryable):
- ascii/text/varchar -> String; blob/custom -> String (raw bytes); inet -> String (its text form);
- varint, decimal -> String (the exact decimal text: ClickHouse's Decimal caps precision at 76 digits,
  varint has none);
- boolean -> Bool; tinyint..bigint/counter -> Int8..Int64; float -> Float32; double -> Float64;
- uuid/timeuuid -> UUID; date -> Date32; timestamp -> DateTime64(3, 'UTC');
- time -> Int64 (nanoseconds since midnight: Time64 is still experimental in ClickHouse);
- duration -> Tuple(months, days, nanoseconds) of Nullable Int32/Int32/Int64 (all NULL: no value);
- list/set/vector -> Array(T); map -> Map(K, V) (Array(Tuple(key, value)) when the key is not a
  scalar ClickHouse allows as a Map key); tuple -> Tuple(`0` T, `1` T, ...); UDT -> Tuple(field T, ...).
Scalars are Nullable; Arrays, Maps and Tuples cannot be in ClickHouse, so an absent collection is stored
empty (Cassandra itself does not tell an empty collection from a null one).

Every replicated table also has the bookkeeping columns of the merge (see `merge.py`):
`_ts` (column -> writetime of the cell it holds, '_row' for the row marker; only the writetimes other
than `_version`, -1 for a column without a cell), `_exp` (column -> expiry,
seconds), `_deleted_at` (the row's newest tombstone, µs, 0 = none), `_version` (ReplacingMergeTree
version: max of the writetimes and previous version + 1), `_is_deleted`, `_expires_at` (0 = never),
`_purge_at` (when the TTL clause may remove the row, see below), `_cells` and `_cells_exp` (only in
tables with a non-frozen collection or UDT: their element state and element expiries, see `cells.py`).

Physical expiry. Every merge writes a new row next to the versions it supersedes, and ReplacingMergeTree
drops those only when a merge happens to hold them together with the newer one. A TTL that removed a
row at its own `_expires_at` would therefore let an older version of the key, still in another part,
read as current again: a row written without TTL, then overwritten with expiring cells, would come
back once they expired (in Cassandra the expired cells stay tombstones with their writetime and shadow
the older ones). So the TTL is on `_purge_at`, the max of the row's own expiry and the `_purge_at` of
the stored row it was merged from (which bounds every older version: each was merged from the one
before it). When a row is removed, every older version still stored has passed its own `_purge_at`,
hence its own expiry, or is a tombstone row: none of them reads as live. `_purge_at` = PURGE_NEVER when
some version never expires; 0 for a tombstone row over nothing live. Tombstone rows are never removed.

Changes can arrive out of writetime order (replicas' segments, several writers, a replayed backlog). An
expired row still shadows older changes that arrive after it, so it must be stored when they do: a row
is removed no sooner than PURGE_GRACE (the destination's `purge_grace`) after it was written here
(`_written_at`, filled by ClickHouse), like Cassandra's gc_grace_seconds for tombstones. Without it, a backlog of changes whose TTL had
already passed lost the newer, expired version at its insert, and an older change of the same cells
read as live once it arrived.
"""

from __future__ import annotations

from ray_cdc.errors import FatalDestinationError
from ray_cdc.schema.model import ColumnSchema, TableSchema
from ray_cdc.schema.types import CqlType

OFFSETS_TABLE = "ray_cdc_offsets"
NEVER = "toDateTime('2106-02-07 00:00:00', 'UTC')"  # the TTL of a row that never expires
PURGE_NEVER = 2**32 - 1  # `_purge_at` of a row some version of which never expires (the last DateTime)
PURGE_GRACE = 10 * 24 * 3600  # s a row is kept after it was written here (Cassandra's default gc_grace_seconds)

_SCALARS = {
    "ascii": "String", "text": "String", "varchar": "String", "blob": "String", "custom": "String",
    "inet": "String", "varint": "String", "decimal": "String", "boolean": "Bool", "tinyint": "Int8",
    "smallint": "Int16", "int": "Int32", "bigint": "Int64", "counter": "Int64", "float": "Float32",
    "double": "Float64", "uuid": "UUID", "timeuuid": "UUID", "date": "Date32",
    "timestamp": "DateTime64(3, 'UTC')", "time": "Int64", "empty": "String",
}
_DURATION = "Tuple(months Nullable(Int32), days Nullable(Int32), nanoseconds Nullable(Int64))"
# scalar ClickHouse types that Map accepts as keys (no Float, no Nullable, no composites)
_MAP_KEYS = frozenset(("String", "Bool", "Int8", "Int16", "Int32", "Int64", "UUID", "Date32",
                       "DateTime64(3, 'UTC')"))

META_COLUMNS = (
    ("_ts", "Map(String, Int64)"),
    ("_exp", "Map(String, UInt32)"),
    ("_deleted_at", "Int64"),
    ("_version", "Int64"),
    ("_is_deleted", "UInt8"),
    ("_expires_at", "DateTime('UTC')"),
    ("_purge_at", "DateTime('UTC')"),
)
ELEMENT_COLUMNS = (
    ("_cells", "Map(String, String)"),
    ("_cells_exp", "Map(String, Array(UInt32))"),
)


def has_elements(table: TableSchema) -> bool:
    """Whether the table has a non-frozen collection or UDT (and so the element-state columns)."""
    return any(c.type.is_multicell for c in value_columns(table))


# primary key types the destination keys rows by: scalars ClickHouse compares exactly (a composite key
# column, a frozen collection or tuple, is refused rather than matched approximately)
KEY_TYPES = frozenset(("ascii", "text", "varchar", "inet", "varint", "decimal", "blob", "custom", "boolean",
                       "tinyint", "smallint", "int", "bigint", "counter", "time", "float", "double", "uuid",
                       "timeuuid", "date", "timestamp"))


def check_key_types(table: TableSchema) -> None:
    """Raises FatalDestinationError, naming the column and table, for a key column of another type."""
    for column in key_columns(table):
        if column.type.name not in KEY_TYPES:
            raise FatalDestinationError(
                f"{table.keyspace}.{table.name}: primary key column {column.name} of type {column.type.cql()} "
                "is not supported by the ClickHouse destination", destination="clickhouse")


def quote(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def is_scalar(t: CqlType) -> bool:
    return t.name in _SCALARS


def ch_type(t: CqlType, *, nullable: bool = True) -> str:
    """The ClickHouse type of a CQL type; `nullable` wraps scalars (composites cannot be Nullable)."""
    if t.name in _SCALARS:
        base = _SCALARS[t.name]
        return f"Nullable({base})" if nullable else base
    return _COMPOSITES[t.name](t)


def _array(t: CqlType) -> str:
    return f"Array({ch_type(t.params[0])})"


def _map(t: CqlType) -> str:
    key, value = t.params
    key_type = ch_type(key, nullable=False)
    if key_type in _MAP_KEYS:
        return f"Map({key_type}, {ch_type(value)})"
    return f"Array(Tuple(key {key_type}, value {ch_type(value)}))"


def _tuple(t: CqlType) -> str:
    return "Tuple(" + ", ".join(f"{quote(str(i))} {ch_type(p)}" for i, p in enumerate(t.params)) + ")"


def _udt(t: CqlType) -> str:
    return "Tuple(" + ", ".join(f"{quote(n)} {ch_type(p)}" for n, p in zip(t.field_names, t.params)) + ")"


_COMPOSITES = {"list": _array, "set": _array, "vector": _array, "map": _map, "tuple": _tuple, "udt": _udt,
               "duration": lambda t: _DURATION}


def value_columns(table: TableSchema) -> list[ColumnSchema]:
    """Non-key columns, in batch order (statics first)."""
    return [*table.static, *table.regular]


def key_columns(table: TableSchema) -> list[ColumnSchema]:
    return [*table.partition_key, *table.clustering]


def qualified(table: TableSchema, suffix: str = "") -> str:
    return f"{quote(table.keyspace)}.{quote(table.name + suffix)}"


def _key_defs(table: TableSchema) -> list[str]:
    # a static row has no clustering: clustering columns are Nullable when the table has statics
    ck_nullable = bool(table.static)
    defs = [f"{quote(c.name)} {ch_type(c.type, nullable=False)}" for c in table.partition_key]
    defs += [f"{quote(c.name)} {ch_type(c.type, nullable=ck_nullable and is_scalar(c.type))}"
             for c in table.clustering]
    return defs


def _order_by(columns: list[ColumnSchema]) -> str:
    return "(" + ", ".join(quote(c.name) for c in columns) + ")"


def _settings(table: TableSchema, dedup_window: int) -> str:
    settings = [f"non_replicated_deduplication_window = {dedup_window}"]
    if table.static and table.clustering:
        settings.append("allow_nullable_key = 1")
    return " SETTINGS " + ", ".join(settings)


def create_table(table: TableSchema, dedup_window: int = 10_000, purge_grace: int = PURGE_GRACE) -> str:
    """The replicated table. `non_replicated_deduplication_window` makes a non-replicated MergeTree
    remember the last N insert tokens, which is what makes a re-sent batch a no-op."""
    defs = _key_defs(table) + [f"{quote(c.name)} {ch_type(c.type)}" for c in value_columns(table)]
    defs += [f"{quote(n)} {t}" for n, t in META_COLUMNS + (ELEMENT_COLUMNS if has_elements(table) else ())]
    defs.append("`_written_at` DateTime('UTC') DEFAULT now()")  # never inserted: ClickHouse's clock
    purge = f"greatest(_purge_at, _written_at + INTERVAL {int(purge_grace)} SECOND)"
    return (f"CREATE TABLE IF NOT EXISTS {qualified(table)} ({', '.join(defs)}) "
            f"ENGINE = ReplacingMergeTree(_version, _is_deleted) ORDER BY {_order_by(key_columns(table))} "
            f"TTL if(_is_deleted OR _purge_at = 0, {NEVER}, {purge})" + _settings(table, dedup_window))


def create_deleted_partitions(table: TableSchema, dedup_window: int = 10_000) -> str:
    """Partition tombstones: the newest deletion time per partition (ReplacingMergeTree keeps the max)."""
    defs = [f"{quote(c.name)} {ch_type(c.type, nullable=False)}" for c in table.partition_key]
    return (f"CREATE TABLE IF NOT EXISTS {qualified(table, '__deleted_partitions')} "
            f"({', '.join(defs)}, deleted_at Int64) ENGINE = ReplacingMergeTree(deleted_at) "
            f"ORDER BY {_order_by(list(table.partition_key))} "
            f"SETTINGS non_replicated_deduplication_window = {dedup_window}")


def bound_type(table: TableSchema) -> str:
    return "Tuple(" + ", ".join(f"{quote(c.name)} {ch_type(c.type)}" for c in table.clustering) + ")"


def create_deleted_ranges(table: TableSchema, dedup_window: int = 10_000) -> str:
    """Range tombstones: every range delete of a partition, kept whole (bounds are clustering prefixes)."""
    defs = [f"{quote(c.name)} {ch_type(c.type, nullable=False)}" for c in table.partition_key]
    bound = bound_type(table)
    defs += [f"start {bound}", "start_size Int8", "start_inclusive Bool",
             f"end {bound}", "end_size Int8", "end_inclusive Bool", "deleted_at Int64"]
    return (f"CREATE TABLE IF NOT EXISTS {qualified(table, '__deleted_ranges')} ({', '.join(defs)}) "
            f"ENGINE = MergeTree ORDER BY {_order_by(list(table.partition_key))} "
            f"SETTINGS non_replicated_deduplication_window = {dedup_window}")


def create_offsets(database: str) -> str:
    """Offsets: `_version` = position * 2 + completed, so the highest position wins and, at the same
    position, a completed segment wins over a not-yet-completed one."""
    return (f"CREATE TABLE IF NOT EXISTS {quote(database)}.{OFFSETS_TABLE} (destination String, "
            "partition_id String, node String, segment_id Int64, position Int64, completed Bool, "
            "_version Int64, updated_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
            "ENGINE = ReplacingMergeTree(_version) ORDER BY (destination, partition_id) "
            "SETTINGS non_replicated_deduplication_window = 10000")


def create_live_view(table: TableSchema) -> str:
    """`<t>__live`: the table as Cassandra would answer it now. FINAL picks each key's newest row,
    tombstone rows and expired rows are left out (after FINAL: an expired newest row hides the older
    versions still stored), and a cell whose own TTL has passed reads as empty (a row can mix expiring
    and non-expiring cells; the TTL clause only removes whole rows)."""
    keys = [quote(c.name) for c in key_columns(table)]
    values = [f"if(_exp[{sql_string(c.name)}] > 0 AND _exp[{sql_string(c.name)}] <= toUInt32(now()), "
              f"defaultValueOfArgumentType({quote(c.name)}), {_unexpired(c)}) AS {quote(c.name)}"
              for c in value_columns(table)]
    return (f"CREATE VIEW IF NOT EXISTS {qualified(table, '__live')} AS SELECT {', '.join(keys + values)} "
            f"FROM {qualified(table)} FINAL WHERE NOT _is_deleted AND (_expires_at = 0 OR _expires_at > now())")


def _unexpired(c: ColumnSchema) -> str:
    """A non-frozen collection / UDT without its expired elements (`_cells_exp`: one expiry per stored
    element, 0 = never; empty when none expires)."""
    name = quote(c.name)
    if not c.type.is_multicell:
        return name
    xp = f"_cells_exp[{sql_string(c.name)}]"
    keep = "x = 0 OR x > toUInt32(now())"
    if c.type.name in ("list", "set") or not ch_type(c.type).startswith("Map("):
        if c.type.name == "udt":
            fields = [f"if({xp}[{i + 1}] > 0 AND {xp}[{i + 1}] <= toUInt32(now()), "
                      f"defaultValueOfArgumentType(tupleElement({name}, {i + 1})), tupleElement({name}, {i + 1}))"
                      for i in range(len(c.type.params))]
            filtered = f"CAST(tuple({', '.join(fields)}), {sql_string(ch_type(c.type))})"
        else:
            filtered = f"arrayFilter((v, x) -> {keep}, {name}, {xp})"
    else:
        filtered = (f"mapFromArrays(arrayFilter((k, x) -> {keep}, mapKeys({name}), {xp}), "
                    f"arrayFilter((v, x) -> {keep}, mapValues({name}), {xp}))")
    return f"if(length({xp}) = 0, {name}, {filtered})"


def sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def scratch_statements(table: TableSchema, keys_table: str, parts_table: str) -> list[str]:
    """The Memory tables a writer fills with a batch's keys to read their stored rows (`store.py`)."""
    pk = [f"{quote(c.name)} {ch_type(c.type, nullable=False)}" for c in table.partition_key]
    return [f"CREATE TABLE IF NOT EXISTS {keys_table} ({', '.join(_key_defs(table))}) ENGINE = Memory",
            f"CREATE TABLE IF NOT EXISTS {parts_table} ({', '.join(pk)}) ENGINE = Memory"]


def table_statements(table: TableSchema, purge_grace: int = PURGE_GRACE) -> list[str]:
    statements = [f"CREATE DATABASE IF NOT EXISTS {quote(table.keyspace)}",
                  create_table(table, purge_grace=purge_grace),
                  create_deleted_partitions(table)]
    if table.clustering:
        statements.append(create_deleted_ranges(table))
    return statements + [create_live_view(table)]
