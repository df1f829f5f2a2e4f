"""Payload bytes: a dead letter's rows as Arrow IPC, which keeps the exact schema and its metadata."""

from __future__ import annotations

import pyarrow as pa


def to_ipc_file(batch: pa.RecordBatch) -> bytes:
    """The IPC *file* format (with a footer): the file store's `.arrow` files, readable by any Arrow tool."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def from_ipc_file(data: bytes) -> pa.RecordBatch:
    reader = pa.ipc.open_file(pa.BufferReader(data))
    return _one_batch([reader.get_batch(i) for i in range(reader.num_record_batches)], reader.schema)


def to_ipc_stream(batch: pa.RecordBatch) -> bytes:
    """The IPC *stream* format: no footer, the compact form for a database column."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def from_ipc_stream(data: bytes) -> pa.RecordBatch:
    reader = pa.ipc.open_stream(pa.BufferReader(data))
    return _one_batch(list(reader), reader.schema)


def _one_batch(batches: list[pa.RecordBatch], schema: pa.Schema) -> pa.RecordBatch:
    # Written as exactly one batch; anything else (a file written by another tool) is combined.
    if len(batches) == 1:
        return batches[0]
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=schema)
    return pa.Table.from_batches(batches, schema=schema).combine_chunks().to_batches()[0]
