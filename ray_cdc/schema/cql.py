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
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray_cdc.errors import CqlParseError, CqlTypeError
from ray_cdc.schema.model import ColumnKind, ColumnSchema, DroppedColumn, TableSchema
from ray_cdc.schema.types import CqlType, parse_cql_type

__all__ = ["load_cql_schema", "parse_cql_schema", "quote_identifier", "schema_to_cql", "table_to_cql"]

# Cassandra's reserved_keywords.txt (5.x), plus words older versions reserved: quoting them is harmless.
_RESERVED = frozenset(
    """add allow alter and apply asc authorize batch begin by columnfamily create delete desc describe drop
    entries execute from full grant if in index infinity insert into is keyspace limit materialized modify
    nan norecursive not null of on or order primary rename revoke schema select set table to token truncate
    unlogged update use using view where with constraint length check default unset mbean mbeans replace""".split()  # noqa: SIM905
)
_UNQUOTED_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")


def quote_identifier(name: str) -> str:
    """The identifier as CQL must write it: bare when it reads back the same, else double-quoted."""
    if _UNQUOTED_IDENTIFIER.fullmatch(name) and name not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def _missing_table_id(keyspace: str, table: str) -> uuid.UUID:
    # Deterministic, so the same DDL always yields equal schemas; `options["id_known"]` tells it apart.
    return uuid.uuid3(uuid.NAMESPACE_OID, f"ray_cdc:missing-id:{keyspace}.{table}")


# --- lexing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # ident, qident, string, dollar, number, blob, uuid, punct, end
    value: Any  # ident: lower-cased; qident/string/dollar: unescaped text; number: int|float; ...
    line: int
    text: str  # as written in the source

    def is_word(self, word: str) -> bool:
        # Keywords are never quoted: `"primary"` is a column name, not the keyword.
        return self.kind == "ident" and self.value == word

    def is_punct(self, char: str) -> bool:
        return self.kind == "punct" and self.value == char

    def describe(self) -> str:
        return "end of statement" if self.kind == "end" else repr(self.text)


def _number(text: str) -> int | float:
    return int(text) if text.lstrip("-").isdigit() else float(text)


