"""Table schemas from a live cluster, through cassandra-driver's schema metadata.

`load_cluster_schema(["10.0.0.1"], keyspaces=["shop"])` connects (or uses a given session), reads the
driver's `cluster.metadata` and the few things the driver does not expose, and returns one
`TableSchema` per table (and materialized view) of the keyspaces asked for.

What comes from where:
- columns, their kinds, order, clustering order (`is_reversed`) and CQL types: the driver's
  `TableMetadata` (`partition_key`, `clustering_key`, `columns`, `is_static`, `cql_type`); user types
  from `KeyspaceMetadata.user_types`, resolved in dependency order.
- table ids: driver 3.30 does not keep the id in `TableMetadata.options` (`id` is not one of its
  recognized table options), so they are read with the session: `system_schema.tables.id` (and
  `system_schema.views.id`) on Cassandra 3.0+, `system.schema_columnfamilies.cf_id` on 2.1/2.2.
  `tables_from_metadata` also takes an `options["id"]` a metadata object carries.
- dropped columns: 3.0+ `system_schema.dropped_columns` (name, type, dropped_time, kind on 4.0+).
  Cassandra 2.1/2.2 keep only `dropped_columns map<text, bigint>` (name -> drop time in µs) in
  `system.schema_columnfamilies`, without the type: those become DroppedColumn of type `blob` (the
  raw bytes of older cells stay readable; a dropped non-frozen collection's element cells are then
  not reassembled), and the table gets `options["dropped_types_unknown"] = True`.

Cassandra 2.1/2.2 and the driver: the driver reads 2.x column types from marshal class strings and
fails on a user type whose hex-encoded name is all digits (e.g. `address` = 61646472657373: its
`parse_casstype_args` turns it into an int), leaving that table's metadata empty with `_exc_info`
set. Such a table is then built from its `system.schema_columns` rows (`validator` marshal strings,
the implicit freezing of pre-3.0 user types and tuples made explicit).

`TableSchema.options`: `id_known` (True when the id came from the cluster; False with a placeholder
id, the convention of `ray_cdc.schema.cql`), `cdc` when the table has that option (3.8+),
`compact_storage` when the table uses it, `view`/`base_table` for materialized views.

The ids and the columns are two reads: a table dropped and re-created between them could pair the old
id with new columns; a schema change while loading is best followed by another load.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ray_cdc.errors import CqlTypeError, SchemaError
from ray_cdc.schema.model import ColumnKind, ColumnSchema, DroppedColumn, TableSchema
from ray_cdc.schema.types import CqlType, parse_cql_type

__all__ = [
    "SYSTEM_KEYSPACES",
    "DroppedColumnInfo",
    "legacy_marshal_type",
    "load_cluster_schema",
    "tables_from_metadata",
    "user_types_from_metadata",
]

log = logging.getLogger(__name__)

#: Keyspaces left out unless asked for by name.
SYSTEM_KEYSPACES = frozenset(
    {
        "system",
        "system_schema",
        "system_auth",
        "system_distributed",
        "system_traces",
        "system_views",
        "system_virtual_schema",
        "system_cluster_metadata",
        "system_distributed_everywhere",
        "system_replicated_keys",
    }
)
_SYSTEM_PREFIXES = ("dse_", "solr_admin")  # DataStax Enterprise

_EPOCH = _dt.datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=_dt.timezone.utc)

_BLOB: CqlType | None = None


def _blob() -> CqlType:
    global _BLOB
    if _BLOB is None:
        _BLOB = parse_cql_type("blob")
    return _BLOB


def _is_system(keyspace: str) -> bool:
    return keyspace in SYSTEM_KEYSPACES or keyspace.startswith(_SYSTEM_PREFIXES)


def _missing_table_id(keyspace: str, table: str) -> uuid.UUID:
    # The placeholder `ray_cdc.schema.cql` gives a table without a known id (same formula).
    return uuid.uuid3(uuid.NAMESPACE_OID, f"ray_cdc:missing-id:{keyspace}.{table}")


@dataclass(frozen=True)
class DroppedColumnInfo:
    """A dropped column as the system tables describe it. `type` is the CQL type text, or None
    when the cluster does not record it (2.1/2.2); `dropped_at` is in µs since the epoch."""

    name: str
    type: str | None
    dropped_at: int
    kind: str = "regular"


# --- user types -----------------------------------------------------------------------------------

_IDENT = re.compile(r'"((?:[^"]|"")*)"|([A-Za-z_][A-Za-z0-9_]*)')


def _type_names(type_text: str) -> list[str]:
    """Identifiers a type string mentions (quoted ones unquoted), in order."""
    names = []
    for m in _IDENT.finditer(type_text):
        names.append(m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2))
    return names


def _udt_lookup(name: str, udts: Mapping[str, Any]) -> str | None:
    if name in udts:
        return name
    lower = name.lower()
    if lower in udts:
        return lower
    return None


def user_types_from_metadata(
    keyspace_meta, user_types: dict | None = None
) -> dict[tuple[str, str], tuple[tuple[str, CqlType], ...]]:
    """`user_types` for `parse_cql_type`: (keyspace, name) -> ((field name, CqlType), ...) of every
    user type of the keyspace, each parsed after the types it uses."""
    result: dict = user_types if user_types is not None else {}
    keyspace = keyspace_meta.name
    udts: Mapping[str, Any] = getattr(keyspace_meta, "user_types", None) or {}
    resolving: set[str] = set()

    def resolve(name: str) -> None:
        if (keyspace, name) in result:
            return
        if name in resolving:
            raise SchemaError(f"user type {keyspace}.{name} refers to itself")
        resolving.add(name)
        udt = udts[name]
        field_names = list(udt.field_names or ())
        field_types = list(udt.field_types or ())
        if len(field_names) != len(field_types):
            raise SchemaError(
                f"user type {keyspace}.{name}: {len(field_names)} field names, {len(field_types)} types"
            )
        for type_text in field_types:
            for ident in _type_names(str(type_text)):
                dep = _udt_lookup(ident, udts)
                if dep is not None and dep != name:
                    resolve(dep)
        fields = []
        for field_name, type_text in zip(field_names, field_types):
            try:
                fields.append(
                    (field_name, parse_cql_type(str(type_text), keyspace=keyspace, user_types=result))
                )
            except CqlTypeError as exc:
                raise CqlTypeError(
                    f"user type {keyspace}.{name} field {field_name} {type_text!r}: {exc}"
                ) from exc
        result[(keyspace, name)] = tuple(fields)
        resolving.discard(name)

    for name in sorted(udts):
        resolve(name)
    return result


# --- Cassandra 2.x system.schema_columns ----------------------------------------------------------

MARSHAL = "org.apache.cassandra.db.marshal."
_ALWAYS_FROZEN_CLASSES = frozenset({"UserType", "TupleType"})


@dataclass
class _MarshalNode:
    prefix: str  # "hexname:" of a UDT field, else ""
    name: str
    args: list[_MarshalNode] | None

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[-1]


def _parse_marshal(text: str, pos: int = 0) -> tuple[_MarshalNode, int]:
    start = pos
    while pos < len(text) and text[pos] not in "(),":
        pos += 1
    token = text[start:pos].strip()
    prefix = ""
    if ":" in token:
        head, _, token = token.rpartition(":")
        prefix = head + ":"
    args = None
    if pos < len(text) and text[pos] == "(":
        args = []
        pos += 1
        while True:
            node, pos = _parse_marshal(text, pos)
            args.append(node)
            if pos >= len(text):
                raise CqlTypeError(f"unbalanced parentheses in type {text!r}")
            if text[pos] == ",":
                pos += 1
                continue
            if text[pos] == ")":
                pos += 1
                break
    return _MarshalNode(prefix, token, args), pos


def _emit_legacy(node: _MarshalNode, *, parent_frozen: bool = False) -> str:
    short = node.short
    if node.args is None:
        return node.prefix + node.name
    parts = []
    for i, arg in enumerate(node.args):
        if short == "UserType" and i < 2:
            parts.append(arg.prefix + arg.name)  # keyspace and hex type name: not types
        else:
            parts.append(_emit_legacy(arg, parent_frozen=short == "FrozenType"))
    body = f"{node.name}({','.join(parts)})"
    if short in _ALWAYS_FROZEN_CLASSES and not parent_frozen:
        body = f"{MARSHAL}FrozenType({body})"
    return node.prefix + body


def legacy_marshal_type(validator: str) -> tuple[str, bool]:
    """A pre-3.0 `validator` marshal string with its implicit freezing made explicit, for
    `parse_cql_type`; and whether it was a ReversedType (clustering order DESC).

    Before 3.0 (and 3.6 for user types) user types and tuples are always frozen, but their marshal
    strings carry no FrozenType: every UserType/TupleType not already inside one is wrapped in it.
    Collections keep their marshal form (a top-level one is multi-cell; one inside a user type or
    tuple is part of that frozen value; 2.1.3+ marks frozen collections with FrozenType itself) —
    the same types the driver's CQL strings give for these columns."""
    node, end = _parse_marshal(validator.strip())
    if end != len(validator.strip()):
        raise CqlTypeError(f"unexpected text after type in {validator!r}")
    reversed_ = False
    while node.short == "ReversedType" and node.args:
        reversed_ = True
        node = node.args[0]
    return _emit_legacy(node), reversed_


