"""Row changes that need no merge: what `merge.Merger` would make of them, built without stored rows.

A change is *direct* when its key has no stored row, no tombstone covers it, it is the only change of
its key in the batch, it is an insert or an update with a positive writetime, and it touches no
non-frozen collection or UDT. The merge of such a change with nothing is the change itself: every
column it writes holds its value at its writetime (= `_version`, so `_ts` only lists the columns it
does not write, as NO_CELL), `_exp` its expiry, `_purge_at` its own expiry (no older version to
outlive), no tombstone, no element state. `candidates` finds them among a batch's changes (no
connection needed); the writer drops those whose key turns out to be stored or under a tombstone, and
merges those instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.commitlog.arrow_batches import cells_column
from ray_cdc.destinations.clickhouse.cells import (
    EXPIRY_COLUMN,
    EXPIRY_TYPE,
    STATE_COLUMN,
    STATE_TYPE,
    empty_maps,
)
from ray_cdc.destinations.clickhouse.forms import to_stored
from ray_cdc.destinations.clickhouse.keys import key_ids
from ray_cdc.destinations.clickhouse.merge import (
    EXP_TYPE,
    NO_CELL,
    ROW_MARKER,
    TS_TYPE,
    _map_column,
    is_live,
    purge_times,
)
from ray_cdc.destinations.clickhouse.present import present_matrix
from ray_cdc.schema.model import ColumnSchema


def sorted_keys(changes: pa.Table, key_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts `changes` by key (stable: a key's changes stay in batch order), and the
    mask (in that order) of rows whose key some other row of the batch shares."""
    n = changes.num_rows
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    order = pc.sort_indices(changes.select(list(key_names)), [(k, "ascending") for k in key_names]).to_numpy()
    same = np.ones(n - 1, dtype=bool)
    for name in key_names:
        column = changes.column(name).take(pa.array(order))
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        a, b = column.slice(1), column.slice(0, n - 1)
        equal = pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False)
        if column.null_count:
            equal |= pc.and_(pc.is_null(a), pc.is_null(b)).to_numpy(zero_copy_only=False)
        same &= equal
    shared = np.zeros(n, dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    return order, shared


def candidates(changes: pa.Table, shared: np.ndarray, pk_names: Sequence[str], deleted_partitions: pa.Table,
               complex_columns: Sequence[ColumnSchema]) -> np.ndarray:
    """Mask of the rows of `changes` that may go in without a merge (see the module doc); the stored
    rows and tombstones, still unknown here, decide later. `shared`: the key has other changes."""
    n = changes.num_rows
    op = changes.column("_op")
    ok = pc.is_in(op, pa.array(["insert", "update"])).to_numpy(zero_copy_only=False)
    ok &= pc.fill_null(pc.greater(changes.column("_writetime"), 0), False).to_numpy(zero_copy_only=False)
    if complex_columns:
        touched = present_matrix(changes, [c.name for c in complex_columns]).any(axis=1)
        for column in complex_columns:
            touched |= pc.is_valid(changes.column(cells_column(column.name))).to_numpy(zero_copy_only=False)
        ok &= ~touched
    ok &= ~shared  # several changes of a key: merged, in batch order
    if deleted_partitions.num_rows and n:
        (row_pk, deleted_pk), _ = key_ids([changes.select(pk_names), deleted_partitions.select(pk_names)], pk_names)
        ok &= ~np.isin(row_pk, deleted_pk)
    return ok


def direct_rows(changes: pa.Table, source: np.ndarray, key_names: Sequence[str], values: Sequence[ColumnSchema],
                schema: pa.Schema) -> pa.Table:
    """The stored rows of the direct changes `changes[source]`, in that order."""
    n = len(source)
    names = [c.name for c in values]
    present = present_matrix(changes, names)
    present = present[source] if present.strides[0] else present[:n]  # a broadcast matrix: one row for all
    indices = pa.array(source)
    picked = changes.select([*key_names, *names, "_op", "_writetime", "_expires_at"]).take(indices)
    marker = pc.equal(picked.column("_op"), "insert").to_numpy(zero_copy_only=False)
    writetime = pc.fill_null(picked.column("_writetime"), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    expires = pc.fill_null(picked.column("_expires_at").cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    out = {name: picked.column(name) for name in key_names}
    live = marker.copy()
    for j, column in enumerate(values):
        value = _written(picked.column(column.name), present[:, j], column)
        live |= present[:, j] & is_live(value)
        out[column.name] = value
    cells = np.concatenate([present, marker[:, None]], axis=1)
    all_names = [*names, ROW_MARKER]
    has_expiry = cells & (expires > 0)[:, None]
    out["_ts"] = _map_column(all_names, np.full(cells.shape, NO_CELL, dtype=np.int64), ~cells, TS_TYPE)
    out["_exp"] = _map_column(all_names, np.repeat(expires[:, None], len(all_names), axis=1), has_expiry, EXP_TYPE)
    out["_deleted_at"] = pa.array(np.zeros(n, dtype=np.int64))
    out["_version"] = pa.array(writetime)
    out["_is_deleted"] = pa.array((~live).astype(np.uint8))
    # every cell of a direct row shares the change's expiry: the row expires with it, if it lives
    out["_expires_at"] = pa.array(np.where(live, expires, 0).astype(np.uint32))
    out["_purge_at"] = pa.array(purge_times(live, expires).astype(np.uint32))  # no older version stored
    if STATE_COLUMN in schema.names:  # a table with non-frozen collections: no element state yet
        out[STATE_COLUMN] = empty_maps(n, STATE_TYPE)
        out[EXPIRY_COLUMN] = empty_maps(n, EXPIRY_TYPE)
    return pa.Table.from_pydict(out, schema=schema)


def _written(value: pa.ChunkedArray | pa.Array, present: np.ndarray, column: ColumnSchema) -> pa.Array:
    """The column as a direct row stores it: the change's value where it writes the column, else none."""
    if column.type.is_multicell:  # never written by a direct change: what the merge stores for no elements
        return to_stored(pa.nulls(len(present), column.type.arrow_type()), column.type)
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if present.all():
        return value
    return value.take(pa.array(np.arange(len(present)), mask=~present))


def stored_keys_among(stored: pa.Table, rows: pa.Table, key_names: Sequence[str]) -> np.ndarray:
    """Mask over `rows`: its key is one of `stored`'s keys."""
    if not stored.num_rows or not rows.num_rows:
        return np.zeros(rows.num_rows, dtype=bool)
    (stored_ids, row_ids), _ = key_ids([stored.select(key_names), rows.select(key_names)], key_names)
    return np.isin(row_ids, stored_ids)
