"""The workload's tables: the demo schema (every CQL type the decoder reads) and the benchmark's wide
table, with ids that stay the same from run to run."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
from ray_cdc.schema.types import CqlType, parse_cql_type

__all__ = ["DEMO_KEYSPACE", "demo_tables", "wide_table"]

DEMO_KEYSPACE = "ray_cdc_demo"


def _table_id(keyspace: str, name: str) -> uuid.UUID:
    """A time-based id like Cassandra gives user tables, but derived from the name: stable across runs."""
    digest = uuid.uuid5(uuid.NAMESPACE_OID, f"{keyspace}.{name}").int
    ticks = 0x1EE7E0000000000 + (digest & 0xFFFFFFFFFF)  # late 2023, plus a per-name offset
    node = (digest >> 64) & 0xFFFFFFFFFFFF
    return uuid.UUID(fields=(ticks & 0xFFFFFFFF, (ticks >> 32) & 0xFFFF, ((ticks >> 48) & 0x0FFF) | 0x1000,
                             0x80 | ((digest >> 112) & 0x3F), (digest >> 120) & 0xFF, node))


@dataclass(frozen=True)
class _TableSpec:
    """A table in shorthand: (name, CQL type) per column; clustering entries add a DESC flag."""

    name: str
    partition: tuple[tuple[str, str], ...]
    clustering: tuple[tuple[str, str, bool], ...] = ()
    regular: tuple[tuple[str, str], ...] = ()
    static: tuple[tuple[str, str], ...] = ()

    def build(self, keyspace: str, user_types: dict) -> TableSchema:
        def typ(text: str) -> CqlType:
            return parse_cql_type(text, keyspace=keyspace, user_types=user_types)

        columns = [ColumnSchema(n, typ(t), ColumnKind.PARTITION_KEY, i) for i, (n, t) in enumerate(self.partition)]
        columns += [ColumnSchema(n, typ(t), ColumnKind.CLUSTERING, i, desc)
                    for i, (n, t, desc) in enumerate(self.clustering)]
        columns += [ColumnSchema(n, typ(t), ColumnKind.STATIC) for n, t in self.static]
        columns += [ColumnSchema(n, typ(t), ColumnKind.REGULAR) for n, t in self.regular]
        return TableSchema(keyspace, self.name, _table_id(keyspace, self.name), tuple(columns))


_ADDRESS_FIELDS = (("street", "text"), ("city", "text"), ("zip", "int"), ("tags", "frozen<set<text>>"))

_DEMO_SPECS = (
    # every simple type, a composite partition key, three clustering columns (one DESC), statics
    _TableSpec(
        "all_types",
        partition=(("tenant", "text"), ("bucket", "int")),
        clustering=(("event_time", "timeuuid", True), ("seq", "bigint", False), ("label", "ascii", False)),
        static=(("owner", "text"), ("revision", "bigint")),
        regular=(
            ("c_ascii", "ascii"), ("c_text", "text"), ("c_varchar", "varchar"), ("c_blob", "blob"),
            ("c_boolean", "boolean"), ("c_tinyint", "tinyint"), ("c_smallint", "smallint"), ("c_int", "int"),
            ("c_bigint", "bigint"), ("c_varint", "varint"), ("c_float", "float"), ("c_double", "double"),
            ("c_decimal", "decimal"), ("c_date", "date"), ("c_time", "time"), ("c_timestamp", "timestamp"),
            ("c_duration", "duration"), ("c_uuid", "uuid"), ("c_timeuuid", "timeuuid"), ("c_inet", "inet"),
            ("c_vector", "vector<float, 3>"), ("c_tuple", "tuple<int, text, boolean>"),
            ("c_address", "frozen<address>"),
        ),
    ),
    # non-frozen (multi-cell) collections and UDT next to frozen ones
    _TableSpec(
        "collections",
        partition=(("id", "bigint"),),
        clustering=(("ck", "int", False),),
        regular=(
            ("note", "text"), ("tags", "set<text>"), ("scores", "list<int>"), ("attrs", "map<text, int>"),
            ("home", "address"), ("visits", "map<timestamp, frozen<address>>"),
            ("f_list", "frozen<list<int>>"), ("f_set", "frozen<set<uuid>>"), ("f_map", "frozen<map<int, text>>"),
        ),
    ),
    # no clustering columns; same partition key as `collections` (multi-table mutations)
    _TableSpec(
        "profiles",
        partition=(("id", "bigint"),),
        regular=(("name", "text"), ("email", "text"), ("age", "int"), ("prefs", "map<text, text>"),
                 ("last_seen", "timestamp")),
    ),
    # counters live in a table of their own
    _TableSpec(
        "page_counters",
        partition=(("site", "text"), ("page", "text")),
        clustering=(("day", "date", True),),
        regular=(("hits", "counter"), ("bytes_served", "counter")),
    ),
)

_WIDE_SPEC = _TableSpec(
    "wide",
    partition=(("id", "bigint"),),
    clustering=(("ck", "int", False),),
    regular=(("c_text", "text"), ("c_int", "int"), ("c_bigint", "bigint"), ("c_double", "double"),
             ("c_boolean", "boolean"), ("c_timestamp", "timestamp"), ("c_uuid", "uuid"), ("c_text2", "text")),
)


def _user_types(keyspace: str) -> dict:
    fields = tuple((n, parse_cql_type(t, keyspace=keyspace)) for n, t in _ADDRESS_FIELDS)
    return {(keyspace, "address"): fields}


def demo_tables(keyspace: str = DEMO_KEYSPACE) -> list[TableSchema]:
    """Tables that use every CQL type the decoder reads, with a UDT (frozen and not), composite
    partition keys, several clustering columns incl. DESC, static columns and a counter table."""
    user_types = _user_types(keyspace)
    return [spec.build(keyspace, user_types) for spec in _DEMO_SPECS]


def wide_table(keyspace: str = DEMO_KEYSPACE) -> TableSchema:
    """The throughput benchmark's table: 10 columns of mixed types (keys included)."""
    return _WIDE_SPEC.build(keyspace, {})
