"""A deterministic workload of real-looking commitlog segments: for `segments generate`, tests,
benchmarks and the demo.

`workload_mutations` draws operations from a seeded mix (inserts, partial updates, collection edits,
TTLs, cell/row/partition/range deletes, static rows, counters, multi-table mutations) and yields
each mutation, built by `MutationBuilder`, with the changes it is meant to produce. Those expected
changes are worked out from the drawn operation itself, not from the built mutation, so a test can
check the whole encode → segment → decode → change-record path against them.

`generate` streams the mutations into segments (one at a time: memory does not grow with `rows`),
with a `_cdc.idx` per segment and the `schema.cql` the reader needs.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

from cassandra.util import Duration, Time

from ray_cdc.commitlog.builder import CounterShard, MutationBuilder, list_cell_id, order_key
from ray_cdc.commitlog.changes import PARTITION_DELETE, RANGE_DELETE, ROW, Change
from ray_cdc.commitlog.encryption import EncryptionSpec
from ray_cdc.commitlog.mutation_encoder import encode_mutation
from ray_cdc.commitlog.mutation_model import Mutation
from ray_cdc.commitlog.segment_writer import SegmentWriter
from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
from ray_cdc.schema.types import CqlType, parse_cql_type

__all__ = [
    "DEFAULT_MIX",
    "ExpectedCell",
    "ExpectedChange",
    "GenerateSummary",
    "demo_tables",
    "describe_change",
    "generate",
    "wide_table",
    "workload_mutations",
]

DEMO_KEYSPACE = "ray_cdc_demo"
BASE_TIMESTAMP = 1_700_000_000_000_000  # µs; write i happens at BASE_TIMESTAMP + i ms
BASE_SEGMENT_ID = 1_700_000_000_000  # ids look like epoch milliseconds, as Cassandra's do
_UTC = timezone.utc


# --- schemas ------------------------------------------------------------------------------------------


def _table_id(keyspace: str, name: str) -> uuid.UUID:
    """A time-based id like Cassandra gives user tables, but derived from the name: stable across runs."""
    digest = uuid.uuid5(uuid.NAMESPACE_OID, f"{keyspace}.{name}").int
    ticks = 0x1EE7E0000000000 + (digest & 0xFFFFFFFFFF)  # late 2023, plus a per-name offset
    node = (digest >> 64) & 0xFFFFFFFFFFFF
    return uuid.UUID(fields=(ticks & 0xFFFFFFFF, (ticks >> 32) & 0xFFFF, ((ticks >> 48) & 0x0FFF) | 0x1000,
                             0x80 | ((digest >> 112) & 0x3F), (digest >> 120) & 0xFF, node))


@dataclass(frozen=True)
class _TableSpec:
    """A table in shorthand: (name, CQL type) per column; clustering entries add a DESC flag."""

    name: str
    partition: tuple[tuple[str, str], ...]
    clustering: tuple[tuple[str, str, bool], ...] = ()
    regular: tuple[tuple[str, str], ...] = ()
    static: tuple[tuple[str, str], ...] = ()

    def build(self, keyspace: str, user_types: dict) -> TableSchema:
        def typ(text: str) -> CqlType:
            return parse_cql_type(text, keyspace=keyspace, user_types=user_types)

        columns = [ColumnSchema(n, typ(t), ColumnKind.PARTITION_KEY, i) for i, (n, t) in enumerate(self.partition)]
        columns += [ColumnSchema(n, typ(t), ColumnKind.CLUSTERING, i, desc)
                    for i, (n, t, desc) in enumerate(self.clustering)]
        columns += [ColumnSchema(n, typ(t), ColumnKind.STATIC) for n, t in self.static]
        columns += [ColumnSchema(n, typ(t), ColumnKind.REGULAR) for n, t in self.regular]
        return TableSchema(keyspace, self.name, _table_id(keyspace, self.name), tuple(columns))


_ADDRESS_FIELDS = (("street", "text"), ("city", "text"), ("zip", "int"), ("tags", "frozen<set<text>>"))

_DEMO_SPECS = (
    # every simple type, a composite partition key, three clustering columns (one DESC), statics
    _TableSpec(
        "all_types",
        partition=(("tenant", "text"), ("bucket", "int")),
        clustering=(("event_time", "timeuuid", True), ("seq", "bigint", False), ("label", "ascii", False)),
        static=(("owner", "text"), ("revision", "bigint")),
        regular=(
            ("c_ascii", "ascii"), ("c_text", "text"), ("c_varchar", "varchar"), ("c_blob", "blob"),
            ("c_boolean", "boolean"), ("c_tinyint", "tinyint"), ("c_smallint", "smallint"), ("c_int", "int"),
            ("c_bigint", "bigint"), ("c_varint", "varint"), ("c_float", "float"), ("c_double", "double"),
            ("c_decimal", "decimal"), ("c_date", "date"), ("c_time", "time"), ("c_timestamp", "timestamp"),
            ("c_duration", "duration"), ("c_uuid", "uuid"), ("c_timeuuid", "timeuuid"), ("c_inet", "inet"),
            ("c_vector", "vector<float, 3>"), ("c_tuple", "tuple<int, text, boolean>"),
            ("c_address", "frozen<address>"),
        ),
    ),
    # non-frozen (multi-cell) collections and UDT next to frozen ones
    _TableSpec(
        "collections",
        partition=(("id", "bigint"),),
        clustering=(("ck", "int", False),),
        regular=(
            ("note", "text"), ("tags", "set<text>"), ("scores", "list<int>"), ("attrs", "map<text, int>"),
            ("home", "address"), ("visits", "map<timestamp, frozen<address>>"),
            ("f_list", "frozen<list<int>>"), ("f_set", "frozen<set<uuid>>"), ("f_map", "frozen<map<int, text>>"),
        ),
    ),
    # no clustering columns; same partition key as `collections` (multi-table mutations)
    _TableSpec(
        "profiles",
        partition=(("id", "bigint"),),
        regular=(("name", "text"), ("email", "text"), ("age", "int"), ("prefs", "map<text, text>"),
                 ("last_seen", "timestamp")),
    ),
    # counters live in a table of their own
    _TableSpec(
        "page_counters",
        partition=(("site", "text"), ("page", "text")),
        clustering=(("day", "date", True),),
        regular=(("hits", "counter"), ("bytes_served", "counter")),
    ),
)

_WIDE_SPEC = _TableSpec(
    "wide",
    partition=(("id", "bigint"),),
    clustering=(("ck", "int", False),),
    regular=(("c_text", "text"), ("c_int", "int"), ("c_bigint", "bigint"), ("c_double", "double"),
             ("c_boolean", "boolean"), ("c_timestamp", "timestamp"), ("c_uuid", "uuid"), ("c_text2", "text")),
)


def _user_types(keyspace: str) -> dict:
    fields = tuple((n, parse_cql_type(t, keyspace=keyspace)) for n, t in _ADDRESS_FIELDS)
    return {(keyspace, "address"): fields}


def demo_tables(keyspace: str = DEMO_KEYSPACE) -> list[TableSchema]:
    """Tables that use every CQL type the decoder reads, with a UDT (frozen and not), composite
    partition keys, several clustering columns incl. DESC, static columns and a counter table."""
    user_types = _user_types(keyspace)
    return [spec.build(keyspace, user_types) for spec in _DEMO_SPECS]


def wide_table(keyspace: str = DEMO_KEYSPACE) -> TableSchema:
    """The throughput benchmark's table: 10 columns of mixed types (keys included)."""
    return _WIDE_SPEC.build(keyspace, {})


