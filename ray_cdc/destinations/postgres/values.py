"""Arrow columns -> Python values for binary COPY into the staging tables, per CQL type.

Each CQL type has a *stage type* (what COPY writes: a type psycopg dumps in binary without help) and
a cast to the final type applied by the merge (`numeric`, `inet`, `interval`, `jsonb` and vectors
travel as text: their text forms are exact, and building them costs less than Python objects).
A value that cannot be converted (a timestamp outside PostgreSQL's or Python's range, text with a NUL
byte) is reported as a per-row problem, so only that row is rejected.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.destinations.postgres.ddl import pg_type
from ray_cdc.schema.types import CqlType

_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_EPOCH_DAY = date(1970, 1, 1)

#: pg type -> the type the staging table uses (binary COPY) when they differ
_STAGE_AS_TEXT = frozenset(("numeric", "inet", "interval", "jsonb", "real[]", "double precision[]"))


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
    values = array.cast(pa.int64()).to_pylist()
    out = []
    for i, ms in enumerate(values):
        if ms is None:
            out.append(None)
            continue
        try:
            out.append(_EPOCH + timedelta(milliseconds=ms))
        except OverflowError:
            problems.add(i, name, f"timestamp {ms} ms since the epoch is out of range for timestamptz")
            out.append(None)
    return out


def _date(array, t, name, problems):
    out = []
    for i, days in enumerate(array.cast(pa.int32()).to_pylist()):
        if days is None:
            out.append(None)
            continue
        try:
            out.append(_EPOCH_DAY + timedelta(days=days))
        except OverflowError:
            problems.add(i, name, f"date {days} days since the epoch is out of range for date")
            out.append(None)
    return out


def _time(array, t, name, problems):
    return array.cast(pa.int64()).to_pylist()  # nanoseconds since midnight, lossless


def _uuid(array, t, name, problems):
    return [None if b is None else uuid.UUID(bytes=b) for b in array.to_pylist()]


def _numeric(array, t, name, problems):
    return array.to_pylist()  # exact decimal text already


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
    return [None if v is None else json.dumps(json_value(t, v), ensure_ascii=False) for v in array.to_pylist()]


CONVERTERS: dict[str, Callable] = {
    "text": _text, "ascii": _text, "varchar": _text, "empty": _plain,
    "blob": _plain, "custom": _plain, "boolean": _plain, "tinyint": _plain, "smallint": _plain,
    "int": _plain, "bigint": _plain, "counter": _plain, "float": _plain, "double": _plain,
    "varint": _numeric, "decimal": _numeric, "date": _date, "time": _time, "timestamp": _timestamp,
    "duration": _duration, "uuid": _uuid, "timeuuid": _uuid, "inet": _plain,
    "vector": _vector, "list": _json, "set": _json, "map": _json, "tuple": _json, "udt": _json,
}


def column_values(t: CqlType, array: pa.Array, name: str, problems: RowProblems) -> list:
    return CONVERTERS[t.name](array, t, name, problems)


# --- JSON forms of Arrow values (collections, tuples, UDTs) ------------------------------------------


def json_value(t: CqlType, v):
    """A JSON-native form of an Arrow Python value of type `t` (as `to_pylist` gives it)."""
    if v is None:
        return None
    handler = _JSON.get(t.name)
    return handler(t, v) if handler is not None else v


def _json_map(t, v):
    pairs = v.items() if isinstance(v, dict) else v
    return {_json_key(t.params[0], k): json_value(t.params[1], x) for k, x in pairs}


def _json_key(t: CqlType, k) -> str:
    value = json_value(t, k)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _json_set(t, v):
    return [json_value(t.params[0], x) for x in v]


def _ts_json(t, v):
    if isinstance(v, datetime):
        return v.astimezone(_UTC).isoformat().replace("+00:00", "Z")
    return v


_JSON: dict[str, Callable] = {
    "list": _json_set, "set": _json_set, "vector": _json_set, "map": _json_map,
    "tuple": lambda t, v: [json_value(p, v.get(str(i))) for i, p in enumerate(t.params)],
    "udt": lambda t, v: {n: json_value(p, v.get(n)) for n, p in zip(t.field_names, t.params)},
    "uuid": lambda t, v: str(uuid.UUID(bytes=v)), "timeuuid": lambda t, v: str(uuid.UUID(bytes=v)),
    "blob": lambda t, v: "0x" + v.hex(), "custom": lambda t, v: "0x" + v.hex(),
    "timestamp": _ts_json, "date": lambda t, v: v.isoformat() if isinstance(v, date) else v,
    "time": lambda t, v: v.hour * 3_600_000_000_000 + v.minute * 60_000_000_000 + v.second * 10**9
    + v.microsecond * 1000 if hasattr(v, "hour") else v,
    "duration": lambda t, v: {"months": v.months, "days": v.days, "nanoseconds": v.nanoseconds},
    "float": lambda t, v: v, "double": lambda t, v: v,
}
