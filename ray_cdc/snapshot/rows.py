"""Rows read with WRITETIME() and TTL() -> Arrow batches in the destinations' layout.

The select (`SnapshotQuery`) reads `token(pk)`, every column, and `WRITETIME(c), TTL(c)` of every
scalar static/regular column. A row becomes change rows (`batch_schema` of
`ray_cdc.commitlog.arrow_batches`) that rebuild its cells with their own versions:

- Regular scalar columns are grouped by (writetime, ttl). The group with the lowest writetime is an
  `insert` (it carries the row marker, with that group's TTL: an `INSERT ... USING TTL` writes marker
  and cells alike, and a later update has a higher writetime); every other group is an `update`.
  `_present` lists the group's columns, so per-column last-writer-wins in the destination is exact,
  whichever order the snapshot and the commitlog stream deliver in. A null column is not present:
  nothing live to copy (a tombstone or expired cell the commitlog replays stays dead there too).
  Cassandra 2.1.0 repeats the previous row's WRITETIME/TTL where a column is null, so those are
  only read where the value is non-null.
- A row with no live scalar cell (only its key, or only collections) gets its marker at `S`, a
  stand-in version `IN_FLIGHT_US` before `R`, the time the page was requested (µs): the row was live
  then. Why below `R`: a write whose client timestamp is older than `R` may still be in flight and
  miss the read (a row delete, an element removal); placed below such writes, the stand-in loses to
  them when the commitlog stream delivers them, and every write the read did include is delivered
  by that stream too, so the overlap still converges.
- Non-frozen collections (and non-frozen UDTs): CQL has neither WRITETIME() nor TTL() for them, nor
  list element ids. The rule: the value read *replaces* the whole column — `_cells.c` has
  `replaced_at = S - 1` and every element at timestamp `S` (sets, maps, UDTs; `R` for lists, below),
  without TTL; a null value is a replacement by nothing. Since the read reflects every write before `R`, this removes exactly what was gone by
  then (a list element the commitlog stream replays from before `R`, under its real cell id, is
  replaced instead of doubled); every write after `R` has a higher timestamp and wins. List elements
  get timeuuid ids in read order, just below `R` (CDC appends after `R` sort after them). Limits: an
  element TTL is not readable, so snapshot elements do not expire by themselves; a CDC removal of one
  list element by its real id does not match the made-up id (overwrites and deletes do); and a list
  keeps `R`, not `S`: an element the read included would otherwise be there twice (made-up id and
  real id), so a list write still in flight at `R` that the read missed is replaced (lost) instead.
- Static columns: once per partition in a page, as `update`s grouped like regular ones, with null
  clustering. A partition with only static cells (clustering null in the result) gives no row.
- Counters (no WRITETIME() either): an `update` at `R`.

Metadata: `_ttl` is the remaining TTL and `_expires_at` = read time + TTL (TTL() answers in seconds:
the expiry is exact to a second); `_segment_id` is the read's id (negative: no commitlog segment has
one, so ClickHouse's insert tokens never match a commitlog batch's, nor another read's);
`_position` is `token - range start` (what the range's offset counts, `progress.py`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.commitlog.arrow_batches import (
    batch_schema,
    cells_type,
    fastpath,
    range_type,
    raw_to_arrow,
)
from ray_cdc.schema.cql_names import quote_identifier
from ray_cdc.schema.model import ColumnSchema, TableSchema
from ray_cdc.schema.types import freeze, parse_cql_type
from ray_cdc.snapshot.protocol import RawPage

_BIGINT = parse_cql_type("bigint")
#: 100 ns intervals between the UUID epoch (1582-10-15) and the Unix epoch
_UUID_EPOCH = 0x01B21DD213814000
_PRESENT = pa.list_(pa.string())
#: how far below a page's request time its stand-in versions sit (see the module doc): longer than a
#: write can be in flight between its client timestamp and its arrival at the replicas
IN_FLIGHT_US = 2_000_000


def _q(name: str) -> str:
    return quote_identifier(name)


@dataclass(frozen=True)
class SnapshotQuery:
    """The select of one table and where each part sits in its result columns."""

    table: TableSchema
    data: tuple[ColumnSchema, ...]  # pk, clustering, static, regular: the batch's column order
    timed: tuple[ColumnSchema, ...]  # scalar static/regular columns (WRITETIME/TTL selected)
    cql: str

    @classmethod
    def of(cls, table: TableSchema) -> SnapshotQuery:
        data = (*table.partition_key, *table.clustering, *table.static, *table.regular)
        timed = tuple(c for c in (*table.static, *table.regular)
                      if not c.type.is_multicell and c.type.name != "counter")
        token = "token(" + ", ".join(_q(c.name) for c in table.partition_key) + ")"
        parts = [token] + [_q(c.name) for c in data]
        for c in timed:
            parts += [f"WRITETIME({_q(c.name)})", f"TTL({_q(c.name)})"]
        cql = (f"SELECT {', '.join(parts)} FROM {_q(table.keyspace)}.{_q(table.name)} "
               f"WHERE {token} > ? AND {token} <= ?")
        return cls(table, data, timed, cql)


def list_ids(read_us: int, count: int) -> list[bytes]:
    """Version-1 timeuuids for a list's elements, in order, just below `read_us` (see module doc)."""
    base = read_us * 10 + _UUID_EPOCH - count
    out = []
    for i in range(count):
        t = base + i
        fields = (t & 0xFFFFFFFF, (t >> 32) & 0xFFFF, ((t >> 48) & 0x0FFF) | 0x1000, 0x80, 0, 0)
        out.append(uuid.UUID(fields=fields).bytes)
    return out