_LEGACY_KINDS = {
    "partition_key": ColumnKind.PARTITION_KEY,
    "clustering_key": ColumnKind.CLUSTERING,
    "regular": ColumnKind.REGULAR,
    "static": ColumnKind.STATIC,
    "compact_value": ColumnKind.REGULAR,
}


def _columns_from_legacy_rows(
    keyspace: str, table: str, rows: Iterable[Mapping[str, Any]]
) -> list[ColumnSchema]:
    columns = []
    for row in rows:
        name = row["column_name"]
        if not name:
            continue  # a compact table's unnamed value
        kind = _LEGACY_KINDS.get(row.get("type") or "regular")
        if kind is None:
            raise SchemaError(f"{keyspace}.{table} column {name}: unknown column type {row.get('type')!r}")
        type_text, reversed_ = legacy_marshal_type(row["validator"])
        col_type = _parse_column_type(table, name, type_text, keyspace, None)
        keyed = kind in (ColumnKind.PARTITION_KEY, ColumnKind.CLUSTERING)
        position = (row.get("component_index") or 0) if keyed else 0
        columns.append(
            ColumnSchema(name, col_type, kind, position, reversed_ and kind is ColumnKind.CLUSTERING)
        )
    order = {
        ColumnKind.PARTITION_KEY: 0,
        ColumnKind.CLUSTERING: 1,
        ColumnKind.STATIC: 2,
        ColumnKind.REGULAR: 2,
    }
    columns.sort(key=lambda c: (order[c.kind], c.position))  # stable: other columns keep row order
    return columns


