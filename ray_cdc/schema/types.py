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
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any
from uuid import UUID

from cassandra.util import Duration, Time

from ray_cdc.commitlog.primitives import read_uvint, read_zigzag_vint, uvint_bytes, zigzag_vint_bytes
from ray_cdc.errors import CqlTypeError, ValueCodecError

#: CQL names of the simple types, with the width they have in the commitlog (None = vbytes).
SIMPLE_TYPE_WIDTHS: dict[str, int | None] = {
    "ascii": None,
    "text": None,
    "varchar": None,
    "blob": None,
    "boolean": 1,
    "tinyint": None,
    "smallint": None,
    "int": 4,
    "bigint": 8,
    "varint": None,
    "float": 4,
    "double": 8,
    "decimal": None,
    "counter": None,
    "date": None,
    "time": None,
    "timestamp": 8,
    "duration": None,
    "uuid": 16,
    "timeuuid": 16,
    "inet": None,
    "empty": 0,
}

MARSHAL_PACKAGE = "org.apache.cassandra.db.marshal."

#: types that can be stored non-frozen (one cell per element)
_FREEZABLE = frozenset(("list", "set", "map", "udt"))
_COMPOSITES = frozenset(("list", "set", "map", "tuple", "udt", "vector", "custom"))
_ARITY = {"list": 1, "set": 1, "map": 2, "vector": 1}

#: custom classes Cassandra writes without a length (`valueLengthIfFixed`, format doc §13.1)
_CUSTOM_WIDTHS = {MARSHAL_PACKAGE + "LexicalUUIDType": 16}

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_NULL = b"\xff\xff\xff\xff"

