"""CQL DDL from TableSchemas: `table_to_cql` and `schema_to_cql`, which `ray_cdc.schema.cql` reads back
into equal schemas, and `quote_identifier`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from ray_cdc.schema.cql_clauses import missing_table_id
from ray_cdc.schema.cql_names import quote_identifier, string_literal
from ray_cdc.schema.model import ColumnKind, TableSchema
from ray_cdc.schema.types import CqlType

__all__ = ["quote_identifier", "schema_to_cql", "table_to_cql"]

def _map_literal(value: dict) -> str:
    return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"


def _list_literal(value) -> str:
    return "[" + ", ".join(_literal(v) for v in value) + "]"


# Checked in order: bool before int, because a bool is an int.
_LITERAL_WRITERS: tuple[tuple[type, Callable[[Any], str]], ...] = (
    (type(None), lambda v: "null"),
    (bool, lambda v: "true" if v else "false"),
    (int, str),
    (float, repr),
    (str, string_literal),
    (bytes, lambda v: "0x" + v.hex()),
    (uuid.UUID, str),
    (dict, _map_literal),
    ((list, tuple), _list_literal),
)


def _literal(value: Any) -> str:
    for kinds, write in _LITERAL_WRITERS:
        if isinstance(value, kinds):
            return write(value)
    raise TypeError(f"cannot write {type(value).__name__} as a CQL literal")


def _qualified(keyspace: str, name: str) -> str:
    return f"{quote_identifier(keyspace)}.{quote_identifier(name)}"


def _column_line(name: str, type_: CqlType, kind: ColumnKind) -> str:
    return f"{quote_identifier(name)} {type_.cql()}{' static' if kind is ColumnKind.STATIC else ''}"


def _primary_key_clause(table: TableSchema) -> str:
    partition = [quote_identifier(c.name) for c in table.partition_key]
    head = partition[0] if len(partition) == 1 else f"({', '.join(partition)})"
    return f"PRIMARY KEY ({', '.join([head] + [quote_identifier(c.name) for c in table.clustering])})"


def _table_with_clauses(table: TableSchema) -> list[str]:
    options = dict(table.options)
    clauses = ["COMPACT STORAGE"] if options.pop("compact_storage", False) else []
    id_known = options.pop("id_known", True)
    if id_known or table.id != missing_table_id(table.keyspace, table.name):
        clauses.append(f"ID = {table.id}")
    if table.clustering:
        order = ", ".join(
            f"{quote_identifier(c.name)} {'DESC' if c.reversed else 'ASC'}" for c in table.clustering
        )
        clauses.append(f"CLUSTERING ORDER BY ({order})")
    clauses += [f"{quote_identifier(name)} = {_literal(value)}" for name, value in options.items()]
    return clauses


def table_to_cql(table: TableSchema) -> str:
    """A CREATE TABLE (then, like DESCRIBE WITH INTERNALS, the ALTER TABLE DROP/ADD of dropped columns)
    that `parse_cql_schema` reads back into an equal TableSchema. The user types it uses are not written.
    A re-added column reads back after the others, so it round-trips exactly when it is last."""
    dropped = {d.name: d for d in table.dropped}
    lines = [_column_line(c.name, c.type, c.kind) for c in table.columns if c.name not in dropped]
    lines += [_column_line(d.name, d.type, d.kind) for d in table.dropped]
    lines.append(_primary_key_clause(table))
    body = ",\n".join("    " + line for line in lines)
    clauses = _table_with_clauses(table)
    with_text = " WITH " + "\n    AND ".join(clauses) if clauses else ""
    statements = [f"CREATE TABLE {_qualified(table.keyspace, table.name)} (\n{body}\n){with_text};"]
    live = {c.name: c for c in table.columns}
    for d in table.dropped:
        statements.append(
            f"ALTER TABLE {_qualified(table.keyspace, table.name)} DROP "
            f"{quote_identifier(d.name)} USING TIMESTAMP {d.dropped_at};"
        )
        column = live.get(d.name)
        if column is not None:
            statements.append(
                f"ALTER TABLE {_qualified(table.keyspace, table.name)} ADD "
                f"{_column_line(column.name, column.type, column.kind)};"
            )
    return "\n".join(statements)


def _collect_user_types(type_: CqlType, found: dict[tuple[str, str], CqlType]) -> None:
    # Fields first, so a type is written after the types it uses.
    for param in type_.params:
        _collect_user_types(param, found)
    if type_.name == "udt":
        found.setdefault((type_.keyspace, type_.udt_name), type_)


def _type_to_cql(type_: CqlType) -> str:
    fields = ",\n".join(
        f"    {quote_identifier(n)} {t.cql()}" for n, t in zip(type_.field_names, type_.params)
    )
    return f"CREATE TYPE {_qualified(type_.keyspace, type_.udt_name)} (\n{fields}\n);"


def _keyspace_to_cql(keyspace: str) -> str:
    return (
        f"CREATE KEYSPACE {quote_identifier(keyspace)} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': '1'} AND durable_writes = true;"
    )


def schema_to_cql(tables) -> str:
    """A whole DDL file: the keyspaces (SimpleStrategy, RF 1), the user types the tables use (in
    dependency order) and the tables, which `parse_cql_schema` reads back into equal TableSchemas."""
    tables = list(tables)
    keyspaces = dict.fromkeys(t.keyspace for t in tables)
    user_types: dict[tuple[str, str], CqlType] = {}
    for table in tables:
        for type_ in [c.type for c in table.columns] + [d.type for d in table.dropped]:
            _collect_user_types(type_, user_types)
    keyspaces.update(dict.fromkeys(ks for ks, _ in user_types))
    parts = [_keyspace_to_cql(ks) for ks in keyspaces]
    parts += [_type_to_cql(t) for t in user_types.values()]
    parts += [table_to_cql(t) for t in tables]
    return "\n\n".join(parts) + "\n"
