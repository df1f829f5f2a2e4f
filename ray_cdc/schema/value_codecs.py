"""Native-protocol (v3+) codecs of the simple types, and the `Codec` record every type resolves to.

The codec functions raise plain Python errors (`CODEC_ERRORS`) on bad input; `CqlType.decode` and
`encode` turn them into ValueCodecError with the type and bytes, so the functions themselves stay
free of wrapping and each simple decode is one call.
"""

from __future__ import annotations

import struct
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address, ip_address
from uuid import UUID

from cassandra.util import Duration, Time

from ray_cdc.commitlog.primitives import read_zigzag_vint, zigzag_vint_bytes
from ray_cdc.schema.value_order import (
    decimal_key,
    duration_key,
    float_key,
    identity,
    inet_key,
    timeuuid_key,
    uuid_key,
)

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")

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
CODEC_ERRORS = (struct.error, ValueError, IndexError, TypeError, OverflowError, AttributeError, KeyError)


class Codec:
    """The resolved per-type functions, built once per CqlType so `decode` is a single call."""

    __slots__ = ("decode", "encode", "hashable", "key", "width")

    def __init__(self, decode, encode, key, hashable: bool, width: int | None):
        self.decode = decode
        self.encode = encode
        self.key = key  # sort key that reproduces Cassandra's comparator (set / map key order)
        self.hashable = hashable  # whether decoded values can live in a frozenset / dict key
        self.width = width


def _fixed_codec(name: str, st: struct.Struct, key=None, hashable=True, width=None) -> Codec:
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

    return Codec(decode, encode, key or identity, hashable, width)


def _text_codec() -> Codec:
    def decode(data):
        return str(data, "utf-8")

    def encode(value):
        if value is None:
            return b""
        if not isinstance(value, str):
            raise TypeError(f"expected str, got {type(value).__name__}")
        return value.encode("utf-8")

    return Codec(decode, encode, identity, True, None)


def blob_decode(data):
    return bytes(data)


def blob_encode(value):
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


def time_nanos(value) -> int:
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
    nanos = time_nanos(value)
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


def _empty_decode(data):
    if data:
        raise ValueError(f"the empty type has no value bytes, got {len(data)}")


def _empty_encode(value):
    if value is not None:
        raise TypeError("the empty type only holds None")
    return b""


_TEXT_CODEC = _text_codec()
_BLOB_CODEC = Codec(blob_decode, blob_encode, bytes, True, None)

SIMPLE_CODECS: dict[str, Codec] = {
    # ascii is decoded as UTF-8 (a superset), leniently, so the codec stays an exact inverse
    "ascii": _TEXT_CODEC,
    "text": _TEXT_CODEC,
    "varchar": _TEXT_CODEC,
    "blob": _BLOB_CODEC,
    "boolean": Codec(_bool_decode, _bool_encode, bool, True, 1),
    "tinyint": _fixed_codec("tinyint", _I8),
    "smallint": _fixed_codec("smallint", _I16),
    "int": _fixed_codec("int", _I32, width=4),
    "bigint": _fixed_codec("bigint", _I64, width=8),
    "counter": _fixed_codec("counter", _I64, width=None),
    "varint": Codec(_varint_decode, _varint_encode, identity, True, None),
    "float": _fixed_codec("float", _F32, key=float_key, width=4),
    "double": _fixed_codec("double", _F64, key=float_key, width=8),
    "decimal": Codec(_decimal_decode, _decimal_encode, decimal_key, True, None),
    "date": Codec(_date_decode, _date_encode, _date_days, True, None),
    "time": Codec(_time_decode, _time_encode, time_nanos, True, None),
    "timestamp": Codec(_timestamp_decode, _timestamp_encode, _timestamp_millis, True, 8),
    "duration": Codec(_duration_decode, _duration_encode, duration_key, False, None),
    "uuid": Codec(_uuid_decode, _uuid_encode, uuid_key, True, 16),
    "timeuuid": Codec(_uuid_decode, _uuid_encode, timeuuid_key, True, 16),
    "inet": Codec(_inet_decode, _inet_encode, inet_key, True, None),
    "empty": Codec(_empty_decode, _empty_encode, identity, True, 0),
}
