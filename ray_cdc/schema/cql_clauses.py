"""The parts of a CREATE or ALTER statement that parse without the rest of the schema: option
values, type text, `WITH` properties, the primary key and the kind of each column.

`ray_cdc.schema.cql` replays whole statements with these; keeping them apart keeps that module about the
order and effect of statements.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ray_cdc.schema.cql_lexer import Token, TokenStream
from ray_cdc.schema.model import ColumnKind, ColumnSchema
from ray_cdc.schema.types import CqlType

__all__ = [
    "ColumnDef",
    "TableOptions",
    "check_unique",
    "generic_property",
    "missing_table_id",
    "parse_primary_key",
    "parse_properties",
    "read_type_text",
    "resolve_columns",
    "table_property",
]


def missing_table_id(keyspace: str, table: str) -> uuid.UUID:
    # Deterministic, so the same DDL always yields equal schemas; `options["id_known"]` tells it apart.
    return uuid.uuid3(uuid.NAMESPACE_OID, f"ray_cdc:missing-id:{keyspace}.{table}")


# --- literals (option values) --------------------------------------------------------------------


def _parse_literal(stream: TokenStream) -> Any:
    token = stream.peek()
    parser = _LITERAL_PARSERS.get(token.kind) or (
        _COLLECTION_PARSERS.get(token.value) if token.kind == "punct" else None
    )
    if parser is None:
        raise stream.expected("a value")
    return parser(stream)


def _parse_scalar(stream: TokenStream) -> Any:
    return stream.next().value


_WORD_VALUES = {"true": True, "false": False, "null": None}


def _parse_word(stream: TokenStream) -> Any:
    word = stream.next().value
    return _WORD_VALUES.get(word, word)


def _parse_braces(stream: TokenStream) -> dict | list:
    stream.next()
    if stream.accept_punct("}"):
        return {}
    first = _parse_literal(stream)
    if not stream.accept_punct(":"):  # a set literal
        items = [first]
        while stream.accept_punct(","):
            items.append(_parse_literal(stream))
        stream.expect_punct("}", "closing the set")
        return items
    result = {_hashable(first): _parse_literal(stream)}
    while stream.accept_punct(","):
        key = _parse_literal(stream)
        stream.expect_punct(":", "between a map key and its value")
        result[_hashable(key)] = _parse_literal(stream)
    stream.expect_punct("}", "closing the map")
    return result


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _parse_brackets(stream: TokenStream) -> list:
    stream.next()
    if stream.accept_punct("]"):
        return []
    items = [_parse_literal(stream)]
    while stream.accept_punct(","):
        items.append(_parse_literal(stream))
    stream.expect_punct("]", "closing the list")
    return items


_LITERAL_PARSERS: dict[str, Callable[[TokenStream], Any]] = {
    "string": _parse_scalar,
    "dollar": _parse_scalar,
    "number": _parse_scalar,
    "blob": _parse_scalar,
    "uuid": _parse_scalar,
    "qident": _parse_scalar,
    "ident": _parse_word,
}
_COLLECTION_PARSERS: dict[str, Callable[[TokenStream], Any]] = {"{": _parse_braces, "[": _parse_brackets}


# --- types ---------------------------------------------------------------------------------------


def _type_token_text(token: Token) -> str:
    # Unquoted names are case-insensitive in CQL, so the lower-cased value is the canonical spelling.
    return token.value if token.kind == "ident" else token.text


_MODIFIERS = frozenset(("primary", "static"))


def read_type_text(stream: TokenStream) -> str:
    """The tokens of one type (`ks.udt`, `'custom.Class'`, `frozen<map<text, int>>`) as canonical text."""
    first = stream.peek()
    # A column modifier here (`a PRIMARY KEY`) means the type is missing, not that it is unknown.
    is_modifier = first.kind == "ident" and first.value in _MODIFIERS
    if is_modifier or first.kind not in ("ident", "qident", "string"):
        raise stream.expected("a type")
    parts = [_type_token_text(stream.next())]
    if stream.accept_punct("."):
        parts += [".", _type_token_text(stream.expect_name("a type name after '.'"))]
    depth = 0
    while stream.peek().is_punct("<") or depth:
        token = stream.next()
        if token.kind == "end":
            raise stream.error(f"expected '>' closing the type that starts on line {first.line}", token)
        depth += {"<": 1, ">": -1}.get(token.value, 0) if token.kind == "punct" else 0
        parts.append(", " if token.is_punct(",") else _type_token_text(token))
    return "".join(parts)


# --- column definitions and table options --------------------------------------------------------


@dataclass
class ColumnDef:
    name: str
    type: CqlType
    token: Token
    static: bool = False
    inline_key: bool = False


@dataclass
class TableOptions:
    """What the `WITH` clause of a CREATE TABLE says, before it is applied to the columns."""

    id: uuid.UUID | None = None
    clustering_order: list[tuple[Token, bool]] = field(default_factory=list)  # (column name, reversed)
    options: dict = field(default_factory=dict)


# --- WITH clauses --------------------------------------------------------------------------------


def parse_properties(stream: TokenStream, parse_one: Callable[[TokenStream], None]) -> None:
    parse_one(stream)
    while stream.accept_words("and"):
        parse_one(stream)


def generic_property(stream: TokenStream, options: dict) -> None:
    name = stream.expect_name("an option name").value.lower()
    stream.expect_punct("=", f"after option {name}")
    options[name] = _parse_literal(stream)


def table_property(stream: TokenStream, table_options: TableOptions) -> None:
    special = _TABLE_PROPERTIES.get(stream.peek().value) if stream.peek().kind == "ident" else None
    if special is None:
        generic_property(stream, table_options.options)
    else:
        special(stream, table_options)


def _table_id_property(stream: TokenStream, table_options: TableOptions) -> None:
    stream.next()
    stream.expect_punct("=", "after ID")
    token = stream.next()
    table_options.id = _uuid_of(token)
    if table_options.id is None:
        raise stream.error(f"expected the table id (a UUID) after ID =, found {token.describe()}", token)


def _uuid_of(token: Token) -> uuid.UUID | None:
    if token.kind == "uuid":
        return token.value
    try:
        return uuid.UUID(token.value) if token.kind == "string" else None
    except ValueError:
        return None


def _compact_storage_property(stream: TokenStream, table_options: TableOptions) -> None:
    stream.expect_words("compact", "storage")
    table_options.options["compact_storage"] = True


def _clustering_order_property(stream: TokenStream, table_options: TableOptions) -> None:
    stream.expect_words("clustering", "order", "by")
    stream.expect_punct("(", "after CLUSTERING ORDER BY")
    table_options.clustering_order = stream.comma_list(
        lambda: _clustering_order_item(stream), "closing CLUSTERING ORDER BY"
    )


def _clustering_order_item(stream: TokenStream) -> tuple[Token, bool]:
    token = stream.expect_name("a clustering column name")
    if stream.accept_words("desc"):
        return token, True
    stream.accept_words("asc")
    return token, False


_TABLE_PROPERTIES: dict[str, Callable[[TokenStream, TableOptions], None]] = {
    "id": _table_id_property,
    "compact": _compact_storage_property,
    "clustering": _clustering_order_property,
}


# --- primary key and column kinds ----------------------------------------------------------------


def parse_primary_key(stream: TokenStream) -> tuple[list[Token], list[Token]]:
    stream.expect_words("primary", "key")
    stream.expect_punct("(", "after PRIMARY KEY")

    def name() -> Token:
        return stream.expect_name("a column name")

    if stream.accept_punct("("):
        partition = stream.comma_list(name, "closing the partition key")
    else:
        partition = [name()]
    clustering = []
    while stream.accept_punct(","):
        clustering.append(name())
    stream.expect_punct(")", "closing PRIMARY KEY")
    return partition, clustering


def check_unique(names: list[str], tokens: list[Token], what: str, stream: TokenStream) -> None:
    seen = set()
    for name, token in zip(names, tokens):
        if name in seen:
            raise stream.error(f"duplicate {what} {name!r}", token)
        seen.add(name)


def _key_from_columns(stream: TokenStream, columns: list[ColumnDef], key) -> tuple[list[Token], list[Token]]:
    inline = [c for c in columns if c.inline_key]
    if inline and (key is not None or len(inline) > 1):
        raise stream.error("a table has only one PRIMARY KEY", inline[-1].token)
    if inline:
        return [inline[0].token], []
    if key is None:
        raise stream.error("expected a PRIMARY KEY in the table definition")
    return key


def resolve_columns(
    stream: TokenStream, columns: list[ColumnDef], key, clustering_order: list[tuple[Token, bool]]
) -> dict[str, ColumnSchema]:
    check_unique([c.name for c in columns], [c.token for c in columns], "column", stream)
    partition, clustering = _key_from_columns(stream, columns, key)
    by_name = {c.name: c for c in columns}
    roles: dict[str, tuple[ColumnKind, int]] = {}
    for kind, tokens in ((ColumnKind.PARTITION_KEY, partition), (ColumnKind.CLUSTERING, clustering)):
        for position, token in enumerate(tokens):
            if token.value not in by_name or token.value in roles:
                raise stream.error(
                    f"PRIMARY KEY names {token.value!r}, which is not a column or is repeated", token
                )
            roles[token.value] = (kind, position)
    reversed_names = _reversed_clustering(stream, clustering_order, clustering)
    return {c.name: _column_schema(stream, c, roles, reversed_names, bool(clustering)) for c in columns}


def _reversed_clustering(
    stream: TokenStream, order: list[tuple[Token, bool]], clustering: list[Token]
) -> set[str]:
    names = {t.value for t in clustering}
    for token, _ in order:
        if token.value not in names:
            raise stream.error(
                f"CLUSTERING ORDER BY names {token.value!r}, which is not a clustering column", token
            )
    return {token.value for token, is_reversed in order if is_reversed}


def _column_schema(
    stream: TokenStream, column: ColumnDef, roles: dict, reversed_names: set[str], has_clustering: bool
) -> ColumnSchema:
    kind, position = roles.get(column.name, (ColumnKind.REGULAR, 0))
    if column.static:
        if kind is not ColumnKind.REGULAR or not has_clustering:
            raise stream.error(
                f"column {column.name!r} cannot be STATIC: only non-key columns of a table "
                "with clustering columns can",
                column.token,
            )
        kind = ColumnKind.STATIC
    return ColumnSchema(column.name, column.type, kind, position, column.name in reversed_names)
