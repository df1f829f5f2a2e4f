"""Table schemas from a CQL DDL file, and back (format doc §16, item 2).

The input is what a user can get from their cluster: `cqlsh -e "DESCRIBE KEYSPACE ks"` output and, best,
`DESCRIBE KEYSPACE ks WITH INTERNALS` (Cassandra 4.0+), which adds the table ids (`WITH ID = ...`) and the
dropped columns. For each dropped column Cassandra prints the column (with its dropped type) inside the
`CREATE TABLE`, then `ALTER TABLE ... DROP name USING TIMESTAMP ts;` and, when the column was re-added,
`ALTER TABLE ... ADD name type;` (`TableMetadata.appendDropColumns`). Replaying those statements in order
gives both the live columns and the dropped ones the decoder needs for older data.

Statements that do not shape a table (indexes, views, functions, roles, ...) are skipped whole.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ray_cdc.errors import CqlParseError, CqlTypeError
from ray_cdc.schema.cql_clauses import (
    ColumnDef,
    TableOptions,
    check_unique,
    generic_property,
    missing_table_id,
    parse_primary_key,
    parse_properties,
    read_type_text,
    resolve_columns,
    table_property,
)
from ray_cdc.schema.cql_lexer import Token, Tokenizer, TokenStream, split_statements
from ray_cdc.schema.cql_writer import quote_identifier, schema_to_cql, table_to_cql
from ray_cdc.schema.model import ColumnKind, ColumnSchema, DroppedColumn, TableSchema
from ray_cdc.schema.types import CqlType, parse_cql_type

# The writers live in cql_writer and the tokenizer in cql_lexer; they are importable from here too, so
# callers keep one module for reading and writing CQL.
__all__ = ["load_cql_schema", "parse_cql_schema", "quote_identifier", "schema_to_cql", "table_to_cql"]


# --- the schema being built ----------------------------------------------------------------------


@dataclass
class _TableDraft:
    keyspace: str
    name: str
    id: uuid.UUID
    columns: dict[str, ColumnSchema]
    dropped: dict[str, DroppedColumn] = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    def build(self, source: str | None, line: int) -> TableSchema:
        try:
            return TableSchema(
                self.keyspace,
                self.name,
                self.id,
                tuple(self.columns.values()),
                tuple(self.dropped.values()),
                self.options,
            )
        except ValueError as exc:
            raise CqlParseError(str(exc), source=source, line=line) from exc


class _SchemaBuilder:
    """Replays DDL statements in order into tables, user types and a current keyspace."""

    def __init__(self, source: str | None, default_keyspace: str | None):
        self.source = source
        self.keyspace = default_keyspace
        self.keyspaces: dict[str, dict] = {}
        self.user_types: dict[tuple[str, str], tuple[tuple[str, CqlType], ...]] = {}
        self.tables: dict[tuple[str, str], tuple[_TableDraft, int]] = {}

    def run(self, text: str) -> list[TableSchema]:
        for tokens in split_statements(Tokenizer(text, self.source).tokens()):
            stream = TokenStream(tokens, self.source)
            handler = _statement_handler(stream)
            if handler is not None:
                handler(self, stream)
        return [draft.build(self.source, line) for draft, line in self.tables.values()]

    # -- names and types --

    def qualified_name(self, stream: TokenStream, what: str) -> tuple[str, str, Token]:
        first = stream.expect_name(f"a {what} name")
        if not stream.accept_punct("."):
            if self.keyspace is None:
                raise stream.error(
                    f"expected a keyspace-qualified {what} name (no USE statement or default "
                    f"keyspace), found {first.describe()}",
                    first,
                )
            return self.keyspace, first.value, first
        return first.value, stream.expect_name(f"a {what} name after '.'").value, first

    def column_type(self, stream: TokenStream, keyspace: str) -> CqlType:
        token = stream.peek()
        text = read_type_text(stream)
        try:
            return parse_cql_type(text, keyspace=keyspace, user_types=self.user_types)
        except (CqlTypeError, ValueError, KeyError) as exc:
            raise stream.error(f"bad type {text!r}: {exc}", token) from exc

    def column_def(self, stream: TokenStream, keyspace: str) -> ColumnDef:
        token = stream.expect_name("a column name")
        column = ColumnDef(token.value, self.column_type(stream, keyspace), token)
        self.column_modifiers(stream, column)
        return column

    def column_modifiers(self, stream: TokenStream, column: ColumnDef) -> None:
        # Besides STATIC and PRIMARY KEY, newer versions print `MASKED WITH f(...)` and `CHECK ...`,
        # which do not change how data is stored: skipped up to the end of the column definition.
        depth = 0
        while not _ends_column(stream.peek(), depth):
            token = stream.peek()
            if token.kind == "end":
                raise stream.expected("')'")
            if not depth and stream.accept_words("static"):
                column.static = True
            elif not depth and stream.accept_words("primary", "key"):
                column.inline_key = True
            else:
                stream.next()
                depth += {"(": 1, ")": -1}.get(token.value, 0) if token.kind == "punct" else 0

    # -- statements --

    def use(self, stream: TokenStream) -> None:
        stream.expect_words("use")
        self.keyspace = stream.expect_name("a keyspace name").value
        stream.expect_end()

    def create_keyspace(self, stream: TokenStream) -> None:
        stream.skip(2)  # the keywords the statement was dispatched on
        stream.accept_words("if", "not", "exists")
        name = stream.expect_name("a keyspace name").value
        stream.expect_words("with")
        options: dict = {}
        parse_properties(stream, lambda s: generic_property(s, options))
        stream.expect_end()
        self.keyspaces.setdefault(name, options)

    def create_type(self, stream: TokenStream) -> None:
        stream.skip(2)  # the keywords the statement was dispatched on
        if_not_exists = stream.accept_words("if", "not", "exists")
        keyspace, name, token = self.qualified_name(stream, "type")
        stream.expect_punct("(", "opening the field list")
        fields = stream.comma_list(lambda: self.type_field(stream, keyspace), "closing the field list")
        stream.expect_end()
        check_unique([f[0] for f in fields], [f[2] for f in fields], "field", stream)
        if (keyspace, name) in self.user_types and not if_not_exists:
            raise stream.error(f"type {keyspace}.{name} is defined twice", token)
        self.user_types.setdefault((keyspace, name), tuple((f[0], f[1]) for f in fields))

    def type_field(self, stream: TokenStream, keyspace: str) -> tuple[str, CqlType, Token]:
        token = stream.expect_name("a field name")
        return token.value, self.column_type(stream, keyspace), token

    def create_table(self, stream: TokenStream) -> None:
        stream.skip(2)  # the keywords the statement was dispatched on
        if_not_exists = stream.accept_words("if", "not", "exists")
        keyspace, name, token = self.qualified_name(stream, "table")
        stream.expect_punct("(", "opening the column list")
        columns, key = self.table_elements(stream, keyspace)
        table_options = TableOptions()
        if stream.accept_words("with"):
            parse_properties(stream, lambda s: table_property(s, table_options))
        stream.expect_end()
        if (keyspace, name) in self.tables:
            if if_not_exists:
                return
            raise stream.error(f"table {keyspace}.{name} is defined twice", token)
        draft = _TableDraft(
            keyspace,
            name,
            table_options.id or missing_table_id(keyspace, name),
            resolve_columns(stream, columns, key, table_options.clustering_order),
            options=table_options.options,
        )
        draft.options["id_known"] = table_options.id is not None
        self.tables[(keyspace, name)] = (draft, token.line)

    def table_elements(self, stream: TokenStream, keyspace: str):
        """The column definitions and the PRIMARY KEY clause ((partition names), [clustering names])."""
        columns: list[ColumnDef] = []
        key = None
        while not stream.accept_punct(")"):
            if stream.at_words("primary", "key"):
                if key is not None:
                    raise stream.error("a table has only one PRIMARY KEY clause")
                key = parse_primary_key(stream)
            else:
                columns.append(self.column_def(stream, keyspace))
            if not stream.accept_punct(","):
                stream.expect_punct(")", "closing the column list")
                break
        return columns, key

    def alter_table(self, stream: TokenStream) -> None:
        stream.skip(2)  # the keywords the statement was dispatched on
        if_exists = stream.accept_words("if", "exists")
        keyspace, name, token = self.qualified_name(stream, "table")
        if (keyspace, name) not in self.tables:
            if if_exists:
                return
            raise stream.error(f"ALTER TABLE of unknown table {keyspace}.{name}", token)
        draft = self.tables[(keyspace, name)][0]
        action = _ALTER_ACTIONS.get(stream.peek().value) if stream.peek().kind == "ident" else None
        if action is None:
            raise stream.expected("ADD, DROP, RENAME or WITH")
        stream.next()
        action(self, stream, draft)
        stream.expect_end()

    def alter_add(self, stream: TokenStream, draft: _TableDraft) -> None:
        if_not_exists = stream.accept_words("if", "not", "exists")
        if stream.accept_punct("("):
            columns = stream.comma_list(
                lambda: self.column_def(stream, draft.keyspace), "closing the columns"
            )
        else:
            columns = [self.column_def(stream, draft.keyspace)]
        for column in columns:
            if if_not_exists and column.name in draft.columns:
                continue
            if column.name in draft.columns or column.inline_key:
                raise stream.error(
                    f"cannot ADD column {column.name!r} to {draft.keyspace}.{draft.name}: "
                    "it exists or is a key column",
                    column.token,
                )
            kind = ColumnKind.STATIC if column.static else ColumnKind.REGULAR
            draft.columns[column.name] = ColumnSchema(column.name, column.type, kind)

    def alter_drop(self, stream: TokenStream, draft: _TableDraft) -> None:
        if_exists = stream.accept_words("if", "exists")
        if stream.accept_punct("("):
            names = stream.comma_list(lambda: stream.expect_name("a column name"), "closing the columns")
        else:
            names = [stream.expect_name("a column name")]
        dropped_at = time.time_ns() // 1000  # what Cassandra uses when no timestamp is given
        if stream.accept_words("using", "timestamp"):
            if stream.peek().kind != "number" or not isinstance(stream.peek().value, int):
                raise stream.expected("a timestamp (microseconds) after USING TIMESTAMP")
            dropped_at = stream.next().value
        for token in names:
            if not (if_exists and token.value not in draft.columns):
                _drop_column(stream, draft, token, dropped_at)

    def alter_rename(self, stream: TokenStream, draft: _TableDraft) -> None:
        while True:
            old = stream.expect_name("a column name")
            stream.expect_words("to")
            new = stream.expect_name("a new column name")
            if old.value not in draft.columns or new.value in draft.columns:
                raise stream.error(f"cannot RENAME {old.value!r} to {new.value!r}", old)
            renamed = dataclasses.replace(draft.columns[old.value], name=new.value)
            draft.columns = {
                n: c
                for n, c in (
                    (renamed.name, renamed) if n == old.value else (n, c) for n, c in draft.columns.items()
                )
            }
            if not stream.accept_words("and"):
                return

    def alter_with(self, stream: TokenStream, draft: _TableDraft) -> None:
        parse_properties(stream, lambda s: generic_property(s, draft.options))


def _ends_column(token: Token, depth: int) -> bool:
    return token.kind == "end" or (not depth and (token.is_punct(",") or token.is_punct(")")))


def _drop_column(stream: TokenStream, draft: _TableDraft, token: Token, dropped_at: int) -> None:
    column = draft.columns.get(token.value)
    if column is None:
        raise stream.error(
            f"cannot DROP {token.value!r}: no such column in {draft.keyspace}.{draft.name}", token
        )
    if column.kind in (ColumnKind.PARTITION_KEY, ColumnKind.CLUSTERING):
        raise stream.error(f"cannot DROP primary key column {token.value!r}", token)
    del draft.columns[token.value]
    draft.dropped.pop(token.value, None)  # Cassandra keeps the latest drop only
    draft.dropped[token.value] = DroppedColumn(column.name, column.type, dropped_at, column.kind)


_ALTER_ACTIONS: dict[str, Callable[[_SchemaBuilder, TokenStream, _TableDraft], None]] = {
    "add": _SchemaBuilder.alter_add,
    "drop": _SchemaBuilder.alter_drop,
    "rename": _SchemaBuilder.alter_rename,
    "with": _SchemaBuilder.alter_with,
}

# Keyed by the statement's first one or two keywords; statements not listed are skipped whole.
_STATEMENTS: dict[tuple[str, ...], Callable[[_SchemaBuilder, TokenStream], None]] = {
    ("use",): _SchemaBuilder.use,
    ("create", "keyspace"): _SchemaBuilder.create_keyspace,
    ("create", "schema"): _SchemaBuilder.create_keyspace,
    ("create", "type"): _SchemaBuilder.create_type,
    ("create", "table"): _SchemaBuilder.create_table,
    ("create", "columnfamily"): _SchemaBuilder.create_table,
    ("alter", "table"): _SchemaBuilder.alter_table,
    ("alter", "columnfamily"): _SchemaBuilder.alter_table,
}


def _statement_handler(stream: TokenStream):
    first, second = stream.peek(), stream.peek(1)
    if first.kind != "ident":
        return None
    return _STATEMENTS.get((first.value, second.value)) or _STATEMENTS.get((first.value,))


# --- public API: reading -------------------------------------------------------------------------


def parse_cql_schema(
    text: str, *, source: str | None = None, default_keyspace: str | None = None
) -> list[TableSchema]:
    """The tables a CQL DDL text defines, in the order of their CREATE TABLE statements.

    A table without `WITH ID = ...` gets a deterministic placeholder id and `options["id_known"] = False`,
    so a caller can match it by name only. Raises CqlParseError naming the line of anything malformed.
    """
    return _SchemaBuilder(source, default_keyspace).run(text)


def load_cql_schema(path) -> list[TableSchema]:
    """`parse_cql_schema` of a file, e.g. saved `DESCRIBE KEYSPACE ks WITH INTERNALS` output."""
    return parse_cql_schema(Path(path).read_text(encoding="utf-8"), source=str(path))
