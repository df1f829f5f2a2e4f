"""How a CqlType and its decoded values are presented: CQL text (`cql()`), Arrow types and values,
and JSON.

The tables are keyed by `CqlType.name` and recurse through the CqlType methods of the parameters,
so this module never needs the class itself at run time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import timezone
from typing import TYPE_CHECKING

from ray_cdc.schema.cql_names import quote_identifier, string_literal
from ray_cdc.schema.type_names import MARSHAL_PACKAGE, SIMPLE_TYPE_WIDTHS
from ray_cdc.schema.value_codecs import time_nanos
from ray_cdc.schema.value_order import as_uuid

if TYPE_CHECKING:
    from ray_cdc.schema.types import CqlType

_UTC = timezone.utc

# --- CQL text ----------------------------------------------------------------------------------------

#: the name of `quote_identifier` this module has always exported (types re-exports it)
quote_name = quote_identifier


def _params_cql(t: CqlType) -> str:
    return ", ".join(p.cql() for p in t.params)


CQL_TEXT: dict[str, Callable[[CqlType], str]] = {
    **{name: (lambda t: t.name) for name in SIMPLE_TYPE_WIDTHS},
    "empty": lambda t: string_literal(MARSHAL_PACKAGE + "EmptyType"),
    "list": lambda t: f"list<{_params_cql(t)}>",
    "set": lambda t: f"set<{_params_cql(t)}>",
    "map": lambda t: f"map<{_params_cql(t)}>",
    "tuple": lambda t: f"tuple<{_params_cql(t)}>",
    "udt": lambda t: quote_name(t.udt_name),
    "vector": lambda t: f"vector<{_params_cql(t)}, {t.dimension}>",
    "custom": lambda t: string_literal(t.custom_class),
}


# --- Arrow -------------------------------------------------------------------------------------------


def _arrow_simple(factory_name: str, *args):
    return lambda t, pa: getattr(pa, factory_name)(*args)


ARROW_TYPES: dict[str, Callable] = {
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


ARROW_VALUES: dict[str, Callable] = {
    **{name: _same for name in SIMPLE_TYPE_WIDTHS},
    "custom": _same,
    "varint": lambda t, v: str(v),
    "decimal": lambda t, v: str(v),
    "time": lambda t, v: time_nanos(v),
    "duration": lambda t, v: (v.months, v.days, v.nanoseconds),
    "uuid": lambda t, v: as_uuid(v).bytes,
    "timeuuid": lambda t, v: as_uuid(v).bytes,
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
    nanos = time_nanos(v)
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


JSON_VALUES: dict[str, Callable] = {
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