# --- metadata -> TableSchema -----------------------------------------------------------------------


def _keyspace_map(cluster_metadata) -> Mapping[str, Any]:
    keyspaces = getattr(cluster_metadata, "keyspaces", cluster_metadata)
    if not isinstance(keyspaces, Mapping):
        raise TypeError(
            "cluster_metadata must be a cassandra.metadata.Metadata or a dict name -> KeyspaceMetadata"
        )
    return keyspaces


def _selected_keyspaces(all_keyspaces: Mapping[str, Any], keyspaces) -> list[str]:
    if keyspaces is None:
        return sorted(k for k in all_keyspaces if not _is_system(k))
    if isinstance(keyspaces, str):
        keyspaces = [keyspaces]
    keyspaces = list(dict.fromkeys(keyspaces))
    missing = [k for k in keyspaces if k not in all_keyspaces]
    if missing:
        raise SchemaError(f"keyspace(s) not in the cluster's schema: {', '.join(missing)}")
    return keyspaces


def _as_uuid(value) -> uuid.UUID | None:
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise SchemaError(f"table id {value!r} is not a UUID") from exc


def _parse_column_type(table: str, column: str, type_text, keyspace: str, user_types) -> CqlType:
    if isinstance(type_text, CqlType):
        return type_text
    try:
        return parse_cql_type(str(type_text), keyspace=keyspace, user_types=user_types)
    except CqlTypeError as exc:
        raise CqlTypeError(f"{keyspace}.{table} column {column} {type_text!r}: {exc}") from exc


def _dropped_kind(kind: str | None) -> ColumnKind:
    return ColumnKind.STATIC if (kind or "").lower() == "static" else ColumnKind.REGULAR


