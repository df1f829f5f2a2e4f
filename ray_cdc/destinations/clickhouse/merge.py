"""Per-column last-writer-wins for a table that can only replace whole rows.

ReplacingMergeTree keeps the newest *row* of a key, while Cassandra reconciles *cells*. So every key a
batch touches is read back (its newest row, tombstone rows included), merged with the batch's changes
column by column in Arrow/numpy, and written again as a full row:

- each column's candidates are the stored cell (value and writetime from `_ts`) and every change of
  the batch that has the column in `_present`; the newest writetime wins, ties go to the later change
  (sort by key, writetime, apply order; take the last of each key);
- the row marker (what INSERT writes, so a row lives without any cell) is the pseudo column `_row`;
- `_ts` holds only the writetimes that differ from the row's `_version` (-1: no cell), so the common
  row, whose every cell was written at once, carries an empty map (cheap to insert);
- a key's tombstone time is the max of its stored `_deleted_at`, the batch's row deletes and the
  partition/range tombstones that cover it; a cell written at or before it is dead. The tombstone
  stays in `_deleted_at`, so it keeps suppressing older writes that arrive later;
- `_is_deleted` = no live marker and no live cell; `_version` = max(writetimes, tombstone, previous
  version + 1), so the rewritten row always supersedes the one it was merged from;
- `_purge_at` = max(its own expiry (PURGE_NEVER: never; 0: not live), the stored row's `_purge_at`), so
  the TTL clause never removes a row while an older version of the key could read as live (`ddl.py`);
- a non-frozen collection or UDT merges element by element instead (cells.py): its state in `_cells`,
  its rendered value in the column, per-element expiries in `_cells_exp`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.destinations.clickhouse.cells import EXPIRY_COLUMN, STATE_COLUMN, merged_column, meta_columns
from ray_cdc.destinations.clickhouse.ddl import PURGE_NEVER
from ray_cdc.destinations.clickhouse.keys import first_rows, key_ids
from ray_cdc.destinations.clickhouse.present import present_matrix

ROW_MARKER = "_row"
NO_CELL = -1  # a `_ts` entry: the column holds no cell (an absent entry: written at `_version`)
TS_TYPE = pa.map_(pa.string(), pa.int64())
EXP_TYPE = pa.map_(pa.string(), pa.uint32())


def present_masks(changes: pa.Table, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Column name -> rows of `changes` that write (or delete) that column."""
    matrix = present_matrix(changes, names)
    masks = {name: matrix[:, j] for j, name in enumerate(names)}
    masks[ROW_MARKER] = pc.equal(changes.column("_op"), "insert").to_numpy(zero_copy_only=False)
    return masks


def _ints(array, fill: int = 0) -> np.ndarray:
    return pc.fill_null(array, fill).to_numpy(zero_copy_only=False).astype(np.int64)


def _lookup(maps: pa.ChunkedArray | pa.Array, name: str) -> pa.Array:
    return pc.map_lookup(maps, pa.scalar(name), "first")


def stored_writetimes(maps, name: str, version: np.ndarray) -> np.ndarray:
    """Each stored row's writetime of column `name` (NO_CELL: none), from `_ts` and `_version`."""
    found = _lookup(maps, name)
    if found.null_count == len(found):
        return version.copy()
    return np.where(pc.is_valid(found).to_numpy(zero_copy_only=False), _ints(found), version)


def _winners(idx: np.ndarray, ts: np.ndarray, order: np.ndarray, n_keys: int) -> np.ndarray:
    """Candidate position of the newest cell per key (-1: no candidate)."""
    winner = np.full(n_keys, -1, dtype=np.int64)
    if len(idx) == 0:
        return winner
    ranked = np.lexsort((order, ts, idx))
    sorted_idx = idx[ranked]
    last = np.ones(len(ranked), dtype=bool)
    last[:-1] = sorted_idx[1:] != sorted_idx[:-1]
    winner[sorted_idx[last]] = ranked[last]
    return winner


