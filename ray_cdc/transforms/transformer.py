"""The Transformer: the transform steps in order, for one set at a time (see the package doc)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from ray_cdc.config.masking import MaskingConfig
from ray_cdc.pipeline.writing import TableBatch, table_batches
from ray_cdc.schema.model import TableSchema
from ray_cdc.transforms.coalesce import coalesce
from ray_cdc.transforms.masking import Mask, Masker, no_mask
from ray_cdc.transforms.ttl import fill_expiry

Step = Callable[[pa.RecordBatch, TableSchema], pa.RecordBatch]


@dataclass(frozen=True)
class TransformSettings:
    coalesce: bool = True  # see benchmarks/transform_coalesce.py for what it saves
    fill_expiry: bool = True
    masking: MaskingConfig | None = None  # None: every destination sees every column in clear
    prepare: bool = True  # run the destinations' `prepare` here (false: their writers do it)

    @classmethod
    def masking_only(cls, masking: MaskingConfig) -> TransformSettings:
        """The stage when `pipeline.transform_stage` is false but masking is configured: nothing
        unmasked may reach a writer (its destination or its DLQ), so the stage stays, masking only."""
        return cls(coalesce=False, fill_expiry=False, masking=masking, prepare=False)

    def mask(self, destinations=None) -> Mask:
        """The Mask of these settings, built where it is used (the key is read there)."""
        return no_mask if self.masking is None else Masker.from_config(self.masking, destinations)


@dataclass
class TransformedSet:
    """A ChangeSet after the transform stage: the same range of the log, per-table `TableBatch`es
    (possibly fewer rows, and the destination's prepared form)."""

    segment_id: int
    end: Any  # CommitLogPosition
    completed: bool
    items: list[TableBatch]
    input_rows: int = 0  # rows before coalescing

    @property
    def rows(self) -> int:
        return sum(i.batch.num_rows for i in self.items)

    def without_batches_of(self, common: TransformedSet) -> TransformedSet:
        """This destination's set with the batches it shares with `common` left out (None): across
        actors, each destination's set then carries only what is its own (its prepared form, a
        masked batch), and the common set, stored once, travels beside it (`with_batches_of`)."""
        items = [TableBatch(i.table, None if i.batch is c.batch else i.batch, i.prepared)
                 for i, c in zip(self.items, common.items, strict=True)]
        return replace(self, items=items)

    def with_batches_of(self, common: TransformedSet) -> TransformedSet:
        """The inverse of `without_batches_of`: the left-out batches taken from `common`."""
        items = [i if i.batch is not None else TableBatch(i.table, c.batch, i.prepared)
                 for i, c in zip(self.items, common.items, strict=True)]
        return replace(self, items=items)


@dataclass
class Transformer:
    settings: TransformSettings = field(default_factory=TransformSettings)
    mask: Mask = no_mask
    # destination name -> an unopened destination (only its pure `prepare` is used); absent: none
    preparers: Mapping[str, Any] = field(default_factory=dict)

    def steps(self) -> list[Step]:
        steps: list[Step] = []
        if self.settings.coalesce:
            steps.append(coalesce)
        if self.settings.fill_expiry:
            steps.append(lambda batch, table: fill_expiry(batch))
        return steps

    def common(self, change_set) -> TransformedSet:
        """The steps every destination shares, once per set."""
        steps = self.steps()
        items = []
        for item in table_batches(change_set):
            batch = item.batch
            for step in steps:
                batch = step(batch, item.table)
            items.append(TableBatch(item.table, batch))
        return TransformedSet(change_set.segment_id, change_set.end, change_set.completed, items,
                              input_rows=change_set.rows)

    def for_destination(self, transformed: TransformedSet, destination: str) -> TransformedSet:
        """Masking, then the destination's `prepare` (when it has one)."""
        return self.for_destinations(transformed, [destination])[destination]

    def for_destinations(self, transformed: TransformedSet, destinations: Sequence[str]) -> dict[str, TransformedSet]:
        """`for_destination` of each destination. A destination whose batch is the same as an earlier
        one's (no masking between them) takes that one's prepared form when its preparer can use it
        (`prepare_from`: a TimescaleDB destination that of a PostgreSQL one, which differ only in
        the tables they name), instead of preparing the same rows again."""
        done: list[tuple[pa.RecordBatch, Any]] = []  # (batch, prepared) of this set
        parts = {}
        for destination in destinations:
            preparer = self.preparers.get(destination) if self.settings.prepare else None
            items = []
            for item in transformed.items:
                table, batch = self.mask(item.batch, item.table, destination)
                prepared = None
                if preparer is not None and callable(getattr(preparer, "prepare", None)) and batch.num_rows:
                    prepared = _reused(preparer, table, batch, done)
                    if prepared is None:
                        prepared = preparer.prepare(table, batch)
                    done.append((batch, prepared))
                items.append(TableBatch(table, batch, prepared))
            parts[destination] = TransformedSet(transformed.segment_id, transformed.end, transformed.completed,
                                                items, transformed.input_rows)
        return parts


def _reused(preparer, table, batch: pa.RecordBatch, done: list) -> Any:
    """The prepared form of `batch` for `preparer` made from one already prepared, or None."""
    reuse = getattr(preparer, "prepare_from", None)
    if reuse is None:
        return None
    for earlier_batch, earlier in done:
        if earlier_batch is batch:
            prepared = reuse(earlier, table)
            if prepared is not None:
                return prepared
    return None