_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_ONE_MS = timedelta(milliseconds=1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_ORDINAL = date.max.toordinal()
_DATE_BIAS = 1 << 31
_NANOS_PER_DAY = 86_400 * 10**9
_INT32 = (-(1 << 31), (1 << 31) - 1)
_INT64 = (-(1 << 63), (1 << 63) - 1)

# What the raw codec functions raise on bad input; `decode`/`encode` turn them into ValueCodecError.
_CODEC_ERRORS = (struct.error, ValueError, IndexError, TypeError, OverflowError, AttributeError, KeyError)


class _Codec:
    """The resolved per-type functions, built once per CqlType so `decode` is a single call."""

    __slots__ = ("decode", "encode", "hashable", "key", "width")

    def __init__(self, decode, encode, key, hashable: bool, width: int | None):
        self.decode = decode
        self.encode = encode
        self.key = key  # sort key that reproduces Cassandra's comparator (set / map key order)
        self.hashable = hashable  # whether decoded values can live in a frozenset / dict key
        self.width = width


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
        except _CODEC_ERRORS as exc:
            if data is None:
                return None
            raise ValueCodecError(
                f"cannot decode {self.cql()} from {len(data)} bytes (0x{bytes(data[:32]).hex()}"
                f"{'...' if len(data) > 32 else ''}): {exc}"
            ) from exc

    def encode(self, value: Any) -> bytes:
        try:
            return self._codec.encode(value)
        except _CODEC_ERRORS as exc:
            raise ValueCodecError(f"cannot encode {_short_repr(value)} as {self.cql()}: {exc}") from exc

    # --- cells of multicell (complex) columns, format doc §13.3 ------------------------------------

    def decode_cell_path(self, path: bytes) -> Any:
        """For a multicell type: the element a cell path names (list: timeuuid, set: element,
        map: key, udt: field name)."""
        handler = _PATH_DECODERS[self._multicell_kind()]
        try:
            return handler(self, path)
        except _CODEC_ERRORS as exc:
            raise ValueCodecError(
                f"cannot decode a cell path of {self.cql()} from 0x{bytes(path).hex()}: {exc}"
            ) from exc

    def encode_cell_path(self, element: Any) -> bytes:
        """The inverse of `decode_cell_path`."""
        handler = _PATH_ENCODERS[self._multicell_kind()]
        try:
            return handler(self, element)
        except _CODEC_ERRORS as exc:
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

        return _ARROW_TYPES[self.name](self, pa)

    def to_arrow_value(self, value: Any) -> Any:
        """A decoded value in a form `pa.array([...], type=self.arrow_type())` accepts."""
        if value is None:
            return None
        return _ARROW_VALUES[self.name](self, value)

    def to_json(self, value: Any) -> Any:
        """A JSON-native form of a decoded value (blob -> '0x..' hex, as CQL writes blob literals)."""
        if value is None:
            return None
        return _JSON_VALUES[self.name](self, value)

    def cql(self) -> str:
        """The type as CQL writes it, e.g. `frozen<map<text, int>>`."""
        text = _CQL_TEXT[self.name](self)
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
    object.__setattr__(t, "params", tuple(_frozen(p) for p in t.params))


def _frozen(t: CqlType) -> CqlType:
    if not isinstance(t, CqlType):
        raise CqlTypeError(f"type parameter must be a CqlType, got {t!r}")
    if t.frozen or t.name not in _FREEZABLE:
        return t
    return replace(t, frozen=True)


def _build_codec(t: CqlType) -> _Codec:
    simple = _SIMPLE_CODECS.get(t.name)
    if simple is not None:
        return simple
    return _CODEC_BUILDERS[t.name](t)


# --- simple codecs -----------------------------------------------------------------------------------


def _fixed_codec(name: str, st: struct.Struct, key=None, hashable=True, width=None) -> _Codec:
    unpack, pack, size = st.unpack, st.pack, st.size

    def decode(data):
        try:
            return unpack(data)[0]
        except struct.error:
            if not data:
                return None
            raise ValueError(f"{name} needs {size} bytes, got {len(data)}") from None

    def encode(value):
        return b"" if value is None else pack(value)

    return _Codec(decode, encode, key or _identity, hashable, width)


def _identity(v):
    return v


def _text_codec() -> _Codec:
    def decode(data):
        return str(data, "utf-8")

    def encode(value):
        if value is None:
            return b""
        if not isinstance(value, str):
            raise TypeError(f"expected str, got {type(value).__name__}")
        return value.encode("utf-8")

    return _Codec(decode, encode, _identity, True, None)


def _blob_decode(data):
    return bytes(data)


def _blob_encode(value):
    if value is None:
        return b""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return bytes(value)


def _bool_decode(data):
    if len(data) == 1:
        return data[0] != 0
    if not data:
        return None
    raise ValueError(f"boolean needs 1 byte, got {len(data)}")


def _bool_encode(value):
    if value is None:
        return b""
    if not isinstance(value, int):  # bool is an int; reject strings like "false"
        raise TypeError(f"expected bool, got {type(value).__name__}")
    return b"\x01" if value else b"\x00"


def _varint_decode(data):
    if not data:
        return None
    return int.from_bytes(data, "big", signed=True)


def _varint_bytes(n: int) -> bytes:
    # minimal two's complement, as Java's BigInteger.toByteArray
    return n.to_bytes((n + (n < 0)).bit_length() // 8 + 1, "big", signed=True)


def _varint_encode(value):
    if value is None:
        return b""
    if not isinstance(value, int):
        raise TypeError(f"expected int, got {type(value).__name__}")
    return _varint_bytes(value)


def _decimal_decode(data):
    if not data:
        return None
    if len(data) < 5:
        raise ValueError(f"decimal needs a 4-byte scale and at least 1 byte of digits, got {len(data)} bytes")
    scale = _I32.unpack_from(data)[0]
    sign, digits, _ = Decimal(int.from_bytes(data[4:], "big", signed=True)).as_tuple()
    # built from the digit tuple: Decimal arithmetic would round to the context precision
    return Decimal((sign, digits, -scale))


def _decimal_parts(value) -> tuple[int, int]:
    if isinstance(value, int):
        return value, 0
    if isinstance(value, str):
        value = Decimal(value)
    if not isinstance(value, Decimal):
        raise TypeError(f"expected Decimal, got {type(value).__name__}")
    if not value.is_finite():
        raise ValueError("NaN and Infinity have no CQL decimal encoding")
    sign, digits, exponent = value.as_tuple()
    unscaled = int("".join(map(str, digits)))
    return (-unscaled if sign else unscaled), -exponent


def _decimal_encode(value):
    if value is None:
        return b""
    unscaled, scale = _decimal_parts(value)
    return _I32.pack(scale) + _varint_bytes(unscaled)


def _decimal_key(value):
    return Decimal(value) if isinstance(value, (int, str)) else value


def _date_decode(data):
    try:
        days = _U32.unpack(data)[0] - _DATE_BIAS
    except struct.error:
        if not data:
            return None
        raise ValueError(f"date needs 4 bytes, got {len(data)}") from None
    ordinal = days + _EPOCH_ORDINAL
    if 1 <= ordinal <= _MAX_ORDINAL:
        return date.fromordinal(ordinal)
    return days


def _date_days(value) -> int:
    if isinstance(value, date):  # datetime too: its date part
        return value.toordinal() - _EPOCH_ORDINAL
    if isinstance(value, int):
        return value
    days = getattr(value, "days_from_epoch", None)  # cassandra.util.Date
    if isinstance(days, int):
        return days
    raise TypeError(f"expected date or int days, got {type(value).__name__}")


def _date_encode(value):
    if value is None:
        return b""
    return _U32.pack(_date_days(value) + _DATE_BIAS)


def _time_decode(data):
    try:
        nanos = _I64.unpack(data)[0]
    except struct.error:
        if not data:
            return None
        raise ValueError(f"time needs 8 bytes, got {len(data)}") from None
    if not 0 <= nanos < _NANOS_PER_DAY:
        raise ValueError(f"time {nanos} ns is outside a day")
    t = Time.__new__(Time)  # skips Time.__init__'s type dispatch; this is the decode hot path
    t.nanosecond_time = nanos
    return t


def _time_nanos(value) -> int:
    if isinstance(value, Time):
        return value.nanosecond_time
    if isinstance(value, dtime):
        return ((value.hour * 60 + value.minute) * 60 + value.second) * 10**9 + value.microsecond * 1000
    if isinstance(value, int):
        return value
    raise TypeError(f"expected cassandra.util.Time, datetime.time or int ns, got {type(value).__name__}")


def _time_encode(value):
    if value is None:
        return b""
    nanos = _time_nanos(value)
    if not 0 <= nanos < _NANOS_PER_DAY:
        raise ValueError(f"time {nanos} ns is outside a day")
    return _I64.pack(nanos)


def _timestamp_decode(data):
    try:
        millis = _I64.unpack(data)[0]
    except struct.error:
        if not data:
            return None
        raise ValueError(f"timestamp needs 8 bytes, got {len(data)}") from None
    try:
        return _EPOCH + timedelta(milliseconds=millis)
    except OverflowError:
        return millis


def _timestamp_millis(value) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_UTC)
        return (value - _EPOCH) // _ONE_MS
    if isinstance(value, int):
        return value
    raise TypeError(f"expected datetime or int ms, got {type(value).__name__}")


def _timestamp_encode(value):
    if value is None:
        return b""
    return _I64.pack(_timestamp_millis(value))


def _duration_decode(data):
    if not data:
        return None
    months, pos = read_zigzag_vint(data, 0)
    days, pos = read_zigzag_vint(data, pos)
    nanos, pos = read_zigzag_vint(data, pos)
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} bytes after the three duration vints")
    if not (_INT32[0] <= months <= _INT32[1] and _INT32[0] <= days <= _INT32[1]):
        raise ValueError(f"duration months/days out of int range: {months}, {days}")
    return Duration(months, days, nanos)


