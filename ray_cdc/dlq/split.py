"""Splitting a batch a destination partly refused: only the refused rows go to the DLQ."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np
import pyarrow as pa

from ray_cdc.dlq.entry import DeadLetter
from ray_cdc.dlq.table_schema import with_table_schema
from ray_cdc.schema.model import TableSchema


def split_rejected(batch: pa.RecordBatch, rejected: Iterable[tuple[int, str]]
                   ) -> tuple[pa.RecordBatch, pa.RecordBatch, list[str]]:
    """(rows to apply, refused rows in batch order, the reason of each refused row).

    `rejected` is `WriteResult.rejected`: (row index in `batch`, reason). A row named twice keeps its
    first reason. An index outside the batch is a writer bug and raises, rather than dropping a row.
    Both batches keep `batch`'s schema and metadata.
    """
    reasons: dict[int, str] = {}
    for index, reason in rejected:
        if not 0 <= index < batch.num_rows:
            raise IndexError(f"rejected row {index} is outside the batch of {batch.num_rows} rows")
        reasons.setdefault(index, reason)
    bad_rows = sorted(reasons)
    mask = np.zeros(batch.num_rows, dtype=bool)
    mask[bad_rows] = True
    good = batch.filter(pa.array(~mask))
    bad = batch.take(pa.array(bad_rows, pa.int64()))
    return good, bad, [reasons[i] for i in bad_rows]


def dead_letters(bad: pa.RecordBatch, reasons: list[str], *, destination: str, node: str, error_class: str,
                 now: datetime | None = None, table: TableSchema | None = None) -> list[DeadLetter]:
    """One entry per distinct reason (rows failing the same way are judged and replayed together),
    in order of each reason's first row. `table`: the rows' schema, kept in the payload for replay."""
    if len(reasons) != bad.num_rows:
        raise ValueError(f"{len(reasons)} reasons for {bad.num_rows} rows")
    if table is not None:
        bad = with_table_schema(bad, table)
    groups: dict[str, list[int]] = {}
    for row, reason in enumerate(reasons):
        groups.setdefault(reason, []).append(row)
    return [DeadLetter.new(bad.take(pa.array(rows, pa.int64())), destination=destination, node=node,
                           error_class=error_class, message=reason, now=now)
            for reason, rows in groups.items()]
