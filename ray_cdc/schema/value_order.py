"""Sort keys that reproduce Cassandra's comparators, per simple type.

Sets and map keys are encoded in the order Cassandra itself writes them, so that
`encode(decode(b)) == b` although a frozenset or dict has no order of its own. Types whose
comparator is the natural order of a number (date, time, timestamp) use the codec's coercion to
that number as their key, so those keys live with the codecs.
"""

from __future__ import annotations

import math
from decimal import Decimal
from ipaddress import ip_address
from uuid import UUID


def identity(v):
    return v


def null_safe(key):
    # None has no order against values: sorting it first keeps sorted() from comparing the two
    def wrapped(v):
        return (0,) if v is None else (1, key(v))

    return wrapped


def float_key(value):
    return (math.isnan(value), value)  # Java's Float.compare: NaN sorts last


def decimal_key(value):
    return Decimal(value) if isinstance(value, (int, str)) else value


def duration_key(value):
    return (value.months, value.days, value.nanoseconds)


def as_uuid(value) -> UUID:
    return UUID(value) if isinstance(value, str) else value


def uuid_key(value):
    # UUIDType: version, then the timestamp for version 1, then unsigned bytes
    u = as_uuid(value).int
    version = (u >> 76) & 0xF
    return (version, _uuid_time(u) if version == 1 else 0, u)


def _uuid_time(u: int) -> int:
    return ((u >> 64) & 0x0FFF) << 48 | ((u >> 80) & 0xFFFF) << 32 | (u >> 96)


def timeuuid_key(value):
    # TimeUUIDType: the timestamp, then the low 8 bytes compared as *signed* bytes (Java legacy)
    u = as_uuid(value).int
    return (_uuid_time(u), (u & 0xFFFFFFFFFFFFFFFF) ^ 0x8080808080808080)


def inet_key(value):
    return ip_address(value).packed if isinstance(value, str) else value.packed