# --- values -------------------------------------------------------------------------------------------

_WORDS = ("alpha", "beta", "gamma", "delta", "Zürich", "東京", "naïve", "ŝtono", "emoji🙂", "x")
_EPOCH_DAY = date(1970, 1, 1)


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
    "date": lambda r: _EPOCH_DAY + timedelta(days=r.randint(0, 30000)),
    "time": lambda r: Time(r.randrange(86_400 * 10**9)),
    "timestamp": _timestamp,
    "duration": lambda r: Duration(r.randint(0, 24), r.randint(0, 60), r.randrange(86_400 * 10**9)),
    "uuid": lambda r: uuid.UUID(int=r.getrandbits(128), version=4),
    "timeuuid": _timeuuid,
    "inet": _inet,
}


def _value(t: CqlType, rng: random.Random) -> Any:
    simple = _SIMPLE_VALUES.get(t.name)
    if simple is not None:
        return simple(rng)
    return _COMPOSITE_VALUES[t.name](t, rng)


def _nonempty(t: CqlType, rng: random.Random) -> Any:
    """A value whose encoding is not empty: key components, and collection elements (an empty
    element value reads back as null)."""
    while True:
        v = _value(t, rng)
        if len(t.encode(v)):
            return v


def _elements(t: CqlType, rng: random.Random, low: int = 1, high: int = 4) -> list:
    return [_nonempty(t, rng) for _ in range(rng.randint(low, high))]


_COMPOSITE_VALUES: dict[str, Callable[[CqlType, random.Random], Any]] = {
    "list": lambda t, r: _elements(t.params[0], r),
    "set": lambda t, r: frozenset(_elements(t.params[0], r)),
    "map": lambda t, r: {_nonempty(t.params[0], r): _nonempty(t.params[1], r) for _ in range(r.randint(1, 3))},
    "tuple": lambda t, r: tuple(_value(p, r) for p in t.params),
    "udt": lambda t, r: {n: _nonempty(p, r) for n, p in zip(t.field_names, t.params)},
    "vector": lambda t, r: [_value(t.params[0], r) for _ in range(t.dimension)],
}


# --- expected changes ---------------------------------------------------------------------------------


def _expiry(now: int, ttl: int) -> datetime | None:
    return datetime.fromtimestamp(now + ttl, tz=_UTC) if ttl else None