def _duration_encode(value):
    if value is None:
        return b""
    months, days, nanos = value.months, value.days, value.nanoseconds
    if not (_INT32[0] <= months <= _INT32[1] and _INT32[0] <= days <= _INT32[1]):
        raise ValueError("duration months and days must fit a 32-bit int")
    if not _INT64[0] <= nanos <= _INT64[1]:
        raise ValueError("duration nanoseconds must fit a 64-bit int")
    return zigzag_vint_bytes(months) + zigzag_vint_bytes(days) + zigzag_vint_bytes(nanos)


def _duration_key(value):
    return (value.months, value.days, value.nanoseconds)


def _uuid_decode(data):
    if len(data) == 16:
        return UUID(bytes=bytes(data))
    if not data:
        return None
    raise ValueError(f"uuid needs 16 bytes, got {len(data)}")


def _uuid_encode(value):
    if value is None:
        return b""
    if isinstance(value, str):
        value = UUID(value)
    return value.bytes


def _as_uuid(value) -> UUID:
    return UUID(value) if isinstance(value, str) else value


def _uuid_key(value):
    # UUIDType: version, then the timestamp for version 1, then unsigned bytes
    u = _as_uuid(value).int
    version = (u >> 76) & 0xF
    return (version, _uuid_time(u) if version == 1 else 0, u)


def _uuid_time(u: int) -> int:
    return ((u >> 64) & 0x0FFF) << 48 | ((u >> 80) & 0xFFFF) << 32 | (u >> 96)


def _timeuuid_key(value):
    # TimeUUIDType: the timestamp, then the low 8 bytes compared as *signed* bytes (Java legacy)
    u = _as_uuid(value).int
    return (_uuid_time(u), (u & 0xFFFFFFFFFFFFFFFF) ^ 0x8080808080808080)


