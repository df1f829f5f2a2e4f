"""The workload's operations: each draws its inputs from the seeded state, and plans the builder calls
that write it and the changes it should read back as."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ray_cdc.commitlog.builder import CounterShard, MutationBuilder, list_cell_id, order_key
from ray_cdc.commitlog.changes import PARTITION_DELETE, RANGE_DELETE, ROW, CellChange
from ray_cdc.commitlog.workload_expected import ExpectedChange, expect_write, expiry
from ray_cdc.commitlog.workload_values import EPOCH_DAY, nonempty_value, random_value
from ray_cdc.schema.model import ColumnSchema, TableSchema

__all__ = ["BASE_TIMESTAMP", "OP_NEEDS", "SINGLE_TABLE_OPS", "Draw", "Planned", "op_multi_table", "table_pairs"]

BASE_TIMESTAMP = 1_700_000_000_000_000  # µs; write i happens at BASE_TIMESTAMP + i ms


@dataclass
class Planned:
    """One drawn operation: what to do to the builders, and what it should read back as."""

    op: str
    writes: list[tuple[TableSchema, dict, Callable[[MutationBuilder], Any]]]
    expected: list[ExpectedChange]


class Draw:
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
            pk = self._keys[cache_key] = {c.name: nonempty_value(c.type, rng) for c in table.partition_key}
        return pk

    def clustering(self, table: TableSchema) -> dict:
        return {c.name: nonempty_value(c.type, self.rng) for c in table.clustering}

    def values(self, columns) -> dict:
        return {c.name: random_value(c.type, self.rng) for c in columns}


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


def _op_insert(d: Draw, table: TableSchema, *, ttl: int = 0, op: str = "insert") -> Planned:
    pk, ck = d.partition_key(table), d.clustering(table)
    cells = d.values(_writable(table))
    ts, now = d.tick()
    expected = _row_change(op, table, pk, ck, timestamp=ts, ttl=ttl, expires_at=expiry(now, ttl),
                           cells={n: expect_write(table.column(n), v, ts, ttl, now) for n, v in cells.items()})
    return Planned(op, [(table, pk, lambda b: b.insert(ck, cells, timestamp=ts, ttl=ttl, now=now))], [expected])


def _op_ttl_insert(d: Draw, table: TableSchema) -> Planned:
    return _op_insert(d, table, ttl=d.rng.choice((60, 3600, 86_400 * 7)), op="ttl_insert")


def _op_update(d: Draw, table: TableSchema) -> Planned:
    """A partial UPDATE: a few columns, now and then one set to null (a tombstone)."""
    pk, ck = d.partition_key(table), d.clustering(table)
    columns = d.rng.sample(_writable(table), k=min(len(_writable(table)), d.rng.randint(1, 3)))
    cells = {c.name: (None if d.rng.random() < 0.1 else random_value(c.type, d.rng)) for c in columns}
    ts, now = d.tick()
    expected = _row_change("update", table, pk, ck,
                           cells={n: expect_write(table.column(n), v, ts, 0, now) for n, v in cells.items()})
    return Planned("update", [(table, pk, lambda b: b.update(ck, cells, timestamp=ts, now=now))], [expected])


def _op_static(d: Draw, table: TableSchema) -> Planned:
    pk = d.partition_key(table)
    cells = d.values(_columns(table, "static"))
    ts, now = d.tick()
    expected = _row_change("static", table, pk, {}, static=True,
                           cells={n: expect_write(table.column(n), v, ts, 0, now) for n, v in cells.items()})
    return Planned("static", [(table, pk, lambda b: b.static(cells, timestamp=ts, now=now))], [expected])


def _op_cell_delete(d: Draw, table: TableSchema) -> Planned:
    pk, ck = d.partition_key(table), d.clustering(table)
    simple = _columns(table, "simple")
    names = [c.name for c in d.rng.sample(simple, k=min(len(simple), d.rng.randint(1, 2)))]
    ts, now = d.tick()
    expected = _row_change("cell_delete", table, pk, ck,
                           cells={n: CellChange(None, ts, deleted=True) for n in names})
    return Planned("cell_delete", [(table, pk, lambda b: b.delete_cells(ck, names, timestamp=ts, now=now))],
                    [expected])


def _op_row_delete(d: Draw, table: TableSchema) -> Planned:
    pk, ck = d.partition_key(table), d.clustering(table)
    ts, now = d.tick()
    expected = _row_change("row_delete", table, pk, ck, deleted_at=ts)
    return Planned("row_delete", [(table, pk, lambda b: b.delete_row(ck, timestamp=ts, now=now))], [expected])


def _op_partition_delete(d: Draw, table: TableSchema) -> Planned:
    pk = d.partition_key(table)
    ts, now = d.tick()
    expected = ExpectedChange("partition_delete", PARTITION_DELETE, table.qualified_name, pk, deleted_at=ts)
    return Planned("partition_delete", [(table, pk, lambda b: b.delete_partition(timestamp=ts, now=now))],
                    [expected])


def _ordered_pair(column: ColumnSchema, rng: random.Random) -> tuple[Any, Any]:
    """Two values of a clustering column in clustering order (a DESC column: larger first)."""
    a, b = nonempty_value(column.type, rng), nonempty_value(column.type, rng)
    ka, kb = order_key(column.type, column.type.encode(a)), order_key(column.type, column.type.encode(b))
    return (a, b) if (ka <= kb) != column.reversed else (b, a)


def _op_range_delete(d: Draw, table: TableSchema) -> Planned:
    """`DELETE ... WHERE ck > x AND ck <= y` on a clustering prefix; now and then open-ended."""
    pk = d.partition_key(table)
    rng = d.rng
    depth = rng.randint(1, len(table.clustering))
    fixed = {c.name: nonempty_value(c.type, rng) for c in table.clustering[: depth - 1]}
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
    return Planned("range_delete", [(table, pk, apply)], [expected])


def _op_counter(d: Draw, table: TableSchema) -> Planned:
    """`UPDATE ... SET hits = hits + n`: the leader logs its shard's new total and clock."""
    pk = d.partition_key(table, pool=32)
    ck = {c.name: EPOCH_DAY + timedelta(days=19_000 + d.rng.randrange(8)) for c in table.clustering}
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
                           cells={n: expect_write(table.column(n), v, ts, 0, now) for n, v in cells.items()})
    return Planned("counter", [(table, pk, lambda b: b.update(ck, cells, timestamp=ts, now=now))], [expected])


