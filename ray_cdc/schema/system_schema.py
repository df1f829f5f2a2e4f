"""The fixed schemas of Cassandra's `system_schema` tables (3.0 to 5.0), with their table ids.

Schema changes travel through the commitlog as ordinary mutations of these tables (format doc
§16 item 4). Their ids are name-based (`UUID.nameUUIDFromBytes(keyspace + table)`), and the
decoder matches columns by name, so one superset schema per table (every column any version
3.0–5.0 has) decodes all versions.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
from ray_cdc.schema.types import parse_cql_type

KEYSPACE = "system_schema"

_TABLE_OPTIONS = (
    ("bloom_filter_fp_chance", "double"),
    ("caching", "frozen<map<text, text>>"),
    ("cdc", "boolean"),
    ("comment", "text"),
    ("compaction", "frozen<map<text, text>>"),
    ("compression", "frozen<map<text, text>>"),
    ("crc_check_chance", "double"),
    ("dclocal_read_repair_chance", "double"),
    ("default_time_to_live", "int"),
    ("extensions", "frozen<map<text, blob>>"),
    ("gc_grace_seconds", "int"),
    ("id", "uuid"),
    ("max_index_interval", "int"),
    ("memtable_flush_period_in_ms", "int"),
    ("min_index_interval", "int"),
    ("read_repair_chance", "double"),
    ("speculative_retry", "text"),
    ("additional_write_policy", "text"),
    ("read_repair", "text"),
    ("memtable", "text"),
    ("allow_auto_snapshot", "boolean"),
    ("incremental_backups", "boolean"),
)

# name -> (clustering columns, regular columns); the partition key is always keyspace_name text
_TABLES: dict[str, tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]] = {
    "keyspaces": ((), (("durable_writes", "boolean"), ("replication", "frozen<map<text, text>>"))),
    "tables": ((("table_name", "text"),), (("flags", "frozen<set<text>>"),) + _TABLE_OPTIONS),
    "columns": (
        (("table_name", "text"), ("column_name", "text")),
        (("clustering_order", "text"), ("column_name_bytes", "blob"), ("kind", "text"),
         ("position", "int"), ("type", "text")),
    ),
    "column_masks": (
        (("table_name", "text"), ("column_name", "text")),
        (("function_keyspace", "text"), ("function_name", "text"),
         ("function_argument_types", "frozen<list<text>>"), ("function_argument_values", "frozen<list<text>>")),
    ),
    "dropped_columns": (
        (("table_name", "text"), ("column_name", "text")),
        (("dropped_time", "timestamp"), ("kind", "text"), ("type", "text")),
    ),
    "triggers": ((("table_name", "text"), ("trigger_name", "text")), (("options", "frozen<map<text, text>>"),)),
    "views": (
        (("view_name", "text"),),
        (("base_table_id", "uuid"), ("base_table_name", "text"), ("where_clause", "text"),
         ("include_all_columns", "boolean")) + _TABLE_OPTIONS,
    ),
    "types": (
        (("type_name", "text"),),
        (("field_names", "frozen<list<text>>"), ("field_types", "frozen<list<text>>")),
    ),
    "functions": (
        (("function_name", "text"), ("argument_types", "frozen<list<text>>")),
        (("argument_names", "frozen<list<text>>"), ("body", "text"), ("called_on_null_input", "boolean"),
         ("language", "text"), ("return_type", "text"), ("deterministic", "boolean"),
         ("monotonic", "boolean"), ("monotonic_on", "frozen<list<text>>")),
    ),
    "aggregates": (
        (("aggregate_name", "text"), ("argument_types", "frozen<list<text>>")),
        (("final_func", "text"), ("initcond", "text"), ("return_type", "text"), ("state_func", "text"),
         ("state_type", "text"), ("deterministic", "boolean")),
    ),
    "indexes": (
        (("table_name", "text"), ("index_name", "text")),
        (("kind", "text"), ("options", "frozen<map<text, text>>")),
    ),
}


def system_table_id(keyspace: str, table: str) -> UUID:
    """Java's `UUID.nameUUIDFromBytes(keyspace + table)`: MD5, version 3 (not Python's uuid3,
    which prepends a namespace)."""
    digest = bytearray(hashlib.md5((keyspace + table).encode("utf-8")).digest())
    digest[6] = (digest[6] & 0x0F) | 0x30
    digest[8] = (digest[8] & 0x3F) | 0x80
    return UUID(bytes=bytes(digest))


def _table(name: str, clustering, regular, keyspace: str = KEYSPACE, key: str = "keyspace_name") -> TableSchema:
    columns = [ColumnSchema(key, parse_cql_type("text"), ColumnKind.PARTITION_KEY)]
    columns += [
        ColumnSchema(n, parse_cql_type(t), ColumnKind.CLUSTERING, position=i) for i, (n, t) in enumerate(clustering)
    ]
    columns += [ColumnSchema(n, parse_cql_type(t), ColumnKind.REGULAR) for n, t in regular]
    return TableSchema(keyspace, name, system_table_id(keyspace, name), tuple(columns))


SYSTEM_SCHEMA_TABLES: dict[UUID, TableSchema] = {
    t.id: t for t in (_table(name, ck, reg) for name, (ck, reg) in _TABLES.items())
}

# system.local (3.0–5.0 superset): every segment has its mutations, and its non-frozen set and
# map columns make it real-world evidence for the complex-cell decoding.
SYSTEM_LOCAL = _table("local", (), (
    ("bootstrapped", "text"), ("broadcast_address", "inet"), ("broadcast_port", "int"),
    ("cluster_name", "text"), ("cql_version", "text"), ("data_center", "text"), ("gossip_generation", "int"),
    ("host_id", "uuid"), ("listen_address", "inet"), ("listen_port", "int"),
    ("native_protocol_version", "text"), ("partitioner", "text"), ("rack", "text"),
    ("release_version", "text"), ("rpc_address", "inet"), ("rpc_port", "int"), ("schema_version", "uuid"),
    ("thrift_version", "text"), ("tokens", "set<text>"), ("truncated_at", "map<uuid, blob>"),
), keyspace="system", key="key")

#: system tables whose schema is fixed and known here, by table id
KNOWN_SYSTEM_TABLES: dict[UUID, TableSchema] = {**SYSTEM_SCHEMA_TABLES, SYSTEM_LOCAL.id: SYSTEM_LOCAL}