@dataclass
class ExpectedCell:
    """What a change should say about one column (the fields of `changes.CellChange`)."""

    value: Any
    timestamp: int
    ttl: int = 0
    expires_at: datetime | None = None
    deleted: bool = False
    replaced: bool = False
    removed: list = field(default_factory=list)

    def describe(self) -> dict:
        return {"value": self.value, "timestamp": self.timestamp, "ttl": self.ttl, "expires_at": self.expires_at,
                "deleted": self.deleted, "replaced": self.replaced, "removed": _canonical(self.removed)}


@dataclass
class ExpectedChange:
    """One change a workload operation is meant to produce, in the terms of `changes.Change`."""

    op: str  # the workload operation (insert, update, ttl_insert, collection_append, ...)
    kind: str  # changes.ROW / PARTITION_DELETE / RANGE_DELETE
    table: str  # keyspace.table
    partition_key: dict
    clustering: dict = field(default_factory=dict)
    cells: dict[str, ExpectedCell] = field(default_factory=dict)
    static: bool = False
    timestamp: int | None = None
    ttl: int = 0
    expires_at: datetime | None = None
    deleted_at: int | None = None
    range_start: tuple[dict, bool] | None = None
    range_end: tuple[dict, bool] | None = None

    def describe(self) -> dict:
        return {
            "kind": self.kind, "table": self.table, "partition_key": self.partition_key,
            "clustering": self.clustering, "static": self.static, "timestamp": self.timestamp,
            "ttl": self.ttl, "expires_at": self.expires_at, "deleted_at": self.deleted_at,
            "range_start": self.range_start, "range_end": self.range_end,
            "cells": {n: c.describe() for n, c in sorted(self.cells.items())},
        }


def _canonical(removed: list) -> list:
    # removals come back in Cassandra's cell-path order, not in the order they were asked for
    return sorted(removed, key=repr)


def describe_change(change: Change) -> dict:
    """A decoded change in the shape of `ExpectedChange.describe()`, for comparing the two."""
    def bound(b):
        return None if b is None else (b.values, b.inclusive)

    return {
        "kind": change.kind, "table": change.table.qualified_name, "partition_key": change.partition_key,
        "clustering": change.clustering, "static": change.static, "timestamp": change.timestamp,
        "ttl": change.ttl, "expires_at": change.expires_at, "deleted_at": change.deleted_at,
        "range_start": bound(change.range_start), "range_end": bound(change.range_end),
        "cells": {n: {"value": c.value, "timestamp": c.timestamp, "ttl": c.ttl, "expires_at": c.expires_at,
                      "deleted": c.deleted, "replaced": c.replaced, "removed": _canonical(c.removed)}
                  for n, c in sorted(change.cells.items())},
    }


def _collection_value(t: CqlType, value) -> Any:
    """The elements an overwrite writes, as the change reports them (None when there are none)."""
    if value is None:
        return None
    if t.name == "udt":
        value = {n: v for n, v in value.items() if v is not None}
    return value if len(value) else None


def _expect_write(column: ColumnSchema, value, ts: int, ttl: int, now: int) -> ExpectedCell:
    """`SET column = value` (INSERT or UPDATE)."""
    if column.is_complex:  # a complex deletion at ts − 1, then the elements
        written = _collection_value(column.type, value)
        if written is None:
            return ExpectedCell(None, ts - 1, deleted=True, replaced=True)
        return ExpectedCell(written, ts, ttl, _expiry(now, ttl), replaced=True)
    if value is None:
        return ExpectedCell(None, ts, deleted=True)
    if column.type.name == "counter":
        value = value.count
    return ExpectedCell(value, ts, ttl, _expiry(now, ttl))


# --- operations ---------------------------------------------------------------------------------------


@dataclass
class _Planned:
    """One drawn operation: what to do to the builders, and what it should read back as."""

    op: str
    writes: list[tuple[TableSchema, dict, Callable[[MutationBuilder], Any]]]
    expected: list[ExpectedChange]


class _Draw:
    """The state of a workload: the seeded random source, the clock and the counter totals."""

    PARTITIONS = 512  # distinct partition keys per table: deletes hit partitions that were written

    def __init__(self, seed: int):
        self.seed = seed
        self.rng = random.Random(seed)
        self.step = 0
        self.counters: dict[tuple, tuple[int, int]] = {}  # (table, key, clustering, column) -> (total, clock)
        self._keys: dict[tuple[str, int], dict] = {}  # bounded: PARTITIONS per table

    def tick(self) -> tuple[int, int]:
        """The next write's timestamp (µs, about 1 ms after the previous one) and the node's clock (s)."""
        self.step += 1
        ts = BASE_TIMESTAMP + self.step * 1000 + self.rng.randrange(1000)
        return ts, ts // 1_000_000

    def partition_key(self, table: TableSchema, pool: int | None = None) -> dict:
        """One of a fixed pool of keys per table (so deletes and updates hit partitions written
        before). The dicts are shared between the changes that use a key: callers must not change them."""
        index = int(self.rng.random() * (pool or self.PARTITIONS))
        cache_key = (table.qualified_name, index)
        pk = self._keys.get(cache_key)
        if pk is None:
            rng = random.Random(f"{self.seed}:{table.qualified_name}:{index}")
            pk = self._keys[cache_key] = {c.name: _nonempty(c.type, rng) for c in table.partition_key}
        return pk

    def clustering(self, table: TableSchema) -> dict:
        return {c.name: _nonempty(c.type, self.rng) for c in table.clustering}

    def values(self, columns) -> dict:
        return {c.name: _value(c.type, self.rng) for c in columns}


