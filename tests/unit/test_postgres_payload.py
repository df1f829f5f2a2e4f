"""The PostgreSQL destination's column-wise COPY encoding, checked value by value against independent
encoders: psycopg's own binary dumpers (field bytes) and ckey's per-value order keys (`_ck`)."""

from __future__ import annotations

import struct
import uuid
from datetime import date, datetime, timezone

import numpy as np
import pyarrow as pa
import pytest
from psycopg.adapt import PyFormat, Transformer
from psycopg.types.numeric import Int2, Int4, Int8

from ray_cdc.destinations.postgres.ckey import order_key_array, order_keys
from ray_cdc.destinations.postgres.copy_binary import HEADER, TRAILER, payload
from ray_cdc.destinations.postgres.fields import encode_column
from ray_cdc.destinations.postgres.values import RowProblems
from ray_cdc.schema.model import ColumnKind, ColumnSchema
from ray_cdc.schema.types import parse_cql_type

TX = Transformer()
UTC = timezone.utc


def dumped(value) -> bytes | None:
    return None if value is None else bytes(TX.get_dumper(value, PyFormat.BINARY).dump(value))


def tuples(fields, n):
    """Split a payload back into per-row lists of field bytes (None for NULL)."""
    columns, encoded = payload([f"c{i}" for i in range(len(fields))], fields, n)
    body = bytes(encoded.body(0, n))
    rows, at = [], 0
    for _ in range(n):
        (count,) = struct.unpack_from(">h", body, at)
        at += 2
        row = []
        for _ in range(count):
            (size,) = struct.unpack_from(">i", body, at)
            at += 4
            row.append(None if size == -1 else body[at:at + size])
            at += max(size, 0)
        rows.append(dict(zip(columns, row)))
    assert at == len(body)
    return [[r[f"c{i}"] for i in range(len(fields))] for r in rows]


CASES = [
    ("tinyint", pa.int8(), [0, -128, 127, None], Int2),
    ("smallint", pa.int16(), [1, -32768, 32767, None], Int2),
    ("int", pa.int32(), [5, -2**31, 2**31 - 1, None], Int4),
    ("bigint", pa.int64(), [7, -2**63, 2**63 - 1, None], Int8),
    ("double", pa.float64(), [1.5, float("-inf"), -0.0, None], float),
    ("boolean", pa.bool_(), [True, False, None, True], bool),
    ("text", pa.string(), ["", "é€😀", None, "x" * 300], str),
]


@pytest.mark.parametrize("cql, arrow, values, wrap", CASES, ids=[c[0] for c in CASES])
def test_fields_equal_psycopg_dumpers(cql, arrow, values, wrap):
    problems = RowProblems()
    field = encode_column(parse_cql_type(cql), pa.array(values, arrow), "c", problems)
    got = [row[0] for row in tuples([field], len(values))]
    assert got == [dumped(None if v is None else wrap(v)) for v in values]
    assert not problems


def test_uuid_timestamp_date_fields():
    ids = [uuid.uuid4(), None, uuid.UUID(int=0)]
    field = encode_column(parse_cql_type("uuid"), pa.array([None if u is None else u.bytes for u in ids],
                                                           pa.binary(16)), "u", RowProblems())
    assert [r[0] for r in tuples([field], 3)] == [dumped(u) for u in ids]
    stamps = [datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC), None,
              datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)]
    field = encode_column(parse_cql_type("timestamp"), pa.array(stamps, pa.timestamp("ms", tz="UTC")), "t",
                          RowProblems())
    assert [r[0] for r in tuples([field], 4)] == [dumped(s) for s in stamps]
    days = [date(2000, 1, 1), date(1, 1, 1), None, date(9999, 12, 31)]
    field = encode_column(parse_cql_type("date"), pa.array(days, pa.date32()), "d", RowProblems())
    assert [r[0] for r in tuples([field], 4)] == [dumped(d) for d in days]


