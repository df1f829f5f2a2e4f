"""Seeded random values of every CQL type, in the form the decoder returns them (so a decoded value
equals the generated one)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from cassandra.util import Duration, Time

from ray_cdc.schema.types import CqlType

__all__ = ["EPOCH_DAY", "nonempty_value", "random_value"]

_WORDS = ("alpha", "beta", "gamma", "delta", "Zürich", "東京", "naïve", "ŝtono", "emoji🙂", "x")
EPOCH_DAY = date(1970, 1, 1)
_UTC = timezone.utc


def _f32(rng: random.Random) -> float:
    return rng.randint(-(1 << 20), 1 << 20) / 64  # exact in a float32: decodes back equal


def _text(rng: random.Random) -> str:
    return " ".join(rng.choices(_WORDS, k=1 + int(rng.random() * 4)))


def _timeuuid(rng: random.Random) -> uuid.UUID:
    ticks = 0x1EE0000000000000 + rng.getrandbits(52)
    return uuid.UUID(fields=(ticks & 0xFFFFFFFF, (ticks >> 32) & 0xFFFF, ((ticks >> 48) & 0x0FFF) | 0x1000,
                             0x80 | rng.getrandbits(6), rng.getrandbits(8), rng.getrandbits(48)))


def _timestamp(rng: random.Random) -> datetime:
    return datetime(2020, 1, 1, tzinfo=_UTC) + timedelta(milliseconds=rng.getrandbits(37))


def _inet(rng: random.Random):
    return IPv4Address(rng.getrandbits(32)) if rng.random() < 0.7 else IPv6Address(rng.getrandbits(128))


# Simple types: rng -> a value in the form the decoder returns (so decoded == generated)
_SIMPLE_VALUES: dict[str, Callable[[random.Random], Any]] = {
    "ascii": lambda r: "".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(r.randint(1, 12))),
    "text": _text,
    "varchar": _text,
    "blob": lambda r: r.randbytes(r.randint(0, 24)),
    "boolean": lambda r: r.random() < 0.5,
    "tinyint": lambda r: r.randint(-128, 127),
    "smallint": lambda r: r.randint(-32768, 32767),
    "int": lambda r: r.randint(-(1 << 31), (1 << 31) - 1),
    "bigint": lambda r: r.randint(-(1 << 63), (1 << 63) - 1),
    "varint": lambda r: r.randint(-(1 << 100), 1 << 100),
    "float": _f32,
    "double": lambda r: r.uniform(-1e12, 1e12),
    "decimal": lambda r: Decimal(r.randint(-10**15, 10**15)).scaleb(-r.randint(0, 8)),
    "date": lambda r: EPOCH_DAY + timedelta(days=r.randint(0, 30000)),
    "time": lambda r: Time(r.randrange(86_400 * 10**9)),
    "timestamp": _timestamp,
    "duration": lambda r: Duration(r.randint(0, 24), r.randint(0, 60), r.randrange(86_400 * 10**9)),
    "uuid": lambda r: uuid.UUID(int=r.getrandbits(128), version=4),
    "timeuuid": _timeuuid,
    "inet": _inet,
}


def random_value(t: CqlType, rng: random.Random) -> Any:
    simple = _SIMPLE_VALUES.get(t.name)
    if simple is not None:
        return simple(rng)
    return _COMPOSITE_VALUES[t.name](t, rng)


def nonempty_value(t: CqlType, rng: random.Random) -> Any:
    """A value whose encoding is not empty: key components, and collection elements (an empty
    element value reads back as null)."""
    while True:
        v = random_value(t, rng)
        if len(t.encode(v)):
            return v


def _elements(t: CqlType, rng: random.Random, low: int = 1, high: int = 4) -> list:
    return [nonempty_value(t, rng) for _ in range(rng.randint(low, high))]


_COMPOSITE_VALUES: dict[str, Callable[[CqlType, random.Random], Any]] = {
    "list": lambda t, r: _elements(t.params[0], r),
    "set": lambda t, r: frozenset(_elements(t.params[0], r)),
    "map": lambda t, r: {nonempty_value(t.params[0], r): nonempty_value(t.params[1], r) for _ in range(r.randint(1, 3))},
    "tuple": lambda t, r: tuple(random_value(p, r) for p in t.params),
    "udt": lambda t, r: {n: nonempty_value(p, r) for n, p in zip(t.field_names, t.params)},
    "vector": lambda t, r: [random_value(t.params[0], r) for _ in range(t.dimension)],
}