_COLUMN_GROUPS: dict[tuple[int, str], tuple[TableSchema, list[ColumnSchema]]] = {}


def _columns(table: TableSchema, group: str) -> list[ColumnSchema]:
    """A group of the table's columns, worked out once per schema object (this is the hot path)."""
    entry = _COLUMN_GROUPS.get((id(table), group))
    if entry is None or entry[0] is not table:
        if len(_COLUMN_GROUPS) > 4096:
            _COLUMN_GROUPS.clear()
        entry = _COLUMN_GROUPS[(id(table), group)] = (table, _GROUPS[group](table))
    return entry[1]


_GROUPS: dict[str, Callable[[TableSchema], list[ColumnSchema]]] = {
    "writable": lambda t: [c for c in t.regular if c.type.name != "counter"],
    "simple": lambda t: [c for c in t.regular if c.type.name != "counter" and not c.is_complex],
    "complex": lambda t: [c for c in t.regular if c.is_complex],
    "static": lambda t: list(t.static),
}


def _writable(table: TableSchema) -> list[ColumnSchema]:
    return _columns(table, "writable")


def _row_change(op: str, table: TableSchema, pk: dict, ck: dict, **kw) -> ExpectedChange:
    return ExpectedChange(op, ROW, table.qualified_name, pk, ck, **kw)


def _op_insert(d: _Draw, table: TableSchema, *, ttl: int = 0, op: str = "insert") -> _Planned:
    pk, ck = d.partition_key(table), d.clustering(table)
    cells = d.values(_writable(table))
    ts, now = d.tick()
    expected = _row_change(op, table, pk, ck, timestamp=ts, ttl=ttl, expires_at=_expiry(now, ttl),
                           cells={n: _expect_write(table.column(n), v, ts, ttl, now) for n, v in cells.items()})
    return _Planned(op, [(table, pk, lambda b: b.insert(ck, cells, timestamp=ts, ttl=ttl, now=now))], [expected])


def _op_ttl_insert(d: _Draw, table: TableSchema) -> _Planned:
    return _op_insert(d, table, ttl=d.rng.choice((60, 3600, 86_400 * 7)), op="ttl_insert")


def _op_update(d: _Draw, table: TableSchema) -> _Planned:
    """A partial UPDATE: a few columns, now and then one set to null (a tombstone)."""
    pk, ck = d.partition_key(table), d.clustering(table)
    columns = d.rng.sample(_writable(table), k=min(len(_writable(table)), d.rng.randint(1, 3)))
    cells = {c.name: (None if d.rng.random() < 0.1 else _value(c.type, d.rng)) for c in columns}
    ts, now = d.tick()
    expected = _row_change("update", table, pk, ck,
                           cells={n: _expect_write(table.column(n), v, ts, 0, now) for n, v in cells.items()})
    return _Planned("update", [(table, pk, lambda b: b.update(ck, cells, timestamp=ts, now=now))], [expected])


def _op_static(d: _Draw, table: TableSchema) -> _Planned:
    pk = d.partition_key(table)
    cells = d.values(_columns(table, "static"))
    ts, now = d.tick()
    expected = _row_change("static", table, pk, {}, static=True,
                           cells={n: _expect_write(table.column(n), v, ts, 0, now) for n, v in cells.items()})
    return _Planned("static", [(table, pk, lambda b: b.static(cells, timestamp=ts, now=now))], [expected])


def _op_cell_delete(d: _Draw, table: TableSchema) -> _Planned:
    pk, ck = d.partition_key(table), d.clustering(table)
    simple = _columns(table, "simple")
    names = [c.name for c in d.rng.sample(simple, k=min(len(simple), d.rng.randint(1, 2)))]
    ts, now = d.tick()
    expected = _row_change("cell_delete", table, pk, ck,
                           cells={n: ExpectedCell(None, ts, deleted=True) for n in names})
    return _Planned("cell_delete", [(table, pk, lambda b: b.delete_cells(ck, names, timestamp=ts, now=now))],
                    [expected])


def _op_row_delete(d: _Draw, table: TableSchema) -> _Planned:
    pk, ck = d.partition_key(table), d.clustering(table)
    ts, now = d.tick()
    expected = _row_change("row_delete", table, pk, ck, deleted_at=ts)
    return _Planned("row_delete", [(table, pk, lambda b: b.delete_row(ck, timestamp=ts, now=now))], [expected])


