"""Coalescing: drop the row changes of a batch that a later change of the same key fully shadows.

Exactly the destinations' semantics (`ray_cdc.destinations.base`): a column keeps the value with the
highest writetime, ties to the later-applied change. So a write of columns C at time t is
irrelevant to the final state when, later in the same batch, the same primary key gets every column
of C written at a time >= t: whatever tombstone exists (before, in or after the batch), it kills the
earlier write whenever it kills the later one. An INSERT also carries the row's liveness, so it is
shadowed only by a later INSERT at >= t. Conservative on purpose — these are never dropped:
deletions of any kind (they are tombstones), changes touching non-frozen collections or UDTs
(element-wise merges), and changes without `_present`.

Only whole rows are dropped (no new row is synthesised), so every kept row is one the log holds,
with its own position: offsets, dead letters and replays are unaffected.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.commitlog.arrow_batches import CELLS_PREFIX
from ray_cdc.schema.model import TableSchema

_WRITES = ("insert", "update")


def coalesce(batch: pa.RecordBatch, table: TableSchema) -> pa.RecordBatch:
    n = batch.num_rows
    if n < 2:
        return batch
    candidates = _repeated_key_rows(batch, table)  # vectorised: most batches have no repeated key
    if candidates.size < 2:
        return batch
    take = pa.array(candidates)
    ops = batch.column("_op").take(take).to_pylist()
    if sum(op in _WRITES for op in ops) < 2:
        return batch
    key_columns = [batch.column(c.name).take(take).to_pylist() for c in (*table.partition_key, *table.clustering)]
    keys = list(zip(*key_columns))
    present = batch.column("_present").take(take).to_pylist()
    writetime = batch.column("_writetime").take(take).to_pylist()
    complex_rows = _touches_complex(batch)[candidates]
    keep = np.ones(n, dtype=bool)
    later_cells: dict[tuple, dict[str, int]] = {}  # key -> column -> newest writetime seen later
    later_insert: dict[tuple, int] = {}  # key -> newest INSERT (liveness) seen later
    for j in range(len(candidates) - 1, -1, -1):  # from the end: what comes later is known when judged
        op, cols, t = ops[j], present[j], writetime[j]
        if op not in _WRITES or cols is None or t is None or complex_rows[j]:
            continue
        key = keys[j]
        cells = later_cells.setdefault(key, {})
        shadowed = bool(cols) and all(cells.get(c, -1) >= t for c in cols)
        if op == "insert":
            shadowed = shadowed and later_insert.get(key, -1) >= t
        if shadowed:
            keep[candidates[j]] = False
            continue
        for c in cols:
            if cells.get(c, -1) < t:
                cells[c] = t
        if op == "insert" and later_insert.get(key, -1) < t:
            later_insert[key] = t
    return batch if keep.all() else batch.filter(pa.array(keep))


def _repeated_key_rows(batch: pa.RecordBatch, table: TableSchema) -> np.ndarray:
    """Indices (ascending) of the rows whose primary key occurs more than once in the batch.

    One dense int64 code per row: each key column is dictionary-encoded and folded into the code
    of the columns before it (code * cardinality + index), re-encoded densely whenever the product
    could overflow; then one bincount. Empty at once when no key repeats (the usual case)."""
    n = batch.num_rows
    code: np.ndarray | None = None
    cardinality = 1
    for column in (*table.partition_key, *table.clustering):
        try:
            encoded = pc.dictionary_encode(batch.column(column.name), null_encoding="encode")
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            return np.arange(n)  # a key type Arrow cannot hash: judge every row
        indices = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        size = max(1, len(encoded.dictionary))
        if code is None:
            code, cardinality = indices, size
            continue
        if cardinality * size >= 2**62:  # keep the product in int64: densify the code first
            code, cardinality = _dense(code)
        code, cardinality = code * size + indices, cardinality * size
    if code is None:
        return np.arange(n)  # no key columns: judge every row
    if cardinality > 4 * n:  # sparse code: densify so that bincount stays O(rows)
        code, cardinality = _dense(code)
    counts = np.bincount(code, minlength=cardinality)
    if counts.max(initial=0) < 2:
        return np.arange(0)
    return np.flatnonzero(counts[code] > 1)


def _dense(code: np.ndarray) -> tuple[np.ndarray, int]:
    encoded = pc.dictionary_encode(pa.array(code, pa.int64()))
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False), max(1, len(encoded.dictionary))


def _touches_complex(batch: pa.RecordBatch) -> np.ndarray:
    touched = np.zeros(batch.num_rows, dtype=bool)
    for name in batch.schema.names:
        if name.startswith(CELLS_PREFIX):
            touched |= pc.is_valid(batch.column(name)).to_numpy(zero_copy_only=False)
    return touched