class Merger:
    """Merges the stored rows of some keys with a batch of row changes (both in stored form)."""

    def __init__(self, key_names: Sequence[str], value_names: Sequence[str], complex_columns=()):
        self.key_names = list(key_names)
        self.value_names = list(value_names)
        self.complex = {c.name: c for c in complex_columns}  # non-frozen collections / UDTs

    def merge(self, current: pa.Table, changes: pa.Table,
              tombstones: Callable[[pa.Table], np.ndarray]) -> pa.Table:
        """One row per key of `current` and `changes`; `tombstones` gives the covering partition/range
        tombstone time of each key of a table of keys."""
        (cur_idx, chg_idx), n = key_ids([current, changes], self.key_names)
        firsts = first_rows(np.concatenate([cur_idx, chg_idx]), n)
        keys = pa.concat_tables([current.select(self.key_names), changes.select(self.key_names)]).take(firsts)
        tomb = self._tombstones(current, changes, cur_idx, chg_idx, n, tombstones(keys))
        cells = _Cells(current, changes, cur_idx, chg_idx, n, tomb)
        masks = present_masks(changes, self.value_names)
        columns, texts, expiries = {}, [], []
        for name in self.value_names:
            column = self.complex.get(name)
            if column is None:
                columns[name] = cells.column(name, masks[name])
                continue
            stored, ts, exp, alive, states, element_exp = merged_column(column, current, changes, cur_idx,
                                                                        chg_idx, n, tomb)
            columns[name] = (stored, ts, exp, alive)
            texts.append(states)
            expiries.append(element_exp)
        marker = cells.column(ROW_MARKER, masks[ROW_MARKER], values=False)
        previous = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(previous, cur_idx, _ints(current.column("_version")))
        older = np.zeros(n, dtype=np.int64)
        np.maximum.at(older, cur_idx, _ints(current.column("_purge_at").cast(pa.int64())))
        state, element_expiry = meta_columns(list(self.complex), texts, expiries, n)
        extra = {STATE_COLUMN: state, EXPIRY_COLUMN: element_expiry} if self.complex else {}
        return _assemble(keys, columns, marker, tomb, previous, older, extra)

    @staticmethod
    def _tombstones(current, changes, cur_idx, chg_idx, n, covering: np.ndarray) -> np.ndarray:
        tomb = covering.astype(np.int64, copy=True)
        np.maximum.at(tomb, cur_idx, _ints(current.column("_deleted_at")))
        deletes = pc.equal(changes.column("_op"), "delete").to_numpy(zero_copy_only=False)
        np.maximum.at(tomb, chg_idx[deletes], _ints(changes.column("_writetime"))[deletes])
        return tomb


class _Cells:
    """The candidates of each column, and the newest live one per key."""

    def __init__(self, current, changes, cur_idx, chg_idx, n, tomb):
        self.current, self.changes = current, changes
        self.cur_idx, self.chg_idx, self.n, self.tomb = cur_idx, chg_idx, n, tomb
        self.chg_ts = _ints(changes.column("_writetime"))
        self.chg_exp = _ints(changes.column("_expires_at").cast(pa.int64()))
        self.chg_order = np.arange(1, changes.num_rows + 1, dtype=np.int64)
        self.cur_version = _ints(current.column("_version"))

    def column(self, name: str, present: np.ndarray, values: bool = True):
        """(values or None, writetime per key (-1: none), expiry per key, live mask)."""
        cur_ts = stored_writetimes(self.current.column("_ts"), name, self.cur_version)
        cur_rows = np.flatnonzero(cur_ts != NO_CELL)
        chg_rows = np.flatnonzero(present)
        idx = np.concatenate([self.cur_idx[cur_rows], self.chg_idx[chg_rows]])
        ts = np.concatenate([cur_ts[cur_rows], self.chg_ts[chg_rows]])
        cur_exp = _ints(_lookup(self.current.column("_exp"), name).cast(pa.int64()))
        exp = np.concatenate([cur_exp[cur_rows], self.chg_exp[chg_rows]])
        order = np.concatenate([np.zeros(len(cur_rows), dtype=np.int64), self.chg_order[chg_rows]])
        win = _winners(idx, ts, order, self.n)
        has = win >= 0
        w = np.where(has, win, 0)
        win_ts = np.where(has, ts[w] if len(ts) else 0, -1)
        alive = has & (win_ts > self.tomb)
        win_exp = np.where(alive, exp[w] if len(exp) else 0, 0)
        out_values = None
        if values:
            source = np.concatenate([cur_rows, self.current.num_rows + chg_rows])
            positions = pa.array(np.where(alive, source[w] if len(source) else 0, 0), mask=~alive)
            both = pa.concat_arrays([_one(self.current.column(name)), _one(self.changes.column(name))])
            out_values = both.take(positions)
        return out_values, np.where(alive, win_ts, -1), win_exp, alive


