"""Parsing type strings: CQL syntax (`map<text, frozen<list<int>>>`, UDT names, quoted custom
classes) and Cassandra's marshal class syntax (`org.apache.cassandra.db.marshal.MapType(...)`), as
system tables, the driver and old schemas write them. The entry point is
`ray_cdc.schema.types.parse_cql_type`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from ray_cdc.errors import CqlTypeError
from ray_cdc.schema.type_names import MARSHAL_PACKAGE, SIMPLE_TYPE_WIDTHS
from ray_cdc.schema.types import CqlType, freeze

_CQL_SIMPLE_NAMES = {name: name for name in SIMPLE_TYPE_WIDTHS if name != "empty"}
_CQL_SIMPLE_NAMES["varchar"] = "text"  # an alias: the same UTF8Type

#: Cassandra marshal classes of the simple types (`AbstractType` names the driver and old system
#: tables use)
_MARSHAL_SIMPLE = {
    "AsciiType": "ascii",
    "UTF8Type": "text",
    "BytesType": "blob",
    "BooleanType": "boolean",
    "ByteType": "tinyint",
    "ShortType": "smallint",
    "Int32Type": "int",
    "LongType": "bigint",
    "IntegerType": "varint",
    "FloatType": "float",
    "DoubleType": "double",
    "DecimalType": "decimal",
    "CounterColumnType": "counter",
    "SimpleDateType": "date",
    "TimeType": "time",
    "TimestampType": "timestamp",
    "DateType": "timestamp",  # the pre-2.0 timestamp: same 8-byte encoding
    "DurationType": "duration",
    "UUIDType": "uuid",
    "TimeUUIDType": "timeuuid",
    "InetAddressType": "inet",
    "EmptyType": "empty",
}

_IDENT = re.compile(r"[A-Za-z0-9_$]+")
_WS = re.compile(r"\s*")
_DIGITS = re.compile(r"[0-9]+")


class _Parser:
    """Recursive descent over CQL type syntax and Cassandra's marshal class syntax
    (`org.apache.cassandra.db.marshal.MapType(UTF8Type,Int32Type)`)."""

    def __init__(self, text: str, keyspace: str | None, user_types, resolving: frozenset = frozenset()):
        self.text = text
        self.pos = 0
        self.keyspace = keyspace
        self.user_types = user_types
        self.resolving = resolving  # UDTs being resolved, to refuse recursive definitions

    # -- lexing --

    def fail(self, message: str):
        raise CqlTypeError(f"cannot parse CQL type {self.text!r}: {message} (at offset {self.pos})")

    def peek(self) -> str:
        self.pos = _WS.match(self.text, self.pos).end()
        return self.text[self.pos : self.pos + 1]

    def accept(self, char: str) -> bool:
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def expect(self, char: str) -> None:
        if not self.accept(char):
            found = self.peek()
            self.fail(f"expected {char!r}, found {found!r}" if found else f"expected {char!r} at the end")

    def word(self) -> tuple[str, bool]:
        """An identifier: (text, quoted)."""
        if self.peek() == '"':
            end = self.pos + 1
            chunks = []
            while True:
                close = self.text.find('"', end)
                if close < 0:
                    self.fail("unterminated quoted name")
                chunks.append(self.text[end:close])
                if self.text.startswith('"', close + 1):
                    chunks.append('"')
                    end = close + 2
                    continue
                self.pos = close + 1
                name = "".join(chunks)
                if not name:
                    self.fail("empty quoted name")
                return name, True
        m = _IDENT.match(self.text, self.pos)
        if not m:
            self.fail("expected a type name")
        self.pos = m.end()
        return m.group(), False

    def dotted(self) -> list[tuple[str, bool]]:
        parts = [self.word()]
        while self.accept("."):
            parts.append(self.word())
        return parts

    def string(self) -> str:
        self.expect("'")
        chunks = []
        while True:
            close = self.text.find("'", self.pos)
            if close < 0:
                self.fail("unterminated string")
            chunks.append(self.text[self.pos : close])
            self.pos = close + 1
            if self.text.startswith("'", self.pos):
                chunks.append("'")
                self.pos += 1
                continue
            return "".join(chunks)

    def integer(self) -> int:
        self.peek()
        m = _DIGITS.match(self.text, self.pos)
        if not m:
            self.fail("expected a number")
        self.pos = m.end()
        return int(m.group())

    def skip_balanced(self) -> None:
        """Skip `( ... )` with nesting, for the arguments of a class this parser does not know."""
        if self.peek() != "(":
            return
        depth = 0
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    return
        self.fail("unbalanced parentheses")

    # -- grammar --

    def parse(self) -> CqlType:
        result = self.type()
        if self.peek():
            self.fail(f"unexpected {self.text[self.pos :]!r}")
        return result

    def type(self) -> CqlType:
        char = self.peek()
        if not char:
            self.fail("expected a type")
        if char == "'":
            return _custom_type(self.string(), self.keyspace, self.user_types)
        start = self.pos
        parts = self.dotted()
        if _is_marshal_name(parts):
            return self.marshal(parts[-1][0], start)
        if len(parts) == 1:
            word, quoted = parts[0]
            return self.udt(None, word) if quoted else self.bare_word(word, start)
        if len(parts) == 2:
            (ks, ks_quoted), (name, name_quoted) = parts
            return self.udt(ks if ks_quoted else ks.lower(), name if name_quoted else name.lower())
        # some other Java class written without quotes: keep it whole, as a custom type
        self.skip_balanced()
        return _make_custom(self.text[start : self.pos].strip())

    def bare_word(self, word: str, start: int) -> CqlType:
        """An unquoted name: a CQL keyword (case-insensitive), a marshal class, or a UDT."""
        keyword = word.lower()
        simple = _CQL_SIMPLE_NAMES.get(keyword)
        if simple is not None:
            return _SIMPLE_TYPES[simple]
        generic = _CQL_GENERIC.get(keyword)
        if generic is not None:
            if self.peek() != "<":
                self.fail(f"{keyword} needs type parameters in <>")
            self.pos += 1
            result = generic(self)
            self.expect(">")
            return result
        # a short marshal name (`Int32Type`), unless a user type is really called that
        if (word in _MARSHAL_SIMPLE or word in _MARSHAL_GENERIC) and not self.has_udt(keyword):
            return self.marshal(word, start)
        return self.udt(None, keyword)

    def marshal(self, cls: str, start: int) -> CqlType:
        simple = _MARSHAL_SIMPLE.get(cls)
        if simple is not None:
            return _SIMPLE_TYPES[simple]
        handler = _MARSHAL_GENERIC.get(cls)
        if handler is None:
            self.skip_balanced()
            return _make_custom(re.sub(r"\s+", "", self.text[start : self.pos]))
        self.expect("(")
        result = handler(self)
        self.expect(")")
        return result

    def type_list(self) -> list[CqlType]:
        types = [self.type()]
        while self.accept(","):
            types.append(self.type())
        return types

    # -- user types --

    def has_udt(self, name: str) -> bool:
        return bool(self.user_types) and any(key[1] == name for key in self.user_types)

    def udt(self, keyspace: str | None, name: str) -> CqlType:
        key = self.find_udt(keyspace, name)
        if key in self.resolving:
            self.fail(f"user type {key[0]}.{key[1]} refers to itself")
        fields = self.user_types[key]
        if isinstance(fields, Mapping):
            fields = fields.items()
        names, types = [], []
        for field_name, field_type in fields:
            if isinstance(field_type, str):
                inner = _Parser(field_type, key[0], self.user_types, self.resolving | {key})
                field_type = inner.parse()
            names.append(field_name)
            types.append(field_type)
        return CqlType("udt", tuple(types), False, key[0], key[1], tuple(names))

    def find_udt(self, keyspace: str | None, name: str) -> tuple[str, str]:
        types = self.user_types or {}
        keyspace = keyspace or self.keyspace
        if keyspace is not None:
            if (keyspace, name) in types:
                return (keyspace, name)
            self.fail(f"unknown type {name!r} (no such CQL type or user type in keyspace {keyspace!r})")
        matches = [key for key in types if key[1] == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            self.fail(f"user type {name!r} exists in several keyspaces; name the keyspace")
        self.fail(f"unknown type {name!r} (no such CQL type or user type)")
        raise AssertionError  # fail raises

    def marshal_udt(self) -> CqlType:
        """`UserType(keyspace,hex(name),hex(field):type,...)`."""
        keyspace = self.word()[0]
        self.expect(",")
        name = _unhex(self, self.word()[0])
        names, types = [], []
        while self.accept(","):
            names.append(_unhex(self, self.word()[0]))
            self.expect(":")
            types.append(self.type())
        if not names:
            self.fail("UserType without fields")
        return CqlType("udt", tuple(types), False, keyspace, name, tuple(names))


def _unhex(parser: _Parser, text: str) -> str:
    try:
        return bytes.fromhex(text).decode("utf-8")
    except ValueError:
        parser.fail(f"{text!r} is not a hex-encoded name")
        raise


def _is_marshal_name(parts: list[tuple[str, bool]]) -> bool:
    if len(parts) < 2 or any(quoted for _, quoted in parts):
        return False
    package = ".".join(p for p, _ in parts[:-1]).lower() + "."
    return package == MARSHAL_PACKAGE.lower()


def _make_custom(class_name: str) -> CqlType:
    return CqlType("custom", custom_class=class_name)


def _custom_type(class_name: str, keyspace, user_types) -> CqlType:
    """A quoted class name: a marshal class this module knows resolves to its CQL type (as
    Cassandra's TypeParser would); anything else stays a custom type, decoded as blob."""
    inner = _Parser(class_name, keyspace, user_types)
    inner.peek()
    start = inner.pos
    try:
        parts = inner.dotted()
        cls = parts[-1][0]
        known = cls in _MARSHAL_SIMPLE or cls in _MARSHAL_GENERIC
        if known and (_is_marshal_name(parts) or (len(parts) == 1 and not parts[0][1])):
            result = inner.marshal(cls, start)
            if not inner.peek():
                return result
    except CqlTypeError:
        pass
    if not class_name.strip():
        raise CqlTypeError("empty custom type class name")
    return _make_custom(class_name)


def _p_list(p: _Parser) -> CqlType:
    return CqlType("list", (p.type(),))


def _p_set(p: _Parser) -> CqlType:
    return CqlType("set", (p.type(),))


def _p_map(p: _Parser) -> CqlType:
    key = p.type()
    p.expect(",")
    return CqlType("map", (key, p.type()))


def _p_tuple(p: _Parser) -> CqlType:
    return CqlType("tuple", tuple(p.type_list()), True)


def _p_frozen(p: _Parser) -> CqlType:
    return freeze(p.type())


def _p_vector(p: _Parser) -> CqlType:
    elem = p.type()
    p.expect(",")
    dimension = p.integer()
    if dimension <= 0:
        p.fail("vector dimension must be positive")
    return CqlType("vector", (elem,), True, dimension=dimension)


_CQL_GENERIC: dict[str, Callable[[_Parser], CqlType]] = {
    "list": _p_list,
    "set": _p_set,
    "map": _p_map,
    "tuple": _p_tuple,
    "frozen": _p_frozen,
    "vector": _p_vector,
}

_MARSHAL_GENERIC: dict[str, Callable[[_Parser], CqlType]] = {
    "ReversedType": lambda p: p.type(),  # DESC clustering order: same bytes (ColumnSchema.reversed)
    "FrozenType": _p_frozen,
    "ListType": _p_list,
    "SetType": _p_set,
    "MapType": _p_map,
    "TupleType": _p_tuple,
    "VectorType": _p_vector,
    "UserType": _Parser.marshal_udt,
}

_SIMPLE_TYPES: dict[str, CqlType] = {name: CqlType(name) for name in SIMPLE_TYPE_WIDTHS}


def parse(text: str, keyspace: str | None, user_types) -> CqlType:
    return _Parser(text, keyspace, user_types).parse()
