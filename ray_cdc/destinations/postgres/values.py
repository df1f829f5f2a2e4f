"""Arrow columns -> Python values for binary COPY into the staging tables, per CQL type.

Each CQL type has a *stage type* (what COPY writes: a type psycopg dumps in binary without help) and
a cast to the final type applied by the merge (`numeric`, `inet`, `interval`, `jsonb` and vectors
travel as text: their text forms are exact, and building them costs less than Python objects).
A value that cannot be converted (a timestamp outside PostgreSQL's or Python's range, text with a NUL
byte) is reported as a per-row problem, so only that row is rejected.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
from psycopg.types.json import Jsonb

from ray_cdc.destinations.postgres.ddl import pg_type
from ray_cdc.schema.types import CqlType

_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_EPOCH_DAY = date(1970, 1, 1)

#: pg types staged as text and cast by the merge: their text forms here are always valid input, so the
#: cast cannot fail on data (types whose input can be refused are staged typed: COPY isolates them)
_STAGE_AS_TEXT = frozenset(("interval", "real[]", "double precision[]"))


def stage_type(t: CqlType) -> str:
    target = pg_type(t)
    return "text" if target in _STAGE_AS_TEXT else target


def cast_sql(t: CqlType, expr: str) -> str:
    target = pg_type(t)
    return f"({expr})::{target}" if target in _STAGE_AS_TEXT else expr


class RowProblems(dict):
    """row index -> reason, for values this module refuses."""

    def add(self, row: int, column: str, reason: str) -> None:
        self.setdefault(row, f"column {column}: {reason}")


# --- per-type converters: (arrow array, cql type, column name, problems) -> list --------------------


def _plain(array, t, name, problems):
    return array.to_pylist()


def _text(array, t, name, problems):
    has_nul = pc.fill_null(pc.match_substring(array, "\x00"), False)
    values = array.to_pylist()
    if pc.any(has_nul).as_py():
        for i in pc.indices_nonzero(has_nul).to_pylist():
            problems.add(i, name, "text contains a NUL (0x00) character, which PostgreSQL text cannot store")
            values[i] = None
    return values


def _timestamp(array, t, name, problems):
    return _since_epoch(array.cast(pa.int64()).to_pylist(), _EPOCH, "milliseconds", "timestamptz", name, problems)


def _date(array, t, name, problems):
    return _since_epoch(array.cast(pa.int32()).to_pylist(), _EPOCH_DAY, "days", "date", name, problems)


def _since_epoch(values, epoch, unit: str, pg_type: str, name, problems):
    """Counts of `unit` since the epoch -> datetimes/dates; a value PostgreSQL's type cannot hold is
    a problem of its row, not of the batch."""
    out = []
    for i, count in enumerate(values):
        if count is None:
            out.append(None)
            continue
        try:
            out.append(epoch + timedelta(**{unit: count}))
        except OverflowError:
            problems.add(i, name, f"{count} {unit} since the epoch is out of range for {pg_type}")
            out.append(None)
    return out


def _time(array, t, name, problems):
    return array.cast(pa.int64()).to_pylist()  # nanoseconds since midnight, lossless


def _uuid(array, t, name, problems):
    return [None if b is None else uuid.UUID(bytes=b) for b in array.to_pylist()]


def _numeric(array, t, name, problems):
    return [None if v is None else Decimal(v) for v in array.to_pylist()]  # exact decimal text


def _duration(array, t, name, problems):
    # interval keeps microseconds: sub-microsecond nanoseconds are truncated (ddl.py documents it)
    out = []
    for v in array.to_pylist():
        if v is None:
            out.append(None)
        else:
            months, days, nanos = v.months, v.days, v.nanoseconds
            out.append(f"{months} mons {days} days {int(nanos / 1000) if nanos < 0 else nanos // 1000} microseconds")
    return out


def _vector(array, t, name, problems):
    if t.params[0].name not in ("float", "double"):
        return _json(array, t, name, problems)
    return [None if v is None else "{" + ",".join(repr(float(x)) for x in v) + "}" for v in array.to_pylist()]


def _json(array, t, name, problems):
    return [None if v is None else Jsonb(json.dumps(json_value(t, v), ensure_ascii=False), dumps=_as_is)
            for v in array.to_pylist()]


def _as_is(text: str) -> str:
    return text


def _inet(array, t, name, problems):
    return [None if v is None else ipaddress.ip_address(v) for v in array.to_pylist()]


CONVERTERS: dict[str, Callable] = {
    "text": _text, "ascii": _text, "varchar": _text, "empty": _plain,
    "blob": _plain, "custom": _plain, "boolean": _plain, "tinyint": _plain, "smallint": _plain,
    "int": _plain, "bigint": _plain, "counter": _plain, "float": _plain, "double": _plain,
    "varint": _numeric, "decimal": _numeric, "date": _date, "time": _time, "timestamp": _timestamp,
    "duration": _duration, "uuid": _uuid, "timeuuid": _uuid, "inet": _inet,
    "vector": _vector, "list": _json, "set": _json, "map": _json, "tuple": _json, "udt": _json,
}


def column_values(t: CqlType, array: pa.Array, name: str, problems: RowProblems) -> list:
    return CONVERTERS[t.name](array, t, name, problems)


# --- JSON forms of Arrow values (collections, tuples, UDTs) ------------------------------------------
# Arrow values are turned back into the decoder's Python values, then into the project's one JSON
# form (`CqlType.to_json`), so PostgreSQL's jsonb matches what every other output of ray_cdc writes.


def json_value(t: CqlType, v):
    return t.to_json(decoded(t, v))


def decoded(t: CqlType, v):
    """The decoder's Python value of an Arrow Python value (`to_pylist`) of type `t`."""
    if v is None:
        return None
    handler = _DECODED.get(t.name)
    return handler(t, v) if handler is not None else v


def _hashable_set(values: list):
    try:
        return frozenset(values)
    except TypeError:
        return tuple(values)


def _map(t, v):
    pairs = [(decoded(t.params[0], k), decoded(t.params[1], x)) for k, x in (v.items() if isinstance(v, dict) else v)]
    try:
        return dict(pairs)
    except TypeError:
        return pairs


def _time_value(t, v):
    from cassandra.util import Time

    if isinstance(v, int):
        return Time(v)
    return Time(((v.hour * 60 + v.minute) * 60 + v.second) * 10**9 + v.microsecond * 1000)


def _duration_value(t, v):
    from cassandra.util import Duration

    return Duration(v.months, v.days, v.nanoseconds)


def _inet_value(t, v):
    return ipaddress.ip_address(v)


_DECODED: dict[str, Callable] = {
    "list": lambda t, v: [decoded(t.params[0], x) for x in v],
    "vector": lambda t, v: [decoded(t.params[0], x) for x in v],
    "set": lambda t, v: _hashable_set([decoded(t.params[0], x) for x in v]),
    "map": _map,
    "tuple": lambda t, v: tuple(decoded(p, v.get(str(i))) for i, p in enumerate(t.params)),
    "udt": lambda t, v: {n: decoded(p, v.get(n)) for n, p in zip(t.field_names, t.params)},
    "uuid": lambda t, v: uuid.UUID(bytes=v), "timeuuid": lambda t, v: uuid.UUID(bytes=v),
    "decimal": lambda t, v: Decimal(v), "varint": lambda t, v: int(v),
    "time": _time_value, "duration": _duration_value, "inet": _inet_value,
}