def _one(column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def is_live(array: pa.Array) -> np.ndarray:
    """A value that makes a row exist: not null, and for a collection not empty, for a tuple not all null."""
    valid = pc.is_valid(array).to_numpy(zero_copy_only=False)
    typ = array.type
    if pa.types.is_map(typ):
        offsets = array.offsets.to_numpy()
        return valid & (offsets[1:] > offsets[:-1])
    if pa.types.is_list(typ):
        return valid & (_ints(pc.list_value_length(array)) > 0)
    if pa.types.is_struct(typ):
        fields = [is_live(array.field(i)) for i in range(typ.num_fields)]
        return valid & np.logical_or.reduce(fields) if fields else valid
    return valid


def _map_column(names: list[str], values: np.ndarray, valid: np.ndarray, typ: pa.DataType) -> pa.Array:
    """Per-row maps name -> value from an (n, k) matrix of values and its validity."""
    if not valid.any():  # the common case (see `_ts`): no per-row Python-object work at all
        return pa.MapArray.from_arrays(pa.array(np.zeros(len(valid) + 1, dtype=np.int32)), pa.array([], typ.key_type),
                                       pa.array([], typ.item_type), type=typ)
    counts = valid.sum(axis=1)
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    flat_valid = valid.ravel()
    keys = pa.array(np.tile(np.array(names, dtype=object), len(counts))[flat_valid], pa.string())
    items = pa.array(values.ravel()[flat_valid], typ.item_type)
    return pa.MapArray.from_arrays(pa.array(offsets), keys, items, type=typ)


def purge_times(live: np.ndarray, expires: np.ndarray, older: np.ndarray | None = None) -> np.ndarray:
    """`_purge_at` of rows (live mask, row expiry with 0 = never) given the `_purge_at` of the stored
    rows they were merged from (None: no stored row)."""
    own = np.where(live, np.where(expires > 0, expires, PURGE_NEVER), 0).astype(np.int64)
    return own if older is None else np.maximum(own, older)


def _assemble(keys: pa.Table, columns: dict, marker, tomb: np.ndarray, previous: np.ndarray, older: np.ndarray,
              extra: dict) -> pa.Table:
    n = keys.num_rows
    names = [*columns, ROW_MARKER]
    parts = [*columns.values(), marker]
    ts = np.stack([p[1] for p in parts], axis=1) if n else np.full((0, len(parts)), NO_CELL, dtype=np.int64)
    exp = np.stack([p[2] for p in parts], axis=1) if n else np.zeros((0, len(parts)), dtype=np.int64)
    live_cells = [is_live(p[0]) & p[3] for p in columns.values()] + [marker[3]]
    live = np.stack(live_cells, axis=1) if n else np.zeros((0, len(parts)), dtype=bool)
    has_ts = ts != NO_CELL
    any_live = live.any(axis=1)
    never = (live & (exp == 0)).any(axis=1)
    expires = np.where(any_live & ~never, np.where(live, exp, 0).max(axis=1, initial=0), 0)
    version = np.maximum(np.maximum(ts.max(axis=1, initial=-1), tomb), previous + 1)
    out = keys
    for name, (values, *_rest) in columns.items():
        out = out.append_column(name, values)
    meta = {
        "_ts": _map_column(names, ts, ts != version[:, None], TS_TYPE),
        "_exp": _map_column(names, exp, has_ts & (exp > 0), EXP_TYPE),
        "_deleted_at": pa.array(tomb, pa.int64()),
        "_version": pa.array(version, pa.int64()),
        "_is_deleted": pa.array((~any_live).astype(np.uint8), pa.uint8()),
        "_expires_at": pa.array(expires.astype(np.uint32), pa.uint32()),
        "_purge_at": pa.array(purge_times(any_live, expires, older).astype(np.uint32), pa.uint32()),
    }
    for name, array in {**meta, **extra}.items():
        out = out.append_column(name, array)
    return out
