"""PostgreSQL's binary COPY format, built column by column from Arrow and numpy buffers.

A COPY binary file is a header, one tuple per row (an int16 field count, then per field an int32
byte length, -1 for NULL, followed by that many bytes), and an int16 -1 trailer. Instead of handing
psycopg one Python tuple per row, each column is encoded at once into an Arrow binary array whose
element i is field i's "length + bytes", and the fields are joined element-wise (Arrow's C++ kernel)
into one binary array whose element i is row i's whole tuple. Its data buffer is the COPY body, and
its offsets say where each row starts, so any run of rows is one slice: bisecting a batch to the
rows PostgreSQL refuses costs no re-encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # signature, flags, extension
TRAILER = b"\xff\xff"


@cache
def _empty() -> pa.Scalar:
    # built on first use, not at import: pyarrow imports pandas (about 60 MB per process) the first
    # time it converts a Python value, and the actors that only import this module never need it
    return pa.scalar(b"", pa.binary())


def _binary(n: int, offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets.astype(np.int32, copy=False)),
                                                  pa.py_buffer(np.ascontiguousarray(data))])


def _lengths_to_offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise OverflowError("a COPY field column over 2 GiB: the batch is too large to stage at once")
    return offsets


@dataclass
class Field:
    """One column's COPY fields ("length + bytes" per row): a (rows, 4 + width) uint8 block for a
    fixed-width column without NULLs, else Arrow binary pieces whose element-wise concatenation is it."""

    block: np.ndarray | None = None
    pieces: tuple[pa.Array, ...] = ()


def fixed_field(values: np.ndarray, valid: np.ndarray | None = None) -> Field:
    """A field of a fixed-width type from its big-endian values (a numpy array of dtype '>i8' etc.,
    or uint8 of shape (n, width)); `valid` False -> NULL."""
    n = len(values)
    raw = values.view(np.uint8).reshape(n, -1) if values.ndim == 1 else values
    width = raw.shape[1]
    cells = np.empty((n, 4 + width), dtype=np.uint8)
    cells[:, :4] = np.frombuffer(np.array(width, dtype=">i4").tobytes(), dtype=np.uint8)
    cells[:, 4:] = raw
    if valid is None or bool(valid.all()):
        return Field(block=cells)
    cells[~valid, :4] = 0xFF  # length -1
    return _row_prefixes(cells, np.where(valid, 4 + width, 4))


def prefix_field(block: np.ndarray, lengths: np.ndarray) -> Field:
    """A field of varying width whose row i is the first lengths[i] bytes of block row i (uint8,
    shape (n, widest))."""
    n, width = block.shape
    cells = np.empty((n, 4 + width), dtype=np.uint8)
    cells[:, :4] = lengths.astype(">i4").view(np.uint8).reshape(n, 4)
    cells[:, 4:] = block
    return _row_prefixes(cells, lengths + 4)


def _row_prefixes(cells: np.ndarray, sizes: np.ndarray) -> Field:
    """The field whose row i is the first sizes[i] bytes of `cells` row i."""
    keep = np.arange(cells.shape[1])[None, :] < sizes[:, None]
    return Field(pieces=(_binary(len(cells), _lengths_to_offsets(sizes), cells[keep]),))


def var_field(values: pa.Array) -> Field:
    """A field of a variable-width type from a binary/string Arrow array holding its wire bytes."""
    values = values.cast(pa.binary()) if not pa.types.is_binary(values.type) else values
    lengths = pc.fill_null(pc.binary_length(values), -1).to_numpy(zero_copy_only=False).astype(">i4")
    prefix = _binary(len(values), np.arange(len(values) + 1, dtype=np.int64) * 4, lengths.view(np.uint8))
    return Field(pieces=(prefix, pc.fill_null(values, _empty())))


def bytes_field(values: Sequence[bytes | None]) -> Field:
    """A field from per-row wire bytes computed in Python (types without a vectorised encoder)."""
    return var_field(pa.array(values, pa.binary()))


@dataclass
class Payload:
    """The COPY tuples of a stage: element i of `rows` is row i's tuple."""

    rows: pa.Array

    def __len__(self) -> int:
        return len(self.rows)

    def body(self, start: int, stop: int) -> memoryview:
        """The tuples of rows [start, stop) as one contiguous slice of the encoded buffer."""
        offsets = np.frombuffer(self.rows.buffers()[1], dtype=np.int32, count=len(self.rows) + 1,
                                offset=self.rows.offset * 4)
        data = self.rows.buffers()[2]
        if data is None:
            return memoryview(b"")
        return memoryview(data)[int(offsets[start]):int(offsets[stop])]

    def chunks(self, start: int, stop: int) -> list[memoryview | bytes]:
        """What COPY FROM STDIN (FORMAT BINARY) reads for rows [start, stop)."""
        return [HEADER, self.body(start, stop), TRAILER]

    def take(self, rows: np.ndarray) -> Payload:
        return Payload(self.rows.take(pa.array(rows, pa.int64())))


def payload(columns: list[str], fields: list[Field], n: int) -> tuple[list[str], Payload]:
    """The tuples of `n` rows from their columns' fields, and the column order they are in: the
    fixed-width fields without NULLs first, copied as one block of equal-width rows, so that Arrow's
    join only handles the variable part."""
    fixed = [i for i, f in enumerate(fields) if f.block is not None]
    rest = [i for i, f in enumerate(fields) if f.block is None]
    width = 2 + sum(fields[i].block.shape[1] for i in fixed)
    block = np.empty((n, width), dtype=np.uint8)
    block[:, :2] = np.frombuffer(np.array(len(fields), dtype=">i2").tobytes(), dtype=np.uint8)
    at = 2
    for i in fixed:
        w = fields[i].block.shape[1]
        block[:, at:at + w] = fields[i].block
        at += w
    rows = _binary(n, np.arange(n + 1, dtype=np.int64) * width, block)
    pieces = [p for i in rest for p in fields[i].pieces]
    if pieces:
        rows = pc.binary_join_element_wise(rows, *pieces, _empty())
    return [columns[i] for i in fixed + rest], Payload(rows)