# Collection edits on a non-frozen column: (op name, kinds it applies to, planner)


def _complex_columns(table: TableSchema) -> list[ColumnSchema]:
    return _columns(table, "complex")


def _collection_target(d: Draw, table: TableSchema, kinds: tuple[str, ...]):
    columns = [c for c in _complex_columns(table) if c.type.name in kinds]
    if not columns:
        return None
    return d.partition_key(table), d.clustering(table), d.rng.choice(columns)


def _op_collection_overwrite(d: Draw, table: TableSchema) -> Planned:
    pk, ck, column = _collection_target(d, table, ("list", "set", "map", "udt"))
    value = None if d.rng.random() < 0.1 else random_value(column.type, d.rng)
    ts, now = d.tick()
    expected = _row_change("collection_overwrite", table, pk, ck,
                           cells={column.name: expect_write(column, value, ts, 0, now)})
    apply = lambda b: b.update(ck, {column.name: value}, timestamp=ts, now=now)
    return Planned("collection_overwrite", [(table, pk, apply)], [expected])


def _op_collection_append(d: Draw, table: TableSchema) -> Planned:
    """`col = col + ...`; now and then with another column overwritten by the same statement, so the
    row has a complex deletion and the appended column carries the LIVE sentinel."""
    pk, ck, column = _collection_target(d, table, ("list", "set", "map"))
    value = random_value(column.type, d.rng)
    ttl = d.rng.choice((0, 0, 0, 600))
    others = [c for c in _complex_columns(table) if c is not column]
    also = {}
    if others and d.rng.random() < 0.3:
        other = d.rng.choice(others)
        also[other.name] = random_value(other.type, d.rng)
    ts, now = d.tick()
    cells = {column.name: CellChange(value, ts, ttl, expiry(now, ttl))}
    cells.update({n: expect_write(table.column(n), v, ts, ttl, now) for n, v in also.items()})

    def apply(b: MutationBuilder) -> None:
        b.append_to(ck, column.name, value, ts, ttl=ttl, now=now)
        b.update(ck, also, timestamp=ts, ttl=ttl, now=now)

    return Planned("collection_append", [(table, pk, apply)], [_row_change("collection_append", table, pk, ck,
                                                                            cells=cells)])


