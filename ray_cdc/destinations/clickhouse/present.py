"""Which columns each change writes (`_present`), as a boolean matrix, without a Python object per row."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def present_matrix(changes: pa.Table, names: Sequence[str]) -> np.ndarray:
    """(rows, columns) mask: row i writes (or deletes) column names[j] (`_present`)."""
    present = changes.column("_present")
    present = present.combine_chunks() if isinstance(present, pa.ChunkedArray) else present
    if not len(present) or not names:
        return np.zeros((len(present), len(names)), dtype=bool)
    uniform = uniform_list(present)
    if uniform is not None:  # the common batch: every change writes the same columns
        return np.broadcast_to(np.isin(np.array(names, dtype=object), uniform), (len(present), len(names)))
    out = np.zeros((len(present), len(names)), dtype=bool)
    flat = pc.list_flatten(present)
    positions = pc.index_in(flat, value_set=pa.array(list(names), pa.string()))
    rows = pc.list_parent_indices(present).to_numpy()
    hit = pc.is_valid(positions).to_numpy(zero_copy_only=False)
    out[rows[hit], positions.to_numpy(zero_copy_only=False)[hit].astype(np.int64)] = True
    return out


def uniform_list(lists: pa.ListArray) -> list[str] | None:
    """The list every entry of a list<string> array holds, byte for byte, or None when they differ.
    Compares buffers (offsets and UTF-8 bytes) instead of hashing every string."""
    n = len(lists)
    if lists.null_count or not pa.types.is_string(lists.type.value_type):
        return None
    offsets = lists.offsets.to_numpy()
    lengths = np.diff(offsets)
    k = int(lengths[0])
    if (lengths != k).any():
        return None
    flat = lists.values.slice(offsets[0], offsets[-1] - offsets[0])
    if flat.null_count:
        return None
    first = flat.slice(0, k).to_pylist()
    if k == 0:
        return first
    string_offsets = np.frombuffer(flat.buffers()[1], dtype=np.int32)[flat.offset:flat.offset + len(flat) + 1]
    width = int(string_offsets[k] - string_offsets[0])
    if string_offsets[-1] - string_offsets[0] != width * n:
        return None
    # every row's strings have the first row's lengths and bytes <=> both sequences repeat with its period
    lengths = np.diff(string_offsets)
    if not np.array_equal(lengths[k:], lengths[:-k]):
        return None
    start = int(string_offsets[0])
    data = np.frombuffer(flat.buffers()[2], dtype=np.uint8, count=width * n, offset=start)
    return first if np.array_equal(data[width:], data[:-width]) else None
