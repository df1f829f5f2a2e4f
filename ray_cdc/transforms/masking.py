"""The masking hook: what a destination may see of a batch. A later issue fills it (hash, redact or
drop sensitive columns per destination); today every destination sees every column."""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa

from ray_cdc.schema.model import TableSchema


class Mask(Protocol):
    def __call__(self, batch: pa.RecordBatch, table: TableSchema, destination: str) -> pa.RecordBatch:
        """The batch `destination` receives for `table` (same row count and order: rejected-row
        indices and offsets refer to it)."""


def no_mask(batch: pa.RecordBatch, table: TableSchema, destination: str) -> pa.RecordBatch:
    return batch