class RowConverter:
    """One table's pages -> change-row batches (see the module doc)."""

    def __init__(self, table: TableSchema):
        self.query = SnapshotQuery.of(table)
        self.table = table
        self.schema = batch_schema(table)
        self.n_pk, self.n_ck = len(table.partition_key), len(table.clustering)
        self.regular_timed = [c for c in self.query.timed if c in table.regular]
        self.static_timed = [c for c in self.query.timed if c in table.static]
        self.multicell = [c for c in (*table.static, *table.regular) if c.type.is_multicell]
        self.regular_multicell = [c for c in self.multicell if c in table.regular]
        self.static_multicell = [c for c in self.multicell if c in table.static]
        self.counters = [c for c in table.regular if c.type.name == "counter"]
        self._frozen = {c.name: freeze(c.type) for c in self.multicell}
        self._fp = fastpath()

    # --- values ------------------------------------------------------------------------------------

    def _values(self, column: ColumnSchema, raw: list) -> tuple[pa.Array, list | None]:
        """The column as Arrow, and for a multicell column its decoded Python values too."""
        if column.type.is_multicell:  # the protocol carries the whole collection, serialized as frozen
            frozen = self._frozen[column.name]
            decoded = [frozen.decode(v) if v is not None else None for v in raw]
            arrow = pa.array([column.type.to_arrow_value(v) for v in decoded], column.type.arrow_type())
            return arrow, decoded
        if column.type.name == "counter":  # a bigint in the protocol (a context in the commitlog)
            column = replace(column, type=_BIGINT)
        return raw_to_arrow(column, raw, _fp=self._fp), None

    # --- a page -----------------------------------------------------------------------------------

    def convert(self, page: RawPage, *, read_us: int, range_start: int, read_id: int) -> pa.RecordBatch:
        n = page.rows
        cols = page.columns
        tokens = np.frombuffer(b"".join(cols[0]), dtype=">i8").astype(np.int64) if n else np.zeros(0, np.int64)
        data_raw = cols[1:1 + len(self.query.data)]
        values, decoded = {}, {}
        for column, raw in zip(self.query.data, data_raw):
            values[column.name], decoded[column.name] = self._values(column, raw)
        timed_raw = cols[1 + len(self.query.data):]
        wt, ttl = {}, {}
        for i, column in enumerate(self.query.timed):
            wt[column.name] = _ints(timed_raw[2 * i], ">i8", np.int64)
            ttl[column.name] = _ints(timed_raw[2 * i + 1], ">i4", np.int32)
        valid = {c.name: np.asarray(values[c.name].is_valid()) for c in (*self.query.timed, *self.counters)}
        page_ctx = _Page(n, values, decoded, wt, ttl, valid, tokens, read_us, read_us - IN_FLIGHT_US,
                         read_us // 1_000_000, range_start, read_id)
        blocks = []
        has_clustering = np.ones(n, dtype=bool)
        if self.n_ck:
            has_clustering = np.asarray(values[self.table.clustering[0].name].is_valid())
        if self.counters:
            blocks.append(self._counter_rows(page_ctx, np.flatnonzero(has_clustering)))
        else:
            blocks += self._regular_rows(page_ctx, np.flatnonzero(has_clustering))
        if self.regular_multicell:
            blocks.append(self._replacements(page_ctx, np.flatnonzero(has_clustering), self.regular_multicell,
                                             null_clustering=False))
        if self.table.static:
            firsts = _partition_starts(tokens, [cols[1 + i] for i in range(self.n_pk)])
            blocks += self._static_rows(page_ctx, firsts)
        blocks = [b for b in blocks if b is not None and b.num_rows]
        if not blocks:
            return pa.RecordBatch.from_pylist([], schema=self.schema)
        if len(blocks) == 1:
            return blocks[0]
        return pa.Table.from_batches(blocks, self.schema).combine_chunks().to_batches()[0]

    # --- change rows ------------------------------------------------------------------------------

    def _regular_rows(self, p: _Page, rows: np.ndarray) -> list[pa.RecordBatch]:
        names = [c.name for c in self.regular_timed]
        if not names:  # only key columns (and collections): the marker at R
            return [self._block(p, rows, "insert", np.full(len(rows), p.stand_in_us), np.zeros(len(rows), np.int32),
                                [[] for _ in rows], keep={})]
        valid = np.stack([p.valid[c][rows] for c in names], axis=1) if len(rows) else np.zeros((0, len(names)), bool)
        wts = np.stack([p.wt[c][rows] for c in names], axis=1) if len(rows) else np.zeros((0, len(names)), np.int64)
        ttls = np.stack([p.ttl[c][rows] for c in names], axis=1) if len(rows) else np.zeros((0, len(names)), np.int32)
        big = np.iinfo(np.int64).max
        wt_lo = np.where(valid, wts, big).min(axis=1, initial=big)
        wt_hi = np.where(valid, wts, -big).max(axis=1, initial=-big)
        ttl_lo = np.where(valid, ttls, np.iinfo(np.int32).max).min(axis=1, initial=np.iinfo(np.int32).max)
        ttl_hi = np.where(valid, ttls, -1).max(axis=1, initial=-1)
        any_valid = valid.any(axis=1)
        uniform = any_valid & (wt_lo == wt_hi) & (ttl_lo == ttl_hi)
        blocks = []
        # common case: one write made the whole row: one insert, present = its non-null columns
        sel = np.flatnonzero(uniform)
        if len(sel):
            blocks.append(self._block(p, rows[sel], "insert", wt_lo[sel], ttl_lo[sel],
                                      _present_array(valid[sel], names), keep={c: True for c in names}))
        empty = np.flatnonzero(~any_valid)
        if len(empty):
            blocks.append(self._block(p, rows[empty], "insert", np.full(len(empty), p.stand_in_us),
                                      np.zeros(len(empty), np.int32), [[] for _ in empty], keep={}))
        mixed = np.flatnonzero(any_valid & ~uniform)
        if len(mixed):
            blocks += self._grouped(p, rows[mixed], valid[mixed], wts[mixed], ttls[mixed], names, first_insert=True)
        return blocks

    def _grouped(self, p: _Page, rows, valid, wts, ttls, names, *, first_insert: bool,
                 null_clustering: bool = False) -> list[pa.RecordBatch]:
        """Rows whose columns carry different (writetime, ttl): one change per group."""
        src, ops, out_wt, out_ttl, present = [], [], [], [], []
        for i, row in enumerate(rows):
            groups: dict[tuple[int, int], list[str]] = {}
            for j, name in enumerate(names):
                if valid[i, j]:
                    groups.setdefault((int(wts[i, j]), int(ttls[i, j])), []).append(name)
            # lowest writetime first; at equal writetimes the longest-lived TTL carries the marker
            order = sorted(groups, key=lambda k: (k[0], -(k[1] or 2**31)))
            for g, key in enumerate(order):
                src.append(row)
                ops.append("insert" if first_insert and g == 0 else "update")
                out_wt.append(key[0])
                out_ttl.append(key[1])
                present.append(groups[key])
        if not src:
            return []
        keep = {name: np.array([name in pr for pr in present]) for name in names}
        blocks = []
        for op in ("insert", "update"):
            pick = np.array([o == op for o in ops])
            if pick.any():
                idx = np.flatnonzero(pick)
                blocks.append(self._block(p, np.asarray(src)[idx], op, np.asarray(out_wt)[idx],
                                          np.asarray(out_ttl, np.int32)[idx], [present[k] for k in idx],
                                          keep={n: m[idx] for n, m in keep.items()}, null_clustering=null_clustering))
        return blocks

    def _counter_rows(self, p: _Page, rows: np.ndarray) -> pa.RecordBatch:
        names = [c.name for c in self.counters]
        valid = np.stack([p.valid[c][rows] for c in names], axis=1)
        return self._block(p, rows, "update", np.full(len(rows), p.read_us), np.zeros(len(rows), np.int32),
                           _present_array(valid, names), keep={c: True for c in names})

    def _static_rows(self, p: _Page, firsts: np.ndarray) -> list[pa.RecordBatch]:
        blocks = []
        names = [c.name for c in self.static_timed]
        if names and len(firsts):
            valid = np.stack([p.valid[c][firsts] for c in names], axis=1)
            wts = np.stack([p.wt[c][firsts] for c in names], axis=1)
            ttls = np.stack([p.ttl[c][firsts] for c in names], axis=1)
            blocks += self._grouped(p, firsts, valid, wts, ttls, names, first_insert=False, null_clustering=True)
        if self.static_multicell and len(firsts):
            blocks.append(self._replacements(p, firsts, self.static_multicell, null_clustering=True))
        return blocks

    def _replacements(self, p: _Page, rows: np.ndarray, columns: list[ColumnSchema], *,
                      null_clustering: bool) -> pa.RecordBatch:
        """The collections of `rows`, each replacing the whole column at R (module doc)."""
        names = [c.name for c in columns]
        cells = {}
        for column in columns:
            decoded = p.decoded[column.name]
            cells[column.name] = pa.array([_replacement(column, decoded[r], p.read_us, p.stand_in_us) for r in rows],
                                          cells_type(column))
        return self._block(p, rows, "update", np.full(len(rows), p.stand_in_us), np.zeros(len(rows), np.int32),
                           [names for _ in rows], keep={n: True for n in names}, cells=cells,
                           null_clustering=null_clustering)

    def _block(self, p: _Page, rows: np.ndarray, op: str, wt, ttl, present: list, *, keep: dict,
               cells: dict | None = None, null_clustering: bool = False) -> pa.RecordBatch:
        """Change rows for source `rows`: key columns always, the columns in `keep` (True or a mask
        per output row), everything else null."""
        n = len(rows)
        idx = pa.array(rows, pa.int64())
        key_names = {c.name for c in (*self.table.partition_key, *self.table.clustering)}
        clustering = {c.name for c in self.table.clustering}
        arrays = []
        for column in self.query.data:
            name = column.name
            typ = column.type.arrow_type()
            if name in key_names and not (null_clustering and name in clustering):
                arrays.append(p.values[name].take(idx))
            elif name in keep:
                taken = p.values[name].take(idx)
                mask = keep[name]
                arrays.append(taken if mask is True else pc.if_else(pa.array(mask, pa.bool_()), taken,
                                                                    pa.nulls(n, typ)))
            else:
                arrays.append(pa.nulls(n, typ))
        ttl = np.asarray(ttl, np.int32)
        has_ttl = ttl > 0
        expires = np.where(has_ttl, p.now_s + ttl.astype(np.int64), 0)
        arrays += [
            pa.array([op], pa.string()).take(pa.array(np.zeros(n, np.int64))),
            pa.array(np.asarray(wt, np.int64), pa.int64()),
            pa.array(ttl, pa.int32(), mask=~has_ttl),
            pa.array(expires, pa.int64(), mask=~has_ttl).cast(pa.timestamp("s", tz="UTC")),
            pa.array(np.full(n, p.read_id, np.int64), pa.int64()),
            pa.array(p.tokens[rows] - p.range_start, pa.int64()),
            present if isinstance(present, pa.Array) else pa.array(present, _PRESENT),
            pa.nulls(n, range_type(self.table)),
        ]
        for column in self.multicell:
            typ = cells_type(column)
            arrays.append(cells[column.name] if cells and column.name in cells else pa.nulls(n, typ))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


@dataclass
class _Page:
    n: int
    values: dict
    decoded: dict
    wt: dict
    ttl: dict
    valid: dict
    tokens: np.ndarray
    read_us: int
    stand_in_us: int
    now_s: int
    range_start: int
    read_id: int


def _ints(raw: list, dtype: str, native) -> np.ndarray:
    """Big-endian fixed-width values; nulls as 0 (only read where the column's value is valid)."""
    width = np.dtype(dtype).itemsize
    if None in raw:  # nulls as zeros (list.__contains__ is a C loop: the common all-set case stays in C)
        zero = b"\0" * width
        raw = [zero if v is None else v for v in raw]
    return np.frombuffer(b"".join(raw), dtype=dtype).astype(native)


def _present_array(valid: np.ndarray, names: list[str]) -> pa.Array:
    """`_present` of each row: the names of its valid columns, built without a Python list per row."""
    offsets = np.zeros(len(valid) + 1, np.int32)
    np.cumsum(valid.sum(axis=1), out=offsets[1:])
    _, which = np.nonzero(valid)
    flat = pa.array(names, pa.string()).take(pa.array(which, pa.int64()))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat)