def _op_partition_delete(d: _Draw, table: TableSchema) -> _Planned:
    pk = d.partition_key(table)
    ts, now = d.tick()
    expected = ExpectedChange("partition_delete", PARTITION_DELETE, table.qualified_name, pk, deleted_at=ts)
    return _Planned("partition_delete", [(table, pk, lambda b: b.delete_partition(timestamp=ts, now=now))],
                    [expected])


def _ordered_pair(column: ColumnSchema, rng: random.Random) -> tuple[Any, Any]:
    """Two values of a clustering column in clustering order (a DESC column: larger first)."""
    a, b = _nonempty(column.type, rng), _nonempty(column.type, rng)
    ka, kb = order_key(column.type, column.type.encode(a)), order_key(column.type, column.type.encode(b))
    return (a, b) if (ka <= kb) != column.reversed else (b, a)


def _op_range_delete(d: _Draw, table: TableSchema) -> _Planned:
    """`DELETE ... WHERE ck > x AND ck <= y` on a clustering prefix; now and then open-ended."""
    pk = d.partition_key(table)
    rng = d.rng
    depth = rng.randint(1, len(table.clustering))
    fixed = {c.name: _nonempty(c.type, rng) for c in table.clustering[: depth - 1]}
    last = table.clustering[depth - 1]
    low, high = _ordered_pair(last, rng)
    start, end = {**fixed, last.name: low}, {**fixed, last.name: high}
    shape = rng.random()
    if shape < 0.15:
        start = {}
    elif shape < 0.3:
        end = {}
    start_incl, end_incl = rng.random() < 0.5, rng.random() < 0.5
    ts, now = d.tick()
    expected = ExpectedChange("range_delete", RANGE_DELETE, table.qualified_name, pk, clustering=dict(start),
                              deleted_at=ts, range_start=(start, start_incl or not start),
                              range_end=(end, end_incl or not end))
    apply = lambda b: b.delete_range(start, end, start_inclusive=start_incl,
                                     end_inclusive=end_incl, timestamp=ts, now=now)
    return _Planned("range_delete", [(table, pk, apply)], [expected])


def _op_counter(d: _Draw, table: TableSchema) -> _Planned:
    """`UPDATE ... SET hits = hits + n`: the leader logs its shard's new total and clock."""
    pk = d.partition_key(table, pool=32)
    ck = {c.name: _EPOCH_DAY + timedelta(days=19_000 + d.rng.randrange(8)) for c in table.clustering}
    cells = {}
    for column in table.regular:
        if column.type.name == "counter" and d.rng.random() < 0.8:
            key = (table.qualified_name, repr(pk), repr(ck), column.name)
            total, clock = d.counters.get(key, (0, 0))
            total, clock = total + d.rng.randint(-5, 100), clock + 1
            d.counters[key] = (total, clock)
            cells[column.name] = CounterShard(total, clock)
    if not cells:
        return _op_counter(d, table)
    ts, now = d.tick()
    expected = _row_change("counter", table, pk, ck,
                           cells={n: _expect_write(table.column(n), v, ts, 0, now) for n, v in cells.items()})
    return _Planned("counter", [(table, pk, lambda b: b.update(ck, cells, timestamp=ts, now=now))], [expected])


# Collection edits on a non-frozen column: (op name, kinds it applies to, planner)


def _complex_columns(table: TableSchema) -> list[ColumnSchema]:
    return _columns(table, "complex")


def _collection_target(d: _Draw, table: TableSchema, kinds: tuple[str, ...]):
    columns = [c for c in _complex_columns(table) if c.type.name in kinds]
    if not columns:
        return None
    return d.partition_key(table), d.clustering(table), d.rng.choice(columns)


def _op_collection_overwrite(d: _Draw, table: TableSchema) -> _Planned:
    pk, ck, column = _collection_target(d, table, ("list", "set", "map", "udt"))
    value = None if d.rng.random() < 0.1 else _value(column.type, d.rng)
    ts, now = d.tick()
    expected = _row_change("collection_overwrite", table, pk, ck,
                           cells={column.name: _expect_write(column, value, ts, 0, now)})
    apply = lambda b: b.update(ck, {column.name: value}, timestamp=ts, now=now)
    return _Planned("collection_overwrite", [(table, pk, apply)], [expected])