def _inet_decode(data):
    if len(data) == 4:
        return IPv4Address(bytes(data))
    if len(data) == 16:
        return IPv6Address(bytes(data))
    if not data:
        return None
    raise ValueError(f"inet needs 4 or 16 bytes, got {len(data)}")


def _inet_encode(value):
    if value is None:
        return b""
    if isinstance(value, str):
        value = ip_address(value)
    return value.packed


def _inet_key(value):
    return ip_address(value).packed if isinstance(value, str) else value.packed


def _empty_decode(data):
    if data:
        raise ValueError(f"the empty type has no value bytes, got {len(data)}")


def _empty_encode(value):
    if value is not None:
        raise TypeError("the empty type only holds None")
    return b""


def _float_key(value):
    return (math.isnan(value), value)  # Java's Float.compare: NaN sorts last


_TEXT_CODEC = _text_codec()
_BLOB_CODEC = _Codec(_blob_decode, _blob_encode, bytes, True, None)

_SIMPLE_CODECS: dict[str, _Codec] = {
    # ascii is decoded as UTF-8 (a superset), leniently, so the codec stays an exact inverse
    "ascii": _TEXT_CODEC,
    "text": _TEXT_CODEC,
    "varchar": _TEXT_CODEC,
    "blob": _BLOB_CODEC,
    "boolean": _Codec(_bool_decode, _bool_encode, bool, True, 1),
    "tinyint": _fixed_codec("tinyint", _I8),
    "smallint": _fixed_codec("smallint", _I16),
    "int": _fixed_codec("int", _I32, width=4),
    "bigint": _fixed_codec("bigint", _I64, width=8),
    "counter": _fixed_codec("counter", _I64, width=None),
    "varint": _Codec(_varint_decode, _varint_encode, _identity, True, None),
    "float": _fixed_codec("float", _F32, key=_float_key, width=4),
    "double": _fixed_codec("double", _F64, key=_float_key, width=8),
    "decimal": _Codec(_decimal_decode, _decimal_encode, _decimal_key, True, None),
    "date": _Codec(_date_decode, _date_encode, _date_days, True, None),
    "time": _Codec(_time_decode, _time_encode, _time_nanos, True, None),
    "timestamp": _Codec(_timestamp_decode, _timestamp_encode, _timestamp_millis, True, 8),
    "duration": _Codec(_duration_decode, _duration_encode, _duration_key, False, None),
    "uuid": _Codec(_uuid_decode, _uuid_encode, _uuid_key, True, 16),
    "timeuuid": _Codec(_uuid_decode, _uuid_encode, _timeuuid_key, True, 16),
    "inet": _Codec(_inet_decode, _inet_encode, _inet_key, True, None),
    "empty": _Codec(_empty_decode, _empty_encode, _identity, True, 0),
}


# --- composite codecs --------------------------------------------------------------------------------


def _read_elements(data, count: int, pos: int, decode, out: list) -> int:
    """Read `count` [int32 length][bytes] elements (length -1 = null) into `out`; return the end."""
    size = len(data)
    append = out.append
    for i in range(count):
        if pos + 4 > size:
            raise ValueError(f"truncated: element {i} of {count} has no length ({size - pos} bytes left)")
        length = _I32.unpack_from(data, pos)[0]
        pos += 4
        if length < 0:
            append(None)
            continue
        end = pos + length
        if end > size:
            raise ValueError(f"truncated: element {i} of {count} needs {length} bytes, {size - pos} left")
        append(decode(data[pos:end]))
        pos = end
    return pos


def _write_element(parts: list, value, encode) -> None:
    if value is None:
        parts.append(_NULL)
        return
    data = encode(value)
    parts.append(_I32.pack(len(data)))
    parts.append(data)


def _read_count(data) -> int:
    if len(data) < 4:
        raise ValueError(f"truncated: a collection starts with a 4-byte count, got {len(data)} bytes")
    count = _I32.unpack_from(data)[0]
    if count < 0:
        raise ValueError(f"negative element count {count}")
    return count


def _check_end(data, pos: int) -> None:
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} bytes after the last element")


def _decode_elements(data, decode) -> list | None:
    if not data:
        return None
    count = _read_count(data)
    out: list = []
    _check_end(data, _read_elements(data, count, 4, decode, out))
    return out


def _encode_elements(items, encode) -> bytes:
    parts = [_I32.pack(len(items))]
    for item in items:
        _write_element(parts, item, encode)
    return b"".join(parts)


def _null_safe(key):
    def wrapped(v):
        return (0,) if v is None else (1, key(v))

    return wrapped


def _check_sequence(value, what: str) -> None:
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not hasattr(value, "__len__"):
        raise TypeError(f"expected a {what}, got {type(value).__name__}")


