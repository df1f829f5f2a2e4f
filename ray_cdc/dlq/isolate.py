"""Finding the refused rows of a batch that a destination refused as a whole.

A destination names the rows it can single out in `WriteResult.rejected`. Some refusals fail a whole
statement instead (a CHECK constraint or a trigger on a PostgreSQL table fails the merge): the
destination raises `RejectedRowsError` without rows, and the batch is bisected, each half written on
its own down to single rows, so only the refused rows go to the DLQ and every other row is applied.

Safe because these writes carry no offsets (the writer commits them after the whole set) and
applying a row twice is a no-op (last writer wins by writetime).
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from ray_cdc.destinations.base import WriteResult
from ray_cdc.errors import RejectedRowsError

WriteRows = Callable[[pa.RecordBatch], WriteResult]


def write_isolating(batch: pa.RecordBatch, write_rows: WriteRows,
                    write_whole: Callable[[], WriteResult] | None = None) -> WriteResult:
    """`write_whole()` (default: `write_rows(batch)`); if the destination refuses the whole batch,
    the rows of `batch` through `write_rows`, halves at a time. Rejected indices refer to `batch`."""
    try:
        return write_whole() if write_whole is not None else write_rows(batch)
    except RejectedRowsError as refused:
        if refused.rows:
            raise  # a destination that knows its bad rows returns them; raising them is a bug there
        return _bisect(batch, write_rows, str(refused))


def _bisect(batch: pa.RecordBatch, write_rows: WriteRows, reason: str) -> WriteResult:
    if batch.num_rows == 1:
        return WriteResult(rows=0, rejected=[(0, reason)])
    middle = batch.num_rows // 2
    total = WriteResult(rows=0)
    for start, part in ((0, batch.slice(0, middle)), (middle, batch.slice(middle))):
        result = write_isolating(part, write_rows)
        total.rows += result.rows
        total.rejected += [(start + index, why) for index, why in result.rejected]
    return total