def _op_collection_append(d: _Draw, table: TableSchema) -> _Planned:
    """`col = col + ...`; now and then with another column overwritten by the same statement, so the
    row has a complex deletion and the appended column carries the LIVE sentinel."""
    pk, ck, column = _collection_target(d, table, ("list", "set", "map"))
    value = _value(column.type, d.rng)
    ttl = d.rng.choice((0, 0, 0, 600))
    others = [c for c in _complex_columns(table) if c is not column]
    also = {}
    if others and d.rng.random() < 0.3:
        other = d.rng.choice(others)
        also[other.name] = _value(other.type, d.rng)
    ts, now = d.tick()
    cells = {column.name: ExpectedCell(value, ts, ttl, _expiry(now, ttl))}
    cells.update({n: _expect_write(table.column(n), v, ts, ttl, now) for n, v in also.items()})

    def apply(b: MutationBuilder) -> None:
        b.append_to(ck, column.name, value, ts, ttl=ttl, now=now)
        b.update(ck, also, timestamp=ts, ttl=ttl, now=now)

    return _Planned("collection_append", [(table, pk, apply)], [_row_change("collection_append", table, pk, ck,
                                                                            cells=cells)])


def _op_collection_put(d: _Draw, table: TableSchema) -> _Planned:
    """`m[k] = v` / `u.f = v`; a null value deletes the key or field."""
    pk, ck, column = _collection_target(d, table, ("map", "udt"))
    t = column.type
    if t.name == "map":
        entries = {_nonempty(t.params[0], d.rng): _nonempty(t.params[1], d.rng) for _ in range(d.rng.randint(1, 2))}
    else:
        names = d.rng.sample(t.field_names, k=d.rng.randint(1, 2))
        entries = {n: _nonempty(t.params[t.field_names.index(n)], d.rng) for n in names}
    if d.rng.random() < 0.2:
        entries[next(iter(entries))] = None
    ts, now = d.tick()
    live = {k: v for k, v in entries.items() if v is not None}
    removed = [k for k, v in entries.items() if v is None]
    expected = _row_change("collection_put", table, pk, ck,
                           cells={column.name: ExpectedCell(live or None, ts, removed=removed)})
    apply = lambda b: b.put(ck, column.name, entries, ts, now=now)
    return _Planned("collection_put", [(table, pk, apply)], [expected])


def _op_collection_remove(d: _Draw, table: TableSchema) -> _Planned:
    """Element tombstones: set elements, map keys, UDT fields, or list cells by their timeuuid."""
    pk, ck, column = _collection_target(d, table, ("list", "set", "map", "udt"))
    t = column.type
    ts, now = d.tick()
    count = d.rng.randint(1, 2)
    if t.name == "list":  # cells of an earlier append (deleting an absent cell is fine too)
        earlier = BASE_TIMESTAMP + d.rng.randrange(d.step) * 1000
        elements = [list_cell_id(earlier, i) for i in range(count)]
    elif t.name == "udt":
        elements = d.rng.sample(t.field_names, k=count)
    else:
        elements = list(dict.fromkeys(_nonempty(t.params[0], d.rng) for _ in range(count)))
    expected = _row_change("collection_remove", table, pk, ck,
                           cells={column.name: ExpectedCell(None, ts, removed=list(elements))})
    apply = lambda b: b.remove_from(ck, column.name, elements, ts, now=now)
    return _Planned("collection_remove", [(table, pk, apply)], [expected])


def _op_collection_delete(d: _Draw, table: TableSchema) -> _Planned:
    """`DELETE col FROM ...` of a whole non-frozen column: a complex deletion at the timestamp."""
    pk, ck, column = _collection_target(d, table, ("list", "set", "map", "udt"))
    ts, now = d.tick()
    expected = _row_change("collection_delete", table, pk, ck,
                           cells={column.name: ExpectedCell(None, ts, deleted=True, replaced=True)})
    apply = lambda b: b.delete_column(ck, column.name, timestamp=ts, now=now)
    return _Planned("collection_delete", [(table, pk, apply)], [expected])


def _op_multi_table(d: _Draw, first: TableSchema, second: TableSchema) -> _Planned:
    """A logged batch writing two tables of one keyspace under the same partition key: one mutation."""
    pk = d.partition_key(first)
    pk2 = {c2.name: pk[c1.name] for c1, c2 in zip(first.partition_key, second.partition_key)}
    ts, now = d.tick()
    writes, expected = [], []
    for table, key in ((first, pk), (second, pk2)):
        ck = d.clustering(table)
        cells = d.values(_columns(table, "simple"))
        expected.append(_row_change("multi_table", table, key, ck, timestamp=ts, cells={
            n: _expect_write(table.column(n), v, ts, 0, now) for n, v in cells.items()}))
        writes.append((table, key, lambda b, ck=ck, cells=cells: b.insert(ck, cells, timestamp=ts, now=now)))
    return _Planned("multi_table", writes, expected)