# Tried in order at each position; the UUID comes first because it can start like a number or a name.
_PATTERN_TOKENS: tuple[tuple[str, re.Pattern, Callable[[str], Any]], ...] = (
    ("uuid", re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"), uuid.UUID),
    ("blob", re.compile(r"0[xX][0-9a-fA-F]*"), lambda text: bytes.fromhex(text[2:])),
    ("number", re.compile(r"-?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?"), _number),
    ("ident", re.compile(r"[A-Za-z_][A-Za-z0-9_]*"), str.lower),
)

# Opening marker -> (token kind or None for a comment, closing marker, what an unclosed one is called).
_DELIMITED: dict[str, tuple[str | None, str, str]] = {
    "$$": ("dollar", "$$", "$$ string"),
    "/*": (None, "*/", "block comment"),
    "--": (None, "\n", ""),
    "//": (None, "\n", ""),
    "'": ("string", "'", "string"),
    '"': ("qident", '"', "quoted identifier"),
}


class Tokenizer:
    """Splits CQL text into tokens that know their line, dropping whitespace and comments."""

    def __init__(self, text: str, source: str | None = None):
        self.text = text
        self.source = source
        self.pos = 0
        self.line = 1

    def tokens(self) -> list[Token]:
        tokens = []
        while self._skip_whitespace():
            token = self._delimited() or self._patterned() or self._punct()
            if token.kind != "comment":
                tokens.append(token)
        return tokens

    def _skip_whitespace(self) -> bool:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self._advance(self.pos + 1)
        return self.pos < len(self.text)

    def _advance(self, end: int) -> tuple[int, str]:
        start, line = self.pos, self.line
        self.line += self.text.count("\n", start, end)
        self.pos = end
        return line, self.text[start:end]

    def _delimited(self) -> Token | None:
        opener = next((o for o in _DELIMITED if self.text.startswith(o, self.pos)), None)
        if opener is None:
            return None
        kind, closer, what = _DELIMITED[opener]
        start_line = self.line
        end = self._find_closer(self.pos + len(opener), closer)
        if end < 0 and closer != "\n":
            raise CqlParseError(
                f"unterminated {what}: expected a closing {closer}", source=self.source, line=start_line
            )
        line, text = self._advance(len(self.text) if end < 0 else end + len(closer))
        if kind is None:
            return Token("comment", None, line, text)
        body = text[len(opener) : len(text) - len(closer)]
        return Token(kind, body.replace(closer * 2, closer) if len(closer) == 1 else body, line, text)

    def _find_closer(self, pos: int, closer: str) -> int:
        # A quote doubled inside a quoted string or identifier is an escaped quote, not the end.
        doubled = closer in ("'", '"')
        while True:
            end = self.text.find(closer, pos)
            if end < 0 or not doubled or not self.text.startswith(closer, end + 1):
                return end
            pos = end + 2

    def _patterned(self) -> Token | None:
        for kind, pattern, convert in _PATTERN_TOKENS:
            match = pattern.match(self.text, self.pos)
            if match:
                line, text = self._advance(match.end())
                try:
                    return Token(kind, convert(text), line, text)
                except ValueError:  # an odd number of hex digits in a blob
                    raise CqlParseError(
                        f"bad {kind} literal {text!r}", source=self.source, line=line
                    ) from None
        return None

    def _punct(self) -> Token:
        line, text = self._advance(self.pos + 1)
        return Token("punct", text, line, text)


def _split_statements(tokens: list[Token]) -> list[list[Token]]:
    """Token lists per statement, each ending with an `end` token on the line of its `;`."""
    statements, current = [], []
    for token in tokens:
        if token.is_punct(";"):
            if current:
                statements.append(current + [Token("end", None, token.line, ";")])
            current = []
        else:
            current.append(token)
    if current:
        statements.append(current + [Token("end", None, current[-1].line, "")])
    return statements


class _Stream:
    """A cursor over one statement's tokens, with the expect/accept helpers a recursive parser needs."""

    def __init__(self, tokens: list[Token], source: str | None):
        self.tokens = tokens
        self.source = source
        self.index = 0

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def skip(self, count: int) -> None:
        self.index = min(self.index + count, len(self.tokens) - 1)

    def error(self, message: str, token: Token | None = None) -> CqlParseError:
        token = token or self.peek()
        return CqlParseError(message, source=self.source, line=token.line)

    def expected(self, what: str) -> CqlParseError:
        return self.error(f"expected {what}, found {self.peek().describe()}")

    def at_words(self, *words: str) -> bool:
        return all(self.peek(i).is_word(w) for i, w in enumerate(words))

    def accept_words(self, *words: str) -> bool:
        if not self.at_words(*words):
            return False
        self.index += len(words)
        return True

    def expect_words(self, *words: str) -> None:
        if not self.accept_words(*words):
            raise self.expected(" ".join(words).upper())

    def accept_punct(self, char: str) -> bool:
        if not self.peek().is_punct(char):
            return False
        self.next()
        return True

    def expect_punct(self, char: str, why: str = "") -> None:
        if not self.accept_punct(char):
            raise self.expected(f"'{char}'{' ' + why if why else ''}")

    def expect_name(self, what: str) -> Token:
        if self.peek().kind not in ("ident", "qident"):
            raise self.expected(what)
        return self.next()

    def expect_end(self) -> None:
        if self.peek().kind != "end":
            raise self.expected("';'")

    def comma_list(self, parse_item: Callable[[], Any], why: str) -> list:
        """`( item, item, ... )`, the opening parenthesis already consumed."""
        items = [parse_item()]
        while self.accept_punct(","):
            items.append(parse_item())
        self.expect_punct(")", why)
        return items


# --- literals (option values) --------------------------------------------------------------------


def _parse_literal(stream: _Stream) -> Any:
    token = stream.peek()
    parser = _LITERAL_PARSERS.get(token.kind) or (
        _COLLECTION_PARSERS.get(token.value) if token.kind == "punct" else None
    )
    if parser is None:
        raise stream.expected("a value")
    return parser(stream)


def _parse_scalar(stream: _Stream) -> Any:
    return stream.next().value


_WORD_VALUES = {"true": True, "false": False, "null": None}


def _parse_word(stream: _Stream) -> Any:
    word = stream.next().value
    return _WORD_VALUES.get(word, word)


def _parse_braces(stream: _Stream) -> dict | list:
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


def _parse_brackets(stream: _Stream) -> list:
    stream.next()
    if stream.accept_punct("]"):
        return []
    items = [_parse_literal(stream)]
    while stream.accept_punct(","):
        items.append(_parse_literal(stream))
    stream.expect_punct("]", "closing the list")
    return items


_LITERAL_PARSERS: dict[str, Callable[[_Stream], Any]] = {
    "string": _parse_scalar,
    "dollar": _parse_scalar,
    "number": _parse_scalar,
    "blob": _parse_scalar,
    "uuid": _parse_scalar,
    "qident": _parse_scalar,
    "ident": _parse_word,
}
_COLLECTION_PARSERS: dict[str, Callable[[_Stream], Any]] = {"{": _parse_braces, "[": _parse_brackets}


# --- types ---------------------------------------------------------------------------------------


def _type_token_text(token: Token) -> str:
    # Unquoted names are case-insensitive in CQL, so the lower-cased value is the canonical spelling.
    return token.value if token.kind == "ident" else token.text


_MODIFIERS = frozenset(("primary", "static"))


def _read_type_text(stream: _Stream) -> str:
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


# --- the schema being built ----------------------------------------------------------------------


@dataclass
class _ColumnDef:
    name: str
    type: CqlType
    token: Token
    static: bool = False
    inline_key: bool = False


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


@dataclass
class _TableOptions:
    """What the `WITH` clause of a CREATE TABLE says, before it is applied to the columns."""

    id: uuid.UUID | None = None
    clustering_order: list[tuple[Token, bool]] = field(default_factory=list)  # (column name, reversed)
    options: dict = field(default_factory=dict)


class _SchemaBuilder:
    """Replays DDL statements in order into tables, user types and a current keyspace."""

    def __init__(self, source: str | None, default_keyspace: str | None):
        self.source = source
        self.keyspace = default_keyspace
        self.keyspaces: dict[str, dict] = {}
        self.user_types: dict[tuple[str, str], tuple[tuple[str, CqlType], ...]] = {}
        self.tables: dict[tuple[str, str], tuple[_TableDraft, int]] = {}

    def run(self, text: str) -> list[TableSchema]:
        for tokens in _split_statements(Tokenizer(text, self.source).tokens()):
            stream = _Stream(tokens, self.source)
            handler = _statement_handler(stream)
            if handler is not None:
                handler(self, stream)
        return [draft.build(self.source, line) for draft, line in self.tables.values()]

    # -- names and types --

    def qualified_name(self, stream: _Stream, what: str) -> tuple[str, str, Token]:
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

    def column_type(self, stream: _Stream, keyspace: str) -> CqlType:
        token = stream.peek()
        text = _read_type_text(stream)
        try:
            return parse_cql_type(text, keyspace=keyspace, user_types=self.user_types)
        except (CqlTypeError, ValueError, KeyError) as exc:
            raise stream.error(f"bad type {text!r}: {exc}", token) from exc

    def column_def(self, stream: _Stream, keyspace: str) -> _ColumnDef:
        token = stream.expect_name("a column name")
        column = _ColumnDef(token.value, self.column_type(stream, keyspace), token)
        self.column_modifiers(stream, column)
        return column

    def column_modifiers(self, stream: _Stream, column: _ColumnDef) -> None:
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

    def use(self, stream: _Stream) -> None:
        stream.expect_words("use")
        self.keyspace = stream.expect_name("a keyspace name").value
        stream.expect_end()

    def create_keyspace(self, stream: _Stream) -> None:
        stream.skip(2)  # the keywords the statement was dispatched on
        stream.accept_words("if", "not", "exists")
        name = stream.expect_name("a keyspace name").value
        stream.expect_words("with")
        options: dict = {}
        _parse_properties(stream, lambda s: _generic_property(s, options))
        stream.expect_end()
        self.keyspaces.setdefault(name, options)

    def create_type(self, stream: _Stream) -> None:
        stream.skip(2)  # the keywords the statement was dispatched on
        if_not_exists = stream.accept_words("if", "not", "exists")
        keyspace, name, token = self.qualified_name(stream, "type")
        stream.expect_punct("(", "opening the field list")
        fields = stream.comma_list(lambda: self.type_field(stream, keyspace), "closing the field list")
        stream.expect_end()
        _check_unique([f[0] for f in fields], [f[2] for f in fields], "field", stream)
        if (keyspace, name) in self.user_types and not if_not_exists:
            raise stream.error(f"type {keyspace}.{name} is defined twice", token)
        self.user_types.setdefault((keyspace, name), tuple((f[0], f[1]) for f in fields))

    def type_field(self, stream: _Stream, keyspace: str) -> tuple[str, CqlType, Token]:
        token = stream.expect_name("a field name")
        return token.value, self.column_type(stream, keyspace), token

    def create_table(self, stream: _Stream) -> None:
        stream.skip(2)  # the keywords the statement was dispatched on
        if_not_exists = stream.accept_words("if", "not", "exists")
        keyspace, name, token = self.qualified_name(stream, "table")
        stream.expect_punct("(", "opening the column list")
        columns, key = self.table_elements(stream, keyspace)
        table_options = _TableOptions()
        if stream.accept_words("with"):
            _parse_properties(stream, lambda s: _table_property(s, table_options))
        stream.expect_end()
        if (keyspace, name) in self.tables:
            if if_not_exists:
                return
            raise stream.error(f"table {keyspace}.{name} is defined twice", token)
        draft = _TableDraft(
            keyspace,
            name,
            table_options.id or _missing_table_id(keyspace, name),
            _resolve_columns(stream, columns, key, table_options.clustering_order),
            options=table_options.options,
        )
        draft.options["id_known"] = table_options.id is not None
        self.tables[(keyspace, name)] = (draft, token.line)

    def table_elements(self, stream: _Stream, keyspace: str):
        """The column definitions and the PRIMARY KEY clause ((partition names), [clustering names])."""
        columns: list[_ColumnDef] = []
        key = None
        while not stream.accept_punct(")"):
            if stream.at_words("primary", "key"):
                if key is not None:
                    raise stream.error("a table has only one PRIMARY KEY clause")
                key = _parse_primary_key(stream)
            else:
                columns.append(self.column_def(stream, keyspace))
            if not stream.accept_punct(","):
                stream.expect_punct(")", "closing the column list")
                break
        return columns, key

    def alter_table(self, stream: _Stream) -> None:
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

    def alter_add(self, stream: _Stream, draft: _TableDraft) -> None:
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

    def alter_drop(self, stream: _Stream, draft: _TableDraft) -> None:
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

    def alter_rename(self, stream: _Stream, draft: _TableDraft) -> None:
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

    def alter_with(self, stream: _Stream, draft: _TableDraft) -> None:
        _parse_properties(stream, lambda s: _generic_property(s, draft.options))


def _ends_column(token: Token, depth: int) -> bool:
    return token.kind == "end" or (not depth and (token.is_punct(",") or token.is_punct(")")))


def _drop_column(stream: _Stream, draft: _TableDraft, token: Token, dropped_at: int) -> None:
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


_ALTER_ACTIONS: dict[str, Callable[[_SchemaBuilder, _Stream, _TableDraft], None]] = {
    "add": _SchemaBuilder.alter_add,
    "drop": _SchemaBuilder.alter_drop,
    "rename": _SchemaBuilder.alter_rename,
    "with": _SchemaBuilder.alter_with,
}

# Keyed by the statement's first one or two keywords; statements not listed are skipped whole.
_STATEMENTS: dict[tuple[str, ...], Callable[[_SchemaBuilder, _Stream], None]] = {
    ("use",): _SchemaBuilder.use,
    ("create", "keyspace"): _SchemaBuilder.create_keyspace,
    ("create", "schema"): _SchemaBuilder.create_keyspace,
    ("create", "type"): _SchemaBuilder.create_type,
    ("create", "table"): _SchemaBuilder.create_table,
    ("create", "columnfamily"): _SchemaBuilder.create_table,
    ("alter", "table"): _SchemaBuilder.alter_table,
    ("alter", "columnfamily"): _SchemaBuilder.alter_table,
}


def _statement_handler(stream: _Stream):
    first, second = stream.peek(), stream.peek(1)
    if first.kind != "ident":
        return None
    return _STATEMENTS.get((first.value, second.value)) or _STATEMENTS.get((first.value,))


# --- WITH clauses --------------------------------------------------------------------------------


def _parse_properties(stream: _Stream, parse_one: Callable[[_Stream], None]) -> None:
    parse_one(stream)
    while stream.accept_words("and"):
        parse_one(stream)


def _generic_property(stream: _Stream, options: dict) -> None:
    name = stream.expect_name("an option name").value.lower()
    stream.expect_punct("=", f"after option {name}")
    options[name] = _parse_literal(stream)


def _table_property(stream: _Stream, table_options: _TableOptions) -> None:
    special = _TABLE_PROPERTIES.get(stream.peek().value) if stream.peek().kind == "ident" else None
    if special is None:
        _generic_property(stream, table_options.options)
    else:
        special(stream, table_options)


def _table_id_property(stream: _Stream, table_options: _TableOptions) -> None:
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


def _compact_storage_property(stream: _Stream, table_options: _TableOptions) -> None:
    stream.expect_words("compact", "storage")
    table_options.options["compact_storage"] = True


def _clustering_order_property(stream: _Stream, table_options: _TableOptions) -> None:
    stream.expect_words("clustering", "order", "by")
    stream.expect_punct("(", "after CLUSTERING ORDER BY")
    table_options.clustering_order = stream.comma_list(
        lambda: _clustering_order_item(stream), "closing CLUSTERING ORDER BY"
    )


def _clustering_order_item(stream: _Stream) -> tuple[Token, bool]:
    token = stream.expect_name("a clustering column name")
    if stream.accept_words("desc"):
        return token, True
    stream.accept_words("asc")
    return token, False


_TABLE_PROPERTIES: dict[str, Callable[[_Stream, _TableOptions], None]] = {
    "id": _table_id_property,
    "compact": _compact_storage_property,
    "clustering": _clustering_order_property,
}


# --- primary key and column kinds ----------------------------------------------------------------


def _parse_primary_key(stream: _Stream) -> tuple[list[Token], list[Token]]:
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


def _check_unique(names: list[str], tokens: list[Token], what: str, stream: _Stream) -> None:
    seen = set()
    for name, token in zip(names, tokens):
        if name in seen:
            raise stream.error(f"duplicate {what} {name!r}", token)
        seen.add(name)


def _key_from_columns(stream: _Stream, columns: list[_ColumnDef], key) -> tuple[list[Token], list[Token]]:
    inline = [c for c in columns if c.inline_key]
    if inline and (key is not None or len(inline) > 1):
        raise stream.error("a table has only one PRIMARY KEY", inline[-1].token)
    if inline:
        return [inline[0].token], []
    if key is None:
        raise stream.error("expected a PRIMARY KEY in the table definition")
    return key


def _resolve_columns(
    stream: _Stream, columns: list[_ColumnDef], key, clustering_order: list[tuple[Token, bool]]
) -> dict[str, ColumnSchema]:
    _check_unique([c.name for c in columns], [c.token for c in columns], "column", stream)
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
    stream: _Stream, order: list[tuple[Token, bool]], clustering: list[Token]
) -> set[str]:
    names = {t.value for t in clustering}
    for token, _ in order:
        if token.value not in names:
            raise stream.error(
                f"CLUSTERING ORDER BY names {token.value!r}, which is not a clustering column", token
            )
    return {token.value for token, is_reversed in order if is_reversed}


def _column_schema(
    stream: _Stream, column: _ColumnDef, roles: dict, reversed_names: set[str], has_clustering: bool
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


# --- public API: writing -------------------------------------------------------------------------


def _string_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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
    (str, _string_literal),
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
    if id_known or table.id != _missing_table_id(table.keyspace, table.name):
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