def _list_codec(t: CqlType) -> _Codec:
    elem = t.params[0]._codec
    edecode, eencode, ekey = elem.decode, elem.encode, _null_safe(elem.key)

    def decode(data):
        return _decode_elements(data, edecode)

    def encode(value):
        if value is None:
            return b""
        _check_sequence(value, "list")
        return _encode_elements(value, eencode)

    def key(value):
        return tuple(map(ekey, value))

    return _Codec(decode, encode, key, False, None)


def _set_codec(t: CqlType) -> _Codec:
    elem = t.params[0]._codec
    edecode, eencode, ekey = elem.decode, elem.encode, _null_safe(elem.key)
    container = frozenset if elem.hashable else tuple

    def decode(data):
        items = _decode_elements(data, edecode)
        return None if items is None else container(items)

    def encode(value):
        if value is None:
            return b""
        _check_sequence(value, "set")
        return _encode_elements(sorted(value, key=ekey), eencode)

    def key(value):
        return tuple(sorted(map(ekey, value)))

    return _Codec(decode, encode, key, elem.hashable, None)


def _map_items(value):
    if isinstance(value, Mapping):
        return value.items()
    _check_sequence(value, "map")
    return value


def _map_codec(t: CqlType) -> _Codec:
    kc, vc = t.params[0]._codec, t.params[1]._codec
    kdecode, vdecode, kencode, vencode = kc.decode, vc.decode, kc.encode, vc.encode
    kkey, vkey = _null_safe(kc.key), _null_safe(vc.key)
    as_dict = kc.hashable

    def decode(data):
        if not data:
            return None
        count = _read_count(data)
        pos = 4
        pairs = []
        for _ in range(count):
            slot: list = []
            pos = _read_elements(data, 1, pos, kdecode, slot)
            pos = _read_elements(data, 1, pos, vdecode, slot)
            pairs.append((slot[0], slot[1]))
        _check_end(data, pos)
        return dict(pairs) if as_dict else pairs

    def sort_key(kv):
        return kkey(kv[0])

    def encode(value):
        if value is None:
            return b""
        items = sorted(_map_items(value), key=sort_key)
        parts = [_I32.pack(len(items))]
        for k, v in items:
            _write_element(parts, k, kencode)
            _write_element(parts, v, vencode)
        return b"".join(parts)

    def key(value):
        return tuple(sorted((kkey(k), vkey(v)) for k, v in _map_items(value)))

    return _Codec(decode, encode, key, False, None)


def _fields_codec(types: tuple[CqlType, ...]):
    """Decode/encode/key of a tuple-shaped value: each field [int32 length][bytes], -1 = null,
    trailing fields may be missing (a UDT that gained fields after the value was written)."""
    codecs = [p._codec for p in types]
    decoders = [c.decode for c in codecs]
    encoders = [c.encode for c in codecs]
    keys = [_null_safe(c.key) for c in codecs]
    n = len(types)

    def decode(data) -> list | None:
        if not data:
            return None
        size = len(data)
        pos = 0
        out: list = []
        for dec in decoders:
            if pos == size:
                out.append(None)
            else:
                pos = _read_elements(data, 1, pos, dec, out)
        if pos != size:
            raise ValueError(f"{size - pos} bytes after the last of the {n} fields")
        return out

    def encode(values) -> bytes:
        if len(values) > n:
            raise ValueError(f"{len(values)} values for {n} fields")
        parts: list = []
        for i, enc in enumerate(encoders):
            _write_element(parts, values[i] if i < len(values) else None, enc)
        return b"".join(parts)

    def key(values):
        return tuple(k(values[i] if i < len(values) else None) for i, k in enumerate(keys))

    return decode, encode, key, all(c.hashable for c in codecs)


def _tuple_codec(t: CqlType) -> _Codec:
    fdecode, fencode, fkey, hashable = _fields_codec(t.params)

    def decode(data):
        values = fdecode(data)
        return None if values is None else tuple(values)

    def encode(value):
        if value is None:
            return b""
        _check_sequence(value, "tuple")
        return fencode(value)

    return _Codec(decode, encode, fkey, hashable, None)


def _udt_codec(t: CqlType) -> _Codec:
    fdecode, fencode, fkey, _ = _fields_codec(t.params)
    names = t.field_names
    known = frozenset(names)

    def as_values(value):
        if isinstance(value, Mapping):
            unknown = set(value) - known
            if unknown:
                raise KeyError(f"no field(s) {sorted(unknown)} in {t.udt_name}")
            return [value.get(n) for n in names]
        _check_sequence(value, "dict of fields")
        return value

    def decode(data):
        values = fdecode(data)
        return None if values is None else dict(zip(names, values))

    def encode(value):
        return b"" if value is None else fencode(as_values(value))

    def key(value):
        return fkey(as_values(value))

    return _Codec(decode, encode, key, False, None)