# What each operation needs of a table
_NEEDS: dict[str, Callable[[TableSchema], bool]] = {
    "insert": lambda t: bool(_writable(t)),
    "update": lambda t: bool(_writable(t)),
    "ttl_insert": lambda t: bool(_writable(t)),
    "cell_delete": lambda t: any(not c.is_complex for c in _writable(t)),
    "row_delete": lambda t: bool(t.clustering) and bool(_writable(t)),
    "partition_delete": lambda t: bool(_writable(t)),
    "range_delete": lambda t: bool(t.clustering) and bool(_writable(t)),
    "static": lambda t: bool(t.static),
    "counter": lambda t: any(c.type.name == "counter" for c in t.regular),
    "collection_overwrite": lambda t: bool(_complex_columns(t)),
    "collection_append": lambda t: any(c.type.name in ("list", "set", "map") for c in _complex_columns(t)),
    "collection_put": lambda t: any(c.type.name in ("map", "udt") for c in _complex_columns(t)),
    "collection_remove": lambda t: bool(_complex_columns(t)),
    "collection_delete": lambda t: bool(_complex_columns(t)),
}

_SINGLE_TABLE_OPS: dict[str, Callable[[_Draw, TableSchema], _Planned]] = {
    "insert": _op_insert,
    "update": _op_update,
    "ttl_insert": _op_ttl_insert,
    "cell_delete": _op_cell_delete,
    "row_delete": _op_row_delete,
    "partition_delete": _op_partition_delete,
    "range_delete": _op_range_delete,
    "static": _op_static,
    "counter": _op_counter,
    "collection_overwrite": _op_collection_overwrite,
    "collection_append": _op_collection_append,
    "collection_put": _op_collection_put,
    "collection_remove": _op_collection_remove,
    "collection_delete": _op_collection_delete,
}

#: relative weights of the operations (the default mix of `generate`)
DEFAULT_MIX: dict[str, float] = {
    "insert": 28, "update": 14, "ttl_insert": 5, "cell_delete": 4, "row_delete": 4, "partition_delete": 2,
    "range_delete": 3, "static": 5, "counter": 8, "multi_table": 5,
    "collection_overwrite": 6, "collection_append": 6, "collection_put": 4, "collection_remove": 4,
    "collection_delete": 2,
}


def _table_pairs(tables: list[TableSchema]) -> list[tuple[TableSchema, TableSchema]]:
    """Tables that can share a mutation: same keyspace, same partition key types, plain columns."""
    def key(t):
        return t.keyspace, tuple(c.type for c in t.partition_key)

    usable = [t for t in tables if any(not c.is_complex for c in _writable(t))]
    return [(a, b) for i, a in enumerate(usable) for b in usable[i + 1:] if key(a) == key(b)]


class _Plan:
    """The operations of a mix that the tables allow, each with the tables it can run on."""

    def __init__(self, tables: list[TableSchema], mix: Mapping[str, float]):
        unknown = set(mix) - set(_SINGLE_TABLE_OPS) - {"multi_table"}
        if unknown:
            raise ValueError(f"unknown workload operations {sorted(unknown)}; known: {sorted(DEFAULT_MIX)}")
        self.choices: list[tuple[str, list]] = []
        weights = []
        for op, weight in mix.items():
            if weight <= 0:
                continue
            if op == "multi_table":
                targets = _table_pairs(tables)
            else:
                targets = [t for t in tables if _NEEDS[op](t)]
            if targets:
                self.choices.append((op, targets))
                weights.append(weight)
        if not self.choices:
            raise ValueError("no operation of the mix applies to these tables")
        self.cumulative = list(itertools.accumulate(weights))

    def draw(self, d: _Draw, single_change: bool = False) -> _Planned:
        while True:
            op, targets = d.rng.choices(self.choices, cum_weights=self.cumulative)[0]
            if op == "multi_table":
                if single_change:
                    continue
                return _op_multi_table(d, *d.rng.choice(targets))
            return _SINGLE_TABLE_OPS[op](d, d.rng.choice(targets))


def workload_mutations(tables: list[TableSchema] | None = None, rows: int = 1000, seed: int = 0, *,
                       mix: Mapping[str, float] | None = None,
                       descriptor_version: int = 7) -> Iterator[tuple[Mutation, list[ExpectedChange]]]:
    """`rows` row changes as mutations, each with the changes it should decode into, in order."""
    tables = demo_tables() if tables is None else list(tables)
    plan = _Plan(tables, DEFAULT_MIX if mix is None else mix)
    d = _Draw(seed)
    unsigned_ldt = descriptor_version >= 8  # messaging 13 (Cassandra 5.0)
    produced = 0
    while produced < rows:
        planned = plan.draw(d, single_change=rows - produced < 2)
        builders: list[MutationBuilder] = []
        for table, pk, apply in planned.writes:
            builder = MutationBuilder(table, pk, unsigned_ldt=unsigned_ldt)
            apply(builder)
            builders.append(builder)
        produced += len(planned.expected)
        yield builders[0].mutation(*builders[1:]), planned.expected


# --- segments -----------------------------------------------------------------------------------------

_COMPRESSORS = {"lz4": "LZ4Compressor", "snappy": "SnappyCompressor", "deflate": "DeflateCompressor",
                "zstd": "ZstdCompressor", "noop": "NoopCompressor"}
_ENTRY_OVERHEAD = 12  # size, crc1, crc2 (format doc §6)
_MARKER = 8


