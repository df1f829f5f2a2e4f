"""CQL types: parsing type strings, and the value codecs the commitlog decoder and writer use.

A `CqlType` knows four things the commitlog format needs (format doc §13):
- `fixed_width`: the number of bytes a value takes when the type has a fixed width in the commitlog
  (written without a length), else None (written as vbytes);
- `is_multicell`: a non-frozen collection or UDT, stored as one cell per element (a complex column);
- `decode(bytes)` / `encode(value)`: the CQL native-protocol (v3+) value encoding;
- `arrow_type()`: the Arrow type of the decoded value.

Python values (lossless; `cassandra.util` value classes where Python has no exact equivalent):
ascii/text/varchar -> str; blob -> bytes; boolean -> bool; tinyint/smallint/int/bigint/varint/counter
-> int; float/double -> float; decimal -> decimal.Decimal; date -> datetime.date (int days since
1970-01-01 when outside date's range); time -> cassandra.util.Time (nanosecond precision);
timestamp -> datetime.datetime, timezone-aware UTC (int milliseconds when outside datetime's range);
duration -> cassandra.util.Duration; uuid/timeuuid -> uuid.UUID; inet -> ipaddress.IPv4Address or
IPv6Address; list -> list; set -> frozenset (tuple when an element is unhashable); map -> dict
(list of (k, v) pairs when a key is unhashable); tuple -> tuple; UDT -> dict field -> value;
vector -> list; custom ('org.apache...' class) -> bytes; empty (EmptyType) -> None.

Empty values: Cassandra accepts a zero-length value for almost every type (it is what `blobAsInt(0x)`
or an old Thrift client writes). `decode(b"")` is therefore None for every type except the string
and byte types (ascii, text, varchar, blob, custom), where it is "" / b"". `encode(None)` is b"", so
the top-level round trip holds. Inside a collection, tuple or UDT a None is written as the null
length -1; a zero-length element of a non-string type decodes to None too and so re-encodes as -1
(the only non-canonical case besides non-minimal varints, UDT values missing trailing fields and
non-canonical booleans such as 0x02).

Sets and map keys are encoded in Cassandra's comparator order (the order Cassandra itself writes),
so `encode(decode(b)) == b` for what Cassandra writes even though a frozenset has no order.

Arrow: ascii/text/varchar/inet -> string; blob/custom -> binary; varint and decimal -> string (exact
decimal text, `str(Decimal)`); uuid/timeuuid -> fixed_size_binary(16) (pyarrow's `pa.uuid()`
extension type cannot be built from Python values inside a list or struct, so it is not used);
date -> date32; time -> time64[ns]; timestamp -> timestamp[ms, UTC]; duration ->
month_day_nano_interval; list/set/vector -> list_; map -> map_; tuple -> struct "0", "1", ...;
UDT -> struct of its fields; empty -> null.

This module holds `CqlType` and is where callers import from; the work is done in `type_parser`
(type strings), `value_codecs` and `composite_codecs` (encodings), `value_order` (set and map key
order) and `value_forms` (CQL text, Arrow, JSON). Those modules never import `CqlType` at run time,
so the only import back into this one is the parser's, which `parse_cql_type` defers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from typing import Any

from ray_cdc.errors import CqlTypeError, ValueCodecError
from ray_cdc.schema.composite_codecs import COMPOSITE_CODEC_BUILDERS, PATH_DECODERS, PATH_ENCODERS
from ray_cdc.schema.type_names import MARSHAL_PACKAGE, SIMPLE_TYPE_WIDTHS
from ray_cdc.schema.value_codecs import CODEC_ERRORS, SIMPLE_CODECS, Codec
from ray_cdc.schema.value_forms import (
    ARROW_TYPES,
    ARROW_VALUES,
    CQL_TEXT,
    JSON_VALUES,
    duration_literal,
    quote_name,
)

__all__ = [
    "MARSHAL_PACKAGE",
    "SIMPLE_TYPE_WIDTHS",
    "CqlType",
    "duration_literal",
    "parse_cql_type",
    "quote_name",
]

#: types that can be stored non-frozen (one cell per element)
_FREEZABLE = frozenset(("list", "set", "map", "udt"))
_COMPOSITES = frozenset(("list", "set", "map", "tuple", "udt", "vector", "custom"))
_ARITY = {"list": 1, "set": 1, "map": 2, "vector": 1}

_U16 = struct.Struct(">H")  # a UDT cell path: the field index


@dataclass(frozen=True)
class CqlType:
    """A parsed CQL type. Build with `parse_cql_type`, not directly."""

    name: str  # a key of SIMPLE_TYPE_WIDTHS, or list/set/map/tuple/udt/vector/custom
    params: tuple[CqlType, ...] = ()
    frozen: bool = False
    keyspace: str | None = None  # udt
    udt_name: str | None = None  # udt
    field_names: tuple[str, ...] = ()  # udt
    dimension: int | None = None  # vector
    custom_class: str | None = None  # custom ('org.apache...'): decoded as blob
    _codec: Any = field(default=None, compare=False, repr=False, hash=False)

    def __post_init__(self):
        _normalize(self)
        object.__setattr__(self, "_codec", _build_codec(self))
        object.__setattr__(self, "_hash", hash(self._fields_key()))

    def _fields_key(self) -> tuple:
        return (
            self.name,
            self.params,
            self.frozen,
            self.keyspace,
            self.udt_name,
            self.field_names,
            self.dimension,
            self.custom_class,
        )

    # Types are dict keys in schema caches: hash once. (dataclass keeps an explicit __hash__.)
    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    # Codecs are closures, which pickle cannot carry (Ray ships schemas between processes).
    def __reduce__(self):
        return (CqlType, self._fields_key())

    def __repr__(self) -> str:
        return f"CqlType({self.cql()!r})"

    @property
    def fixed_width(self) -> int | None:
        return self._codec.width

    @property
    def is_multicell(self) -> bool:
        return not self.frozen and self.name in _FREEZABLE

    def decode(self, data: bytes) -> Any:
        try:
            return self._codec.decode(data)
        except CODEC_ERRORS as exc:
            if data is None:
                return None
            raise ValueCodecError(
                f"cannot decode {self.cql()} from {len(data)} bytes (0x{bytes(data[:32]).hex()}"
                f"{'...' if len(data) > 32 else ''}): {exc}"
            ) from exc

    def encode(self, value: Any) -> bytes:
        try:
            return self._codec.encode(value)
        except CODEC_ERRORS as exc:
            raise ValueCodecError(f"cannot encode {_short_repr(value)} as {self.cql()}: {exc}") from exc

    # --- cells of multicell (complex) columns, format doc §13.3 ------------------------------------

    def decode_cell_path(self, path: bytes) -> Any:
        """For a multicell type: the element a cell path names (list: timeuuid, set: element,
        map: key, udt: field name)."""
        handler = PATH_DECODERS[self._multicell_kind()]
        try:
            return handler(self, path)
        except CODEC_ERRORS as exc:
            raise ValueCodecError(
                f"cannot decode a cell path of {self.cql()} from 0x{bytes(path).hex()}: {exc}"
            ) from exc

    def encode_cell_path(self, element: Any) -> bytes:
        """The inverse of `decode_cell_path`."""
        handler = PATH_ENCODERS[self._multicell_kind()]
        try:
            return handler(self, element)
        except CODEC_ERRORS as exc:
            raise ValueCodecError(
                f"cannot encode {_short_repr(element)} as a cell path of {self.cql()}: {exc}"
            ) from exc

    @property
    def element_value_type(self) -> CqlType | None:
        """The type of a cell *value* of a multicell list (element) or map (value); None for a set
        (its cells have empty values) and for a UDT (depends on the field: `cell_value_type`)."""
        kind = self._multicell_kind()
        if kind == "list":
            return self.params[0]
        if kind == "map":
            return self.params[1]
        return None

    def cell_value_type(self, path: bytes) -> CqlType | None:
        """The type of the value of the cell at `path` of a multicell column (None for a set)."""
        if self._multicell_kind() == "udt":
            return self.params[self._field_index(path)]
        return self.element_value_type

    def _multicell_kind(self) -> str:
        if not self.is_multicell:
            raise CqlTypeError(f"{self.cql()} is not a multicell type: its cells have no path")
        return self.name

    def _field_index(self, path: bytes) -> int:
        try:
            index = _U16.unpack(path)[0]
        except struct.error:
            raise ValueCodecError(f"{self.cql()}: a UDT cell path is 2 bytes, got {len(path)}") from None
        if index >= len(self.field_names):
            raise ValueCodecError(
                f"{self.cql()}: cell path names field {index}, the type has {len(self.field_names)}"
            )
        return index

    # --- presentation ------------------------------------------------------------------------------

    def arrow_type(self):
        import pyarrow as pa

        return ARROW_TYPES[self.name](self, pa)

    def to_arrow_value(self, value: Any) -> Any:
        """A decoded value in a form `pa.array([...], type=self.arrow_type())` accepts."""
        if value is None:
            return None
        return ARROW_VALUES[self.name](self, value)

    def to_json(self, value: Any) -> Any:
        """A JSON-native form of a decoded value (blob -> '0x..' hex, as CQL writes blob literals)."""
        if value is None:
            return None
        return JSON_VALUES[self.name](self, value)

    def cql(self) -> str:
        """The type as CQL writes it, e.g. `frozen<map<text, int>>`."""
        text = CQL_TEXT[self.name](self)
        return f"frozen<{text}>" if self.frozen and self.name in _FREEZABLE else text


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- construction ----------------------------------------------------------------------------------


def _normalize(t: CqlType) -> None:
    """Check the fields fit the kind, and make equal types compare equal: simple types are never
    frozen, tuples and vectors always are, and every nested type is frozen (it is one cell)."""
    name = t.name
    if name == "varchar":  # an alias of text (both are UTF8Type): one name keeps equality simple
        name = "text"
        object.__setattr__(t, "name", name)
    if name in SIMPLE_TYPE_WIDTHS:
        if t.params:
            raise CqlTypeError(f"{name} takes no type parameters")
        if t.frozen:
            object.__setattr__(t, "frozen", False)
        return
    if name not in _COMPOSITES:
        raise CqlTypeError(f"unknown CQL type name {name!r}")
    arity = _ARITY.get(name)
    if arity is not None and len(t.params) != arity:
        raise CqlTypeError(f"{name} takes {arity} type parameter(s), got {len(t.params)}")
    if name == "tuple" and not t.params:
        raise CqlTypeError("tuple needs at least one component type")
    if name == "udt":
        if not t.udt_name or len(t.field_names) != len(t.params) or not t.params:
            raise CqlTypeError(f"user type {t.udt_name!r} needs a name and one type per field")
        object.__setattr__(t, "field_names", tuple(t.field_names))
    if name == "vector" and (not isinstance(t.dimension, int) or t.dimension <= 0):
        raise CqlTypeError(f"vector dimension must be a positive integer, got {t.dimension!r}")
    if name == "custom" and not t.custom_class:
        raise CqlTypeError("a custom type needs its class name")
    if name in ("tuple", "vector") and not t.frozen:
        object.__setattr__(t, "frozen", True)
    if name == "custom" and t.frozen:
        object.__setattr__(t, "frozen", False)
    object.__setattr__(t, "params", tuple(freeze(p) for p in t.params))


def freeze(t: CqlType) -> CqlType:
    if not isinstance(t, CqlType):
        raise CqlTypeError(f"type parameter must be a CqlType, got {t!r}")
    if t.frozen or t.name not in _FREEZABLE:
        return t
    return replace(t, frozen=True)


def _build_codec(t: CqlType) -> Codec:
    simple = SIMPLE_CODECS.get(t.name)
    if simple is not None:
        return simple
    return COMPOSITE_CODEC_BUILDERS[t.name](t)


# --- parsing -----------------------------------------------------------------------------------------


def parse_cql_type(text: str, *, keyspace: str | None = None, user_types=None) -> CqlType:
    """Parse a CQL type string (`map<text, frozen<list<int>>>`, `vector<float, 3>`, a UDT name, or
    a quoted custom class). `user_types` maps (keyspace, name) -> ((field name, CqlType), ...)."""
    if not isinstance(text, str):
        raise CqlTypeError(f"a CQL type must be a string, got {type(text).__name__}")
    # Imported here because the parser builds CqlTypes and so imports this module: a top-level
    # import would make the two modules import each other.
    from ray_cdc.schema.type_parser import parse

    return parse(text, keyspace, user_types)