def _op_collection_put(d: Draw, table: TableSchema) -> Planned:
    """`m[k] = v` / `u.f = v`; a null value deletes the key or field."""
    pk, ck, column = _collection_target(d, table, ("map", "udt"))
    t = column.type
    if t.name == "map":
        entries = {nonempty_value(t.params[0], d.rng): nonempty_value(t.params[1], d.rng) for _ in range(d.rng.randint(1, 2))}
    else:
        names = d.rng.sample(t.field_names, k=d.rng.randint(1, 2))
        entries = {n: nonempty_value(t.params[t.field_names.index(n)], d.rng) for n in names}
    if d.rng.random() < 0.2:
        entries[next(iter(entries))] = None
    ts, now = d.tick()
    live = {k: v for k, v in entries.items() if v is not None}
    removed = [k for k, v in entries.items() if v is None]
    expected = _row_change("collection_put", table, pk, ck,
                           cells={column.name: CellChange(live or None, ts, removed=removed)})
    apply = lambda b: b.put(ck, column.name, entries, ts, now=now)
    return Planned("collection_put", [(table, pk, apply)], [expected])


def _op_collection_remove(d: Draw, table: TableSchema) -> Planned:
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
        elements = list(dict.fromkeys(nonempty_value(t.params[0], d.rng) for _ in range(count)))
    expected = _row_change("collection_remove", table, pk, ck,
                           cells={column.name: CellChange(None, ts, removed=list(elements))})
    apply = lambda b: b.remove_from(ck, column.name, elements, ts, now=now)
    return Planned("collection_remove", [(table, pk, apply)], [expected])


def _op_collection_delete(d: Draw, table: TableSchema) -> Planned:
    """`DELETE col FROM ...` of a whole non-frozen column: a complex deletion at the timestamp."""
    pk, ck, column = _collection_target(d, table, ("list", "set", "map", "udt"))
    ts, now = d.tick()
    expected = _row_change("collection_delete", table, pk, ck,
                           cells={column.name: CellChange(None, ts, deleted=True, replaced=True)})
    apply = lambda b: b.delete_column(ck, column.name, timestamp=ts, now=now)
    return Planned("collection_delete", [(table, pk, apply)], [expected])


def op_multi_table(d: Draw, first: TableSchema, second: TableSchema) -> Planned:
    """A logged batch writing two tables of one keyspace under the same partition key: one mutation."""
    pk = d.partition_key(first)
    pk2 = {c2.name: pk[c1.name] for c1, c2 in zip(first.partition_key, second.partition_key)}
    ts, now = d.tick()
    writes, expected = [], []
    for table, key in ((first, pk), (second, pk2)):
        ck = d.clustering(table)
        cells = d.values(_columns(table, "simple"))
        expected.append(_row_change("multi_table", table, key, ck, timestamp=ts, cells={
            n: expect_write(table.column(n), v, ts, 0, now) for n, v in cells.items()}))
        writes.append((table, key, lambda b, ck=ck, cells=cells: b.insert(ck, cells, timestamp=ts, now=now)))
    return Planned("multi_table", writes, expected)


# What each operation needs of a table
OP_NEEDS: dict[str, Callable[[TableSchema], bool]] = {
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

SINGLE_TABLE_OPS: dict[str, Callable[[Draw, TableSchema], Planned]] = {
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


def table_pairs(tables: list[TableSchema]) -> list[tuple[TableSchema, TableSchema]]:
    """Tables that can share a mutation: same keyspace, same partition key types, plain columns."""
    def key(t):
        return t.keyspace, tuple(c.type for c in t.partition_key)

    usable = [t for t in tables if any(not c.is_complex for c in _writable(t))]
    return [(a, b) for i, a in enumerate(usable) for b in usable[i + 1:] if key(a) == key(b)]