def compressor_class(name: str | None) -> str | None:
    """'lz4', 'LZ4', 'LZ4Compressor' or the qualified class name -> what the writer takes."""
    if name is None:
        return None
    short = name.rsplit(".", 1)[-1]
    key = short.lower().removesuffix("compressor")
    if key not in _COMPRESSORS:
        raise ValueError(f"unknown commitlog compression {name!r}; known: {sorted(_COMPRESSORS)}")
    return _COMPRESSORS[key]


@dataclass
class GenerateSummary:
    out_dir: Path
    schema_path: Path
    segments: list[Path]
    cdc_indexes: list[Path]
    mutations: int = 0
    row_changes: int = 0
    bytes_written: int = 0  # size of the segment files on disk (plain ones are preallocated)
    data_bytes: int = 0  # logical bytes up to the end of the last section, summed over the segments
    descriptor_version: int = 7
    compression: str = "none"
    encrypted: bool = False
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> operation -> changes


class _SegmentSeries:
    """Segments of increasing ids, each closed (with a COMPLETED `_cdc.idx`) when the next entry
    would not fit in `segment_size`, as Cassandra moves on to a new segment."""

    def __init__(self, out_dir: Path, *, version: int, compression: str | None,
                 encryption: EncryptionSpec | None, segment_size: int, base_id: int, preallocate: bool):
        self.out_dir, self.version, self.segment_size = out_dir, version, segment_size
        self.compression, self.encryption = compression, encryption
        # Cassandra's memory-mapped segments are files of the full segment size from the start
        self.preallocate = preallocate and compression is None and encryption is None
        self.next_id = base_id
        self.paths: list[Path] = []
        self.writer: SegmentWriter | None = None
        self.end = 0
        self.data_bytes = 0

    def append(self, body: bytes) -> None:
        # room for the entry, a new section's marker, and the closing empty section plus zero marker
        need = len(body) + _ENTRY_OVERHEAD + 3 * _MARKER
        if self.writer is not None and self.end + need > self.segment_size:
            self.close()
        if self.writer is None:
            self._open()
            if self.end + need > self.segment_size:
                raise ValueError(f"a mutation of {len(body)} bytes does not fit a {self.segment_size}-byte segment")
        self.end = self.writer.append(body).offset

    def _open(self) -> None:
        self.writer = SegmentWriter(self.out_dir, segment_id=self.next_id, version=self.version,
                                    compression=self.compression, encryption=self.encryption,
                                    preallocate=self.segment_size if self.preallocate else None)
        self.next_id += 1
        self.paths.append(self.writer.path)
        self.end = self.writer.header_size + _MARKER

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer.write_cdc_index(completed=True)
            self.data_bytes += self.writer.durable_offset
            self.writer = None


def generate(out_dir, *, rows: int, tables: list[TableSchema] | None = None, seed: int = 0,
             descriptor_version: int = 7, compression: str | None = None,
             encryption: EncryptionSpec | None = None, segment_size: int = 32 * 1024 * 1024,
             mix: Mapping[str, float] | None = None, base_segment_id: int = BASE_SEGMENT_ID,
             preallocate: bool = True) -> GenerateSummary:
    """Write `rows` row changes into segments `CommitLog-<v>-<id>.log` in `out_dir`, with a
    COMPLETED `_cdc.idx` per segment and `schema.cql` (with the table ids) beside them.

    `compression`: lz4, snappy, deflate, zstd or noop (any case; Cassandra's class names work too).
    `preallocate`: plain segments are full-size files, as Cassandra's memory-mapped ones are; turn
    it off to have files only as long as their data (compressed and encrypted ones always are).
    """
    from ray_cdc.commitlog.cdc_index import index_path
    from ray_cdc.schema.cql import schema_to_cql

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = demo_tables() if tables is None else list(tables)
    schema_path = out / "schema.cql"
    schema_path.write_text(schema_to_cql(tables), encoding="utf-8")
    compressor = compressor_class(compression)
    series = _SegmentSeries(out, version=descriptor_version, compression=compressor, encryption=encryption,
                            segment_size=segment_size, base_id=base_segment_id, preallocate=preallocate)
    summary = GenerateSummary(out, schema_path, series.paths, [], descriptor_version=descriptor_version,
                              compression=compressor or "none", encrypted=encryption is not None)
    try:
        for mutation, expected in workload_mutations(tables, rows, seed, mix=mix,
                                                     descriptor_version=descriptor_version):
            series.append(encode_mutation(mutation))
            summary.mutations += 1
            for change in expected:
                per_table = summary.counts.setdefault(change.table, {})
                per_table[change.op] = per_table.get(change.op, 0) + 1
                summary.row_changes += 1
    finally:
        series.close()
    summary.cdc_indexes = [index_path(p) for p in series.paths]
    summary.bytes_written = sum(p.stat().st_size for p in series.paths)
    summary.data_bytes = series.data_bytes
    return summary
