"""TTL: every expiring change carries `_expires_at`, so destinations never recompute it.

Cassandra's expiry is the coordinator's local write time + TTL; the log records it (the decoder
fills `_expires_at` from it). Where a change has a TTL but no expiry (a source that does not carry
the local time), the write timestamp stands in for the write time: `_writetime` (µs) + `_ttl` (s).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

EXPIRES_TYPE = pa.timestamp("s", tz="UTC")


def fill_expiry(batch: pa.RecordBatch) -> pa.RecordBatch:
    if "_ttl" not in batch.schema.names or "_expires_at" not in batch.schema.names:
        return batch
    ttl, expires = batch.column("_ttl"), batch.column("_expires_at")
    missing = pc.and_(pc.greater(pc.fill_null(ttl, 0), 0), pc.is_null(expires))
    if not pc.any(missing).as_py():
        return batch  # the usual case: nothing to compute, the batch is handed on untouched
    seconds = pc.add(pc.divide(batch.column("_writetime"), 1_000_000), ttl.cast(pa.int64()))
    computed = pc.cast(seconds, pa.int64()).cast(EXPIRES_TYPE)
    filled = pc.if_else(missing, computed, expires)
    index = batch.schema.get_field_index("_expires_at")
    return batch.set_column(index, batch.schema.field(index), filled)
