"""Dense ids for primary keys, computed in Arrow and numpy (no Python object per row).

Equal keys get equal ids across every table given (NULL equals NULL: a static row's clustering is
NULL on both sides), so stored rows and a batch's changes of the same key meet on one id.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# combined codes stay below this, so multiplying by the next column's cardinality cannot overflow
_CODE_LIMIT = 1 << 62


def _column_codes(columns: list[pa.ChunkedArray | pa.Array]) -> tuple[np.ndarray, int]:
    """Codes of one key column over several tables, and how many distinct values (NULL included)."""
    chunks = []
    for column in columns:
        chunks.extend(column.chunks if isinstance(column, pa.ChunkedArray) else [column])
    if not chunks:
        return np.zeros(0, dtype=np.int64), 1
    joined = pa.chunked_array(chunks).combine_chunks() if len(chunks) > 1 else chunks[0]
    encoded = pc.dictionary_encode(joined, null_encoding="encode")
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), max(1, len(encoded.dictionary))


def key_ids(tables: Sequence[pa.Table], names: Sequence[str]) -> tuple[list[np.ndarray], int]:
    """Per table, the id of each row's key (`names`), and the number of distinct keys. Ids are dense
    (0..n-1) and follow the sorted order of the combined codes, not first appearance."""
    sizes = [t.num_rows for t in tables]
    total = sum(sizes)
    codes = np.zeros(total, dtype=np.int64)
    span = 1
    for name in names:
        column, cardinality = _column_codes([t.column(name) for t in tables])
        if span * cardinality >= _CODE_LIMIT:
            _, codes = np.unique(codes, return_inverse=True)
            span = int(codes.max()) + 1 if total else 1
        codes = codes * cardinality + column
        span *= cardinality
    if total:
        _, dense = np.unique(codes, return_inverse=True)
        dense = dense.astype(np.int64, copy=False)
        n = int(dense.max()) + 1
    else:
        dense, n = codes, 0
    bounds = np.cumsum([0, *sizes])
    return [dense[bounds[i]:bounds[i + 1]] for i in range(len(tables))], n


def first_rows(ids: np.ndarray, n: int) -> np.ndarray:
    """For each id, the first row that has it (ids: dense, every id present)."""
    first = np.empty(n, dtype=np.int64)
    first[ids[::-1]] = np.arange(len(ids) - 1, -1, -1)
    return first