#: vectors of these element types unpack in one struct call
_VECTOR_STRUCT_CODES = {"float": "f", "double": "d", "int": "i", "bigint": "q"}


def _vector_codec(t: CqlType) -> _Codec:
    elem_type = t.params[0]
    elem = elem_type._codec
    n = t.dimension
    ekey = elem.key
    width = elem.width
    code = _VECTOR_STRUCT_CODES.get(elem_type.name)
    if code is not None:
        decode, encode = _vector_struct_codec(n, code)
    elif width is not None:
        decode, encode = _vector_fixed_codec(n, width, elem)
    else:
        decode, encode = _vector_variable_codec(n, elem)

    def checked_encode(value):
        if value is None:
            return b""
        _check_sequence(value, "list")
        if len(value) != n:
            raise ValueError(f"vector needs {n} elements, got {len(value)}")
        if any(v is None for v in value):
            raise ValueError("vector elements cannot be null")
        return encode(value)

    def key(value):
        return tuple(map(ekey, value))

    return _Codec(decode, checked_encode, key, False, None if width is None else n * width)


def _vector_struct_codec(n: int, code: str):
    st = struct.Struct(f">{n}{code}")

    def decode(data):
        if not data:
            return None
        if len(data) != st.size:
            raise ValueError(f"vector needs {st.size} bytes, got {len(data)}")
        return list(st.unpack(data))

    def encode(value):
        return st.pack(*value)

    return decode, encode


def _vector_fixed_codec(n: int, width: int, elem: _Codec):
    edecode, eencode = elem.decode, elem.encode
    total = n * width

    def decode(data):
        if not data:
            return None
        if len(data) != total:
            raise ValueError(f"vector needs {total} bytes, got {len(data)}")
        return [edecode(data[i : i + width]) for i in range(0, total, width)]

    def encode(value):
        parts = [eencode(v) for v in value]
        if any(len(p) != width for p in parts):
            raise ValueError(f"vector elements must encode to {width} bytes")
        return b"".join(parts)

    return decode, encode


def _vector_variable_codec(n: int, elem: _Codec):
    # VectorType.VariableLengthSerializer: each element with an unsigned vint length
    edecode, eencode = elem.decode, elem.encode

    def decode(data):
        if not data:
            return None
        size = len(data)
        pos = 0
        out = []
        for i in range(n):
            if pos >= size:
                raise ValueError(f"truncated: vector element {i} of {n} missing")
            length, pos = read_uvint(data, pos)
            end = pos + length
            if end > size:
                raise ValueError(f"truncated: vector element {i} needs {length} bytes, {size - pos} left")
            out.append(edecode(data[pos:end]))
            pos = end
        if pos != size:
            raise ValueError(f"{size - pos} bytes after the last vector element")
        return out

    def encode(value):
        parts = []
        for v in value:
            data = eencode(v)
            parts.append(uvint_bytes(len(data)))
            parts.append(data)
        return b"".join(parts)

    return decode, encode


def _custom_codec(t: CqlType) -> _Codec:
    return _Codec(_blob_decode, _blob_encode, bytes, True, _CUSTOM_WIDTHS.get(t.custom_class))


_CODEC_BUILDERS: dict[str, Callable[[CqlType], _Codec]] = {
    "list": _list_codec,
    "set": _set_codec,
    "map": _map_codec,
    "tuple": _tuple_codec,
    "udt": _udt_codec,
    "vector": _vector_codec,
    "custom": _custom_codec,
}


# --- cell paths ----------------------------------------------------------------------------------------


def _list_path_decode(t, path):
    if len(path) != 16:
        raise ValueError(f"a list cell path is a 16-byte timeuuid, got {len(path)} bytes")
    return UUID(bytes=bytes(path))


def _list_path_encode(t, element):
    return _as_uuid(element).bytes


_PATH_DECODERS = {
    "list": _list_path_decode,
    "set": lambda t, path: t.params[0]._codec.decode(path),
    "map": lambda t, path: t.params[0]._codec.decode(path),
    "udt": lambda t, path: t.field_names[t._field_index(path)],
}

