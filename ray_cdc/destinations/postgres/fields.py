"""Arrow columns -> binary COPY fields (see copy_binary.py), per CQL type, without per-row Python for
the common types.

Integers, floats, booleans, uuids, timestamps, dates and times are big-endian numpy arrays in the
layout PostgreSQL's binary input functions read (timestamps: µs since 2000-01-01; dates: days since
2000-01-01); text and blobs are their bytes. Other types (numeric, inet, interval, vectors, JSON
collections) go through values.py's Python conversion and psycopg's own binary dumpers, one value at
a time: exact, and rare enough to be cheap.

Values the target type cannot hold are per-row problems (only their row is rejected), with the same
messages as values.py: text with a NUL byte, timestamps and dates outside PostgreSQL's finite range
(its binary input would otherwise read the extreme ones as +-infinity), decimals psycopg cannot
send.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg.adapt import PyFormat, Transformer

from ray_cdc.destinations.postgres.copy_binary import Field, bytes_field, fixed_field, var_field
from ray_cdc.destinations.postgres.values import RowProblems, _text, column_values
from ray_cdc.schema.types import CqlType

_PG_EPOCH_MS = 946_684_800_000  # 2000-01-01, PostgreSQL's epoch, in ms since 1970
_PG_EPOCH_DAYS = 10_957
# PostgreSQL's finite ranges (MIN_TIMESTAMP .. END_TIMESTAMP, Julian day 0 .. DATE_END_JULIAN) in the
# Arrow units: ms and days since 1970. The ms upper bound is where ms * 1000 leaves int64.
_TIMESTAMP_MS = (-210_866_803_200_000, (2**63 - 1) // 1000)
_DATE_DAYS = (-2_440_588, 2_147_483_494 - 2_451_545 + _PG_EPOCH_DAYS - 1)


def _numbers(array: pa.Array, dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Big-endian numpy values (nulls as 0) and the validity mask (None: no nulls)."""
    valid = None
    if array.null_count:
        valid = array.is_valid().to_numpy(zero_copy_only=False)
        array = pc.fill_null(array, pa.scalar(0, array.type) if not pa.types.is_boolean(array.type) else False)
    return array.to_numpy(zero_copy_only=False).astype(dtype), valid


def _fixed(dtype: str, storage: pa.DataType | None = None) -> Callable:
    def encode(array, t, name, problems):
        if storage is not None:
            array = array.cast(storage)
        return fixed_field(*_numbers(array, dtype))
    return encode


def _boolean(array, t, name, problems):
    values, valid = _numbers(array, "u1")
    return fixed_field(values, valid)


def _uuid(array, t, name, problems):
    n = len(array)
    raw = np.frombuffer(array.buffers()[1], dtype=np.uint8, count=n * 16, offset=array.offset * 16)
    valid = array.is_valid().to_numpy(zero_copy_only=False) if array.null_count else None
    return fixed_field(raw.reshape(n, 16), valid)


def _in_range(counts: np.ndarray, valid: np.ndarray | None, bounds: tuple[int, int], unit: str,
              pg_type: str, name: str, problems: RowProblems) -> np.ndarray:
    """Validity with out-of-range rows turned off (and reported)."""
    bad = (counts < bounds[0]) | (counts > bounds[1])
    if valid is not None:
        bad &= valid
    if bad.any():
        for i in np.flatnonzero(bad).tolist():
            problems.add(i, name, f"{int(counts[i])} {unit} since the epoch is out of range for {pg_type}")
        valid = ~bad if valid is None else valid & ~bad
    return valid


def _timestamp(array, t, name, problems):
    ms, valid = _numbers(array.cast(pa.int64()), "i8")
    valid = _in_range(ms, valid, _TIMESTAMP_MS, "milliseconds", "timestamptz", name, problems)
    micros = np.where(valid, ms, 0) if valid is not None else ms
    return fixed_field((micros * 1000 - _PG_EPOCH_MS * 1000).astype(">i8"), valid)


def _date(array, t, name, problems):
    days, valid = _numbers(array.cast(pa.int32()), "i8")
    valid = _in_range(days, valid, _DATE_DAYS, "days", "date", name, problems)
    days = np.where(valid, days, 0) if valid is not None else days
    return fixed_field((days - _PG_EPOCH_DAYS).astype(">i4"), valid)


def _text_field(array, t, name, problems):
    if pc.any(pc.fill_null(pc.match_substring(array, "\x00"), False)).as_py():
        return bytes_field([None if v is None else v.encode() for v in _text(array, t, name, problems)])
    return var_field(array)


def _bytes(array, t, name, problems):
    return var_field(array)


_TX = Transformer()  # psycopg's adapters without a connection: binary dumpers are encoding-free here


def dumped_field(values: Sequence, name: str, problems: RowProblems) -> Field:
    """A field from Python values, each through psycopg's binary dumper for its type."""
    dumpers: dict[type, Callable] = {}
    out: list[bytes | None] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        dump = dumpers.get(type(v))
        if dump is None:
            dump = dumpers[type(v)] = _TX.get_dumper(v, PyFormat.BINARY).dump
        try:
            out.append(bytes(dump(v)))
        except psycopg.DataError as exc:
            problems.add(i, name, f"{type(exc).__name__}: {exc}")
            out.append(None)
    return bytes_field(out)


def _python(array, t, name, problems):
    return dumped_field(column_values(t, array, name, problems), name, problems)


ENCODERS: dict[str, Callable] = {
    "tinyint": _fixed(">i2"), "smallint": _fixed(">i2"), "int": _fixed(">i4"), "bigint": _fixed(">i8"),
    "counter": _fixed(">i8"), "time": _fixed(">i8", pa.int64()), "float": _fixed(">f4"),
    "double": _fixed(">f8"), "boolean": _boolean, "uuid": _uuid, "timeuuid": _uuid,
    "timestamp": _timestamp, "date": _date, "text": _text_field, "ascii": _text_field,
    "varchar": _text_field, "blob": _bytes, "custom": _bytes,
}


def encode_column(t: CqlType, array: pa.Array, name: str, problems: RowProblems) -> Field:
    """The COPY field of column `name` (CQL type `t`) for every row of `array`."""
    return ENCODERS.get(t.name, _python)(array, t, name, problems)