def _partition_starts(tokens: np.ndarray, pk_raw: list[list]) -> np.ndarray:
    """Rows that begin a partition within the page (the token, then the key bytes, change)."""
    n = len(tokens)
    if not n:
        return np.zeros(0, np.int64)
    out = [0]
    keys = list(zip(*pk_raw))
    for i in range(1, n):
        if tokens[i] != tokens[i - 1] or keys[i] != keys[i - 1]:
            out.append(i)
    return np.asarray(out, np.int64)


def _replacement(column: ColumnSchema, value, read_us: int, stand_in_us: int) -> dict:
    """`_cells.<c>` of a collection value read at `read_us`: replace everything before, elements at it
    (at `stand_in_us` but for lists, module doc)."""
    t = column.type
    at = read_us if t.name == "list" else stand_in_us
    cells = []
    if value is not None:
        kind = t.name
        if kind == "list":
            elements = list(value)
            ids = list_ids(read_us, len(elements))
            items = [(key, t.params[0].to_arrow_value(v)) for key, v in zip(ids, elements)]
        elif kind == "set":
            items = [(e, None) for e in t.to_arrow_value(value)]
        elif kind == "map":
            items = t.to_arrow_value(value)
        else:  # udt: one cell per non-null field
            arrow = t.to_arrow_value(value)
            items = [(name, {name: v}) for name, v in arrow.items() if v is not None]
        cells = [{"key": k, "value": v, "timestamp": at, "ttl": 0, "expires_at": None, "deleted": False}
                 for k, v in items]
    return {"replaced_at": at - 1, "cells": cells}