_PATH_ENCODERS = {
    "list": _list_path_encode,
    "set": lambda t, element: t.params[0]._codec.encode(element),
    "map": lambda t, element: t.params[0]._codec.encode(element),
    "udt": lambda t, element: _U16.pack(t.field_names.index(element)),
}


# --- CQL text ----------------------------------------------------------------------------------------

_PLAIN_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*\Z")
#: names that would parse as something else when written unquoted
_RESERVED_NAMES = frozenset(SIMPLE_TYPE_WIDTHS) | {"list", "set", "map", "frozen", "tuple", "vector"}


def quote_name(name: str) -> str:
    """An identifier as CQL needs it written: bare when lower-case, else double-quoted."""
    if _PLAIN_IDENTIFIER.match(name) and name not in _RESERVED_NAMES:
        return name
    return '"' + name.replace('"', '""') + '"'


def _quote_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _params_cql(t: CqlType) -> str:
    return ", ".join(p.cql() for p in t.params)


_CQL_TEXT: dict[str, Callable[[CqlType], str]] = {
    **{name: (lambda t: t.name) for name in SIMPLE_TYPE_WIDTHS},
    "empty": lambda t: _quote_string(MARSHAL_PACKAGE + "EmptyType"),
    "list": lambda t: f"list<{_params_cql(t)}>",
    "set": lambda t: f"set<{_params_cql(t)}>",
    "map": lambda t: f"map<{_params_cql(t)}>",
    "tuple": lambda t: f"tuple<{_params_cql(t)}>",
    "udt": lambda t: quote_name(t.udt_name),
    "vector": lambda t: f"vector<{_params_cql(t)}, {t.dimension}>",
    "custom": lambda t: _quote_string(t.custom_class),
}


# --- Arrow -------------------------------------------------------------------------------------------


def _arrow_simple(factory_name: str, *args):
    return lambda t, pa: getattr(pa, factory_name)(*args)


_ARROW_TYPES: dict[str, Callable] = {
    "ascii": _arrow_simple("string"),
    "text": _arrow_simple("string"),
    "varchar": _arrow_simple("string"),
    "blob": _arrow_simple("binary"),
    "custom": _arrow_simple("binary"),
    "boolean": _arrow_simple("bool_"),
    "tinyint": _arrow_simple("int8"),
    "smallint": _arrow_simple("int16"),
    "int": _arrow_simple("int32"),
    "bigint": _arrow_simple("int64"),
    "counter": _arrow_simple("int64"),
    "varint": _arrow_simple("string"),
    "decimal": _arrow_simple("string"),
    "float": _arrow_simple("float32"),
    "double": _arrow_simple("float64"),
    "date": _arrow_simple("date32"),
    "time": _arrow_simple("time64", "ns"),
    "timestamp": lambda t, pa: pa.timestamp("ms", tz="UTC"),
    "duration": _arrow_simple("month_day_nano_interval"),
    "uuid": _arrow_simple("binary", 16),
    "timeuuid": _arrow_simple("binary", 16),
    "inet": _arrow_simple("string"),
    "empty": _arrow_simple("null"),
    "list": lambda t, pa: pa.list_(t.params[0].arrow_type()),
    "set": lambda t, pa: pa.list_(t.params[0].arrow_type()),
    "vector": lambda t, pa: pa.list_(t.params[0].arrow_type()),
    "map": lambda t, pa: pa.map_(t.params[0].arrow_type(), t.params[1].arrow_type()),
    "tuple": lambda t, pa: pa.struct([(str(i), p.arrow_type()) for i, p in enumerate(t.params)]),
    "udt": lambda t, pa: pa.struct([(n, p.arrow_type()) for n, p in zip(t.field_names, t.params)]),
}


def _sorted_set(t: CqlType, value) -> list:
    return sorted(value, key=t.params[0]._codec.key)


def _pairs(value):
    return value.items() if isinstance(value, Mapping) else value


def _same(t, v):
    return v


_ARROW_VALUES: dict[str, Callable] = {
    **{name: _same for name in SIMPLE_TYPE_WIDTHS},
    "custom": _same,
    "varint": lambda t, v: str(v),
    "decimal": lambda t, v: str(v),
    "time": lambda t, v: _time_nanos(v),
    "duration": lambda t, v: (v.months, v.days, v.nanoseconds),
    "uuid": lambda t, v: _as_uuid(v).bytes,
    "timeuuid": lambda t, v: _as_uuid(v).bytes,
    "inet": lambda t, v: str(v),
    "empty": lambda t, v: None,
    "list": lambda t, v: [t.params[0].to_arrow_value(e) for e in v],
    "vector": lambda t, v: [t.params[0].to_arrow_value(e) for e in v],
    "set": lambda t, v: [t.params[0].to_arrow_value(e) for e in _sorted_set(t, v)],
    "map": lambda t, v: [
        (t.params[0].to_arrow_value(k), t.params[1].to_arrow_value(x)) for k, x in _pairs(v)
    ],
    "tuple": lambda t, v: {
        str(i): p.to_arrow_value(v[i] if i < len(v) else None) for i, p in enumerate(t.params)
    },
    "udt": lambda t, v: {n: p.to_arrow_value(v.get(n)) for n, p in zip(t.field_names, t.params)},
}


