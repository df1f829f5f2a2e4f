"""SQL literals for primary-key values (stored-form Python values), to select keys with `IN`.

Keys are read back by value, so each literal must denote exactly the stored value: strings and
blobs are escaped byte by byte, dates and timestamps go through explicit conversions.
"""

from __future__ import annotations

import math
import uuid
from datetime import date, datetime, timezone

from ray_cdc.errors import FatalDestinationError
from ray_cdc.schema.types import CqlType

_ESCAPES = {ord("\\"): "\\\\", ord("'"): "\\'"}


def _string(value: str) -> str:
    return "'" + value.translate(_ESCAPES) + "'"


def _blob(value: bytes) -> str:
    return "'" + "".join(f"\\x{b:02x}" for b in value) + "'"


def _float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)


def _timestamp(value: datetime) -> str:
    utc = value.astimezone(timezone.utc)
    return f"toDateTime64('{utc.strftime('%Y-%m-%d %H:%M:%S')}.{utc.microsecond // 1000:03d}', 3, 'UTC')"


def _date(value: date) -> str:
    return f"toDate32('{value.isoformat()}')"


_BY_TYPE = {
    "ascii": _string, "text": _string, "varchar": _string, "inet": _string, "varint": _string,
    "decimal": _string, "blob": _blob, "custom": _blob, "boolean": lambda v: "true" if v else "false",
    "tinyint": str, "smallint": str, "int": str, "bigint": str, "counter": str, "time": str,
    "float": _float, "double": _float, "uuid": lambda v: f"toUUID('{uuid.UUID(bytes=v)}')",
    "timeuuid": lambda v: f"toUUID('{uuid.UUID(bytes=v)}')", "date": _date, "timestamp": _timestamp,
}


def literal_function(t: CqlType):
    fn = _BY_TYPE.get(t.name)
    if fn is None:
        raise FatalDestinationError(f"primary key columns of type {t.cql()} are not supported by the "
                                    "ClickHouse destination", destination="clickhouse")
    return lambda v: "NULL" if v is None else fn(v)


def in_clause(columns: list[str], types: list[CqlType], keys: list[tuple]) -> str:
    """`(a, b) IN ((1, 'x'), ...)`, or `a IN (1, ...)` for a single column."""
    fns = [literal_function(t) for t in types]
    if len(columns) == 1:
        fn = fns[0]
        return f"{columns[0]} IN ({', '.join(fn(k[0]) for k in keys)})"
    rows = ", ".join("(" + ", ".join(f(v) for f, v in zip(fns, k)) + ")" for k in keys)
    return f"({', '.join(columns)}) IN ({rows})"