def _columns_from_driver(keyspace: str, table_meta, user_types) -> list[ColumnSchema]:
    name = table_meta.name
    columns: list[ColumnSchema] = []
    seen: set[str] = set()
    for position, col in enumerate(table_meta.partition_key or ()):
        col_type = _parse_column_type(name, col.name, col.cql_type, keyspace, user_types)
        columns.append(ColumnSchema(col.name, col_type, ColumnKind.PARTITION_KEY, position))
        seen.add(col.name)
    for position, col in enumerate(table_meta.clustering_key or ()):
        col_type = _parse_column_type(name, col.name, col.cql_type, keyspace, user_types)
        reversed_ = bool(getattr(col, "is_reversed", False))
        columns.append(ColumnSchema(col.name, col_type, ColumnKind.CLUSTERING, position, reversed_))
        seen.add(col.name)
    for col_name, col in (table_meta.columns or {}).items():
        if col_name in seen or not col_name:
            continue  # key columns are above; a compact table's unnamed value column has no name
        kind = ColumnKind.STATIC if getattr(col, "is_static", False) else ColumnKind.REGULAR
        col_type = _parse_column_type(name, col_name, col.cql_type, keyspace, user_types)
        columns.append(ColumnSchema(col_name, col_type, kind))
        seen.add(col_name)
    return columns


def _table_schema(
    keyspace: str,
    table_meta,
    user_types,
    table_id: uuid.UUID | None,
    dropped: Iterable[DroppedColumnInfo | DroppedColumn],
    extra_options: dict,
    legacy_rows: Iterable[Mapping[str, Any]] | None = None,
) -> TableSchema:
    name = table_meta.name
    exc_info = getattr(table_meta, "_exc_info", None)
    if exc_info and not legacy_rows:
        raise SchemaError(
            f"{keyspace}.{name}: the driver could not read this table's metadata: {exc_info[1]!r}"
        )
    if exc_info:
        log.info(
            "%s.%s: driver metadata incomplete (%r); using system.schema_columns", keyspace, name, exc_info[1]
        )
        columns = _columns_from_legacy_rows(keyspace, name, legacy_rows)
    else:
        columns = _columns_from_driver(keyspace, table_meta, user_types)

    options: dict[str, Any] = {}
    table_options = getattr(table_meta, "options", None) or {}
    if table_id is None:
        table_id = _as_uuid(table_options.get("id"))
    if table_id is None:
        log.warning(
            "%s.%s: no table id known; using a placeholder (options['id_known'] = False)", keyspace, name
        )
        table_id = _missing_table_id(keyspace, name)
        options["id_known"] = False
    else:
        options["id_known"] = True
    if table_options.get("cdc") is not None:
        options["cdc"] = bool(table_options["cdc"])
    if getattr(table_meta, "is_compact_storage", False):
        options["compact_storage"] = True
    options.update(extra_options)

    dropped_columns: list[DroppedColumn] = []
    for d in dropped:
        if isinstance(d, DroppedColumn):
            dropped_columns.append(d)
            continue
        if d.type is None:
            col_type = _blob()
            options["dropped_types_unknown"] = True
        else:
            col_type = _parse_column_type(name, d.name, d.type, keyspace, user_types)
        dropped_columns.append(DroppedColumn(d.name, col_type, int(d.dropped_at), _dropped_kind(d.kind)))
    dropped_columns.sort(key=lambda d: (d.dropped_at, d.name))

    try:
        return TableSchema(keyspace, name, table_id, tuple(columns), tuple(dropped_columns), options)
    except ValueError as exc:
        raise SchemaError(str(exc)) from exc