# --- JSON --------------------------------------------------------------------------------------------


def _json_float(t, v):
    if math.isfinite(v):
        return v
    if math.isnan(v):
        return "NaN"
    return "Infinity" if v > 0 else "-Infinity"


def _json_timestamp(t, v):
    if isinstance(v, int):
        return v
    if v.tzinfo is None:
        v = v.replace(tzinfo=_UTC)
    v = v.astimezone(_UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond // 1000:03d}Z"
    )


def _json_time(t, v):
    nanos = _time_nanos(v)
    seconds, frac = divmod(nanos, 10**9)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}:{minute:02d}:{second:02d}.{frac:09d}"


_DURATION_UNITS = (
    (3_600_000_000_000, "h"),
    (60_000_000_000, "m"),
    (1_000_000_000, "s"),
    (1_000_000, "ms"),
    (1_000, "us"),
    (1, "ns"),
)


def duration_literal(value) -> str:
    """A duration as Cassandra's `Duration.toString` writes it (`1y2mo3d4h5m6s7ms8us9ns`, a leading
    `-` when negative), except that a zero duration is `0s` (Cassandra writes an empty string)."""
    months, days, nanos = value.months, value.days, value.nanoseconds
    parts = ["-"] if months < 0 or days < 0 or nanos < 0 else []
    months, days, nanos = abs(months), abs(days), abs(nanos)
    if months >= 12:
        parts.append(f"{months // 12}y")
    if months % 12:
        parts.append(f"{months % 12}mo")
    if days:
        parts.append(f"{days}d")
    for size, unit in _DURATION_UNITS:
        if nanos >= size:
            parts.append(f"{nanos // size}{unit}")
            nanos %= size
    text = "".join(parts)
    return text if text not in ("", "-") else "0s"


_JSON_VALUES: dict[str, Callable] = {
    **{name: _same for name in SIMPLE_TYPE_WIDTHS},
    "blob": lambda t, v: "0x" + bytes(v).hex(),
    "custom": lambda t, v: "0x" + bytes(v).hex(),
    "float": _json_float,
    "double": _json_float,
    "decimal": lambda t, v: str(v),
    "date": lambda t, v: v if isinstance(v, int) else v.isoformat(),
    "time": _json_time,
    "timestamp": _json_timestamp,
    "duration": lambda t, v: duration_literal(v),
    "uuid": lambda t, v: str(v),
    "timeuuid": lambda t, v: str(v),
    "inet": lambda t, v: str(v),
    "empty": lambda t, v: None,
    "list": lambda t, v: [t.params[0].to_json(e) for e in v],
    "vector": lambda t, v: [t.params[0].to_json(e) for e in v],
    "set": lambda t, v: [t.params[0].to_json(e) for e in _sorted_set(t, v)],
    "map": lambda t, v: _json_map(t, v),
    "tuple": lambda t, v: [p.to_json(v[i] if i < len(v) else None) for i, p in enumerate(t.params)],
    "udt": lambda t, v: {n: p.to_json(v.get(n)) for n, p in zip(t.field_names, t.params)},
}


def _json_map(t: CqlType, value):
    kt, vt = t.params
    if kt.name in ("ascii", "text", "varchar"):
        return {k: vt.to_json(v) for k, v in _pairs(value)}
    return [[kt.to_json(k), vt.to_json(v)] for k, v in _pairs(value)]


# --- parsing -----------------------------------------------------------------------------------------

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
    return _frozen(p.type())


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


def parse_cql_type(text: str, *, keyspace: str | None = None, user_types=None) -> CqlType:
    """Parse a CQL type string (`map<text, frozen<list<int>>>`, `vector<float, 3>`, a UDT name, or
    a quoted custom class). `user_types` maps (keyspace, name) -> ((field name, CqlType), ...)."""
    if not isinstance(text, str):
        raise CqlTypeError(f"a CQL type must be a string, got {type(text).__name__}")
    return _Parser(text, keyspace, user_types).parse()