def test_out_of_range_timestamps_and_dates_are_row_problems():
    problems = RowProblems()
    ms = pa.array([0, -(2**62), 2**62, None], pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    field = encode_column(parse_cql_type("timestamp"), ms, "t", problems)
    assert sorted(problems) == [1, 2] and "out of range for timestamptz" in problems[1]
    assert [r[0] is None for r in tuples([field], 4)] == [False, True, True, True]
    problems = RowProblems()
    encode_column(parse_cql_type("date"), pa.array([-2**31, 0], pa.int32()).cast(pa.date32()), "d", problems)
    assert list(problems) == [0]  # would be -infinity in PostgreSQL's binary date


def test_copy_header_and_row_slices():
    field = encode_column(parse_cql_type("int"), pa.array([1, 2, 3], pa.int32()), "c", RowProblems())
    _, encoded = payload(["c"], [field], 3)
    chunks = encoded.chunks(1, 3)
    assert chunks[0] == HEADER and chunks[-1] == TRAILER
    assert bytes(chunks[1]) == b"".join(b"\x00\x01" + b"\x00\x00\x00\x04" + struct.pack(">i", v) for v in (2, 3))


@pytest.mark.parametrize("cql", ["tinyint", "smallint", "int", "bigint", "timestamp", "date", "time", "text"])
@pytest.mark.parametrize("reversed_", [False, True])
def test_vectorised_order_keys_equal_the_per_value_ones(cql, reversed_):
    rng = np.random.default_rng(3)
    t = parse_cql_type(cql)
    arrow = t.arrow_type()
    if cql == "text":
        values = pa.array(["", "a", "a\x00", "b", None, "zz"], arrow)
    else:
        info = np.iinfo({"tinyint": np.int8, "smallint": np.int16, "int": np.int32, "date": np.int32}.get(cql, np.int64))
        low = 0 if cql == "time" else info.min
        high = 86_400 * 10**9 if cql == "time" else info.max
        raw = [int(x) for x in rng.integers(low, high, 40, endpoint=True)] + [low, high, None]
        storage = pa.int32() if cql == "date" else pa.int64() if cql in ("bigint", "timestamp", "time") else arrow
        values = pa.array(raw, storage).cast(arrow)
    columns = (ColumnSchema("a", t, ColumnKind.CLUSTERING, 0, reversed_), ColumnSchema("b", parse_cql_type("int"),
                                                                                       ColumnKind.CLUSTERING, 1))
    second = pa.array(list(range(len(values))), pa.int32())
    vectorised = order_key_array(columns, [values, second]).to_pylist()
    assert vectorised == order_keys(columns, [values, second])
    ordered = sorted((k, i) for i, k in enumerate(vectorised) if k is not None)
    assert len(ordered) == len(values) - values.null_count


@pytest.mark.parametrize("masks", [[0b111, 0b111], [0b001, 0b110], [0b111, 0b010, 0b111, 0b000]],
                         ids=["whole", "partial", "mixed"])
def test_ts_field_is_psycopgs_bigint_array_and_empty_for_rows_written_whole(masks):
    """`_ts` of the direct path: each written column's writetime, 0 for the others; the empty array
    for a row whose every column has the writetime (merge.stored_ts reads it back as `_wt`)."""
    from ray_cdc.destinations.postgres.staging import _ts_field

    masks = np.array(masks, dtype=np.int64)
    wt = np.arange(1, len(masks) + 1, dtype=np.int64) * 1_000_000
    got = [row[0] for row in tuples([_ts_field(masks, wt, 3)], len(masks))]
    for m, w, field in zip(masks.tolist(), wt.tolist(), got, strict=True):
        values = [w if m >> i & 1 else 0 for i in range(3)]
        expected = [] if values == [w] * 3 else values
        # psycopg's `bigint[]`; the empty array by hand (psycopg leaves an empty list's element type open)
        assert field == (dumped([Int8(v) for v in expected]) if expected else struct.pack(">iii", 0, 0, 20)), (m, w)