def tables_from_metadata(
    cluster_metadata,
    keyspaces: list[str] | str | None = None,
    *,
    table_ids: Mapping[tuple[str, str], Any] | None = None,
    dropped_columns: Mapping[tuple[str, str], Iterable[DroppedColumnInfo | DroppedColumn]] | None = None,
    include_views: bool = True,
    legacy_column_rows: Mapping[tuple[str, str], Iterable[Mapping[str, Any]]] | None = None,
) -> list[TableSchema]:
    """TableSchemas of the tables (and materialized views) the driver's metadata describes.

    `cluster_metadata` is a `cassandra.metadata.Metadata` (e.g. `cluster.metadata`) or a dict
    keyspace name -> `KeyspaceMetadata`. `keyspaces=None` takes every keyspace but the system ones;
    a keyspace named explicitly is taken even when it is a system keyspace, and a missing one is a
    SchemaError. `table_ids` ((keyspace, table) -> UUID) wins over an `options["id"]` of the metadata;
    a table with neither gets a placeholder id and `options["id_known"] = False`. `dropped_columns`
    maps (keyspace, table) to its dropped columns. `legacy_column_rows` ((keyspace, table) -> its
    Cassandra 2.x `system.schema_columns` rows as dicts) builds a table the driver failed to read.
    """
    all_keyspaces = _keyspace_map(cluster_metadata)
    table_ids = table_ids or {}
    dropped_columns = dropped_columns or {}
    legacy_column_rows = legacy_column_rows or {}
    result: list[TableSchema] = []
    for ks_name in _selected_keyspaces(all_keyspaces, keyspaces):
        ks_meta = all_keyspaces[ks_name]
        user_types = user_types_from_metadata(ks_meta)
        for table_name in sorted(ks_meta.tables or {}):
            table_meta = ks_meta.tables[table_name]
            if getattr(table_meta, "virtual", False):
                continue  # virtual tables have no commitlog
            result.append(
                _table_schema(
                    ks_name,
                    table_meta,
                    user_types,
                    _as_uuid(table_ids.get((ks_name, table_name))),
                    dropped_columns.get((ks_name, table_name), ()),
                    {},
                    legacy_column_rows.get((ks_name, table_name)),
                )
            )
        if include_views:
            for view_name in sorted(getattr(ks_meta, "views", None) or {}):
                view_meta = ks_meta.views[view_name]
                result.append(
                    _table_schema(
                        ks_name,
                        view_meta,
                        user_types,
                        _as_uuid(table_ids.get((ks_name, view_name))),
                        dropped_columns.get((ks_name, view_name), ()),
                        {"view": True, "base_table": getattr(view_meta, "base_table_name", None)},
                    )
                )
    return result


# --- live cluster ---------------------------------------------------------------------------------


def _micros(value) -> int:
    """A system-table timestamp as µs since the epoch (the driver gives naive UTC datetimes)."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            return (value - _EPOCH) // _dt.timedelta(microseconds=1)
        return (value - _EPOCH_UTC) // _dt.timedelta(microseconds=1)
    return int(value) * 1000  # milliseconds


def _query(session, cql: str) -> list[dict]:
    """Rows as dicts, whatever row factory the session has (named tuples, dicts or plain tuples)."""
    result = session.execute(cql)
    names = list(getattr(result, "column_names", None) or [])
    rows = []
    for row in result:
        if isinstance(row, Mapping):
            rows.append(dict(row))
        elif hasattr(row, "_asdict"):
            rows.append(row._asdict())
        else:
            rows.append(dict(zip(names, row)))
    return rows


def _release_major(session) -> int:
    rows = _query(session, "SELECT release_version FROM system.local")
    try:
        return int(str(rows[0]["release_version"]).split(".")[0])
    except (IndexError, KeyError, ValueError):
        return 3


def _query_system_tables(session) -> tuple[dict, dict, dict]:
    """Table ids, dropped columns and (2.x) column rows, by (keyspace, table)."""
    ids: dict[tuple[str, str], uuid.UUID] = {}
    dropped: dict[tuple[str, str], list[DroppedColumnInfo]] = {}
    legacy_rows: dict[tuple[str, str], list[dict]] = {}
    if _release_major(session) >= 3:
        for r in _query(session, "SELECT keyspace_name, table_name, id FROM system_schema.tables"):
            ids[(r["keyspace_name"], r["table_name"])] = r["id"]
        for r in _query(session, "SELECT keyspace_name, view_name, id FROM system_schema.views"):
            ids[(r["keyspace_name"], r["view_name"])] = r["id"]
        for r in _query(session, "SELECT * FROM system_schema.dropped_columns"):
            dropped.setdefault((r["keyspace_name"], r["table_name"]), []).append(
                DroppedColumnInfo(
                    r["column_name"], r.get("type"), _micros(r["dropped_time"]), r.get("kind") or "regular"
                )
            )
    else:
        for r in _query(session, "SELECT * FROM system.schema_columnfamilies"):
            key = (r["keyspace_name"], r["columnfamily_name"])
            ids[key] = r["cf_id"]
            for col, at in (r.get("dropped_columns") or {}).items():
                # 2.1/2.2 record no type; the time is already in µs (the drop's write timestamp)
                dropped.setdefault(key, []).append(DroppedColumnInfo(col, None, int(at)))
        for r in _query(session, "SELECT * FROM system.schema_columns"):
            legacy_rows.setdefault((r["keyspace_name"], r["columnfamily_name"]), []).append(r)
    return ids, dropped, legacy_rows


def _endpoint_text(hosts: list[str], port: int) -> str:
    return ", ".join(f"[{h}]:{port}" if ":" in h else f"{h}:{port}" for h in hosts)


def _scrub(text: str, auth_provider) -> str:
    password = getattr(auth_provider, "password", None)
    if password:
        text = text.replace(str(password), "***")
    return text


def _is_protocol_rejection(exc: Exception) -> bool:
    text = str(exc).lower()
    return "protocol version" in text and ("unsupported" in text or "invalid" in text)


def _connect(
    hosts: list[str], port: int, protocol_version, auth_provider, connect_timeout: float, where: str
):
    """(cluster, session). Without a protocol version the driver negotiates one; Cassandra 2.1 answers
    the driver's first offer (DSE v2) with a server error instead of a protocol error, so a rejected
    negotiation is retried with v4, then v3."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

    versions = [protocol_version] if protocol_version is not None else [None, 4, 3]
    for i, version in enumerate(versions):
        kwargs: dict[str, Any] = {
            "port": port,
            "connect_timeout": connect_timeout,
            "control_connection_timeout": max(connect_timeout, 2.0),
            "execution_profiles": {
                EXEC_PROFILE_DEFAULT: ExecutionProfile(
                    load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy())
                )
            },
        }
        if version is not None:
            kwargs["protocol_version"] = version
        if auth_provider is not None:
            kwargs["auth_provider"] = auth_provider
        cluster = None
        try:
            cluster = Cluster(hosts, **kwargs)
            return cluster, cluster.connect()
        except Exception as exc:
            if cluster is not None:
                cluster.shutdown()
            if i + 1 < len(versions) and _is_protocol_rejection(exc):
                log.info(
                    "%s rejected protocol version %s; trying %s",
                    where,
                    version or "(negotiated)",
                    versions[i + 1],
                )
                continue
            raise SchemaError(
                f"cannot connect to Cassandra at {where}: {_scrub(f'{type(exc).__name__}: {exc}', auth_provider)}"
            ) from exc
    raise AssertionError("unreachable")


def load_cluster_schema(
    contact_points: list[str] | str | None = None,
    *,
    port: int = 9042,
    keyspaces: list[str] | str | None = None,
    protocol_version: int | None = None,
    auth_provider=None,
    session=None,
    connect_timeout: float = 10.0,
) -> list[TableSchema]:
    """TableSchemas of a live cluster's tables (see the module doc).

    Either `contact_points` (a host, a list of hosts, or "h1,h2") with `port`, `protocol_version`
    (None: negotiated) and `auth_provider`; or an open driver `session`, which is used as it is (its
    schema metadata refreshed first) and not shut down. A connection or query failure raises
    SchemaError naming the host(s) and port tried.
    """
    own_cluster = None
    if session is None:
        if not contact_points:
            raise SchemaError("load_cluster_schema needs contact_points or a session")
        hosts = (
            [h.strip() for h in contact_points.split(",")]
            if isinstance(contact_points, str)
            else list(contact_points)
        )
        hosts = [h for h in hosts if h]
        where = _endpoint_text(hosts, port)
        own_cluster, session = _connect(hosts, port, protocol_version, auth_provider, connect_timeout, where)
    else:
        cluster = session.cluster
        where = _endpoint_text(
            [str(getattr(h, "address", h)) for h in (cluster.contact_points or [])], cluster.port
        )

    try:
        cluster = session.cluster
        if own_cluster is None:
            cluster.refresh_schema_metadata()
        table_ids, dropped, legacy_rows = _query_system_tables(session)
        return tables_from_metadata(
            cluster.metadata,
            keyspaces,
            table_ids=table_ids,
            dropped_columns=dropped,
            legacy_column_rows=legacy_rows,
        )
    except SchemaError:
        raise
    except Exception as exc:
        raise SchemaError(
            f"cannot read the schema from Cassandra at {where}: "
            f"{_scrub(f'{type(exc).__name__}: {exc}', auth_provider)}"
        ) from exc
    finally:
        if own_cluster is not None:
            own_cluster.shutdown()
