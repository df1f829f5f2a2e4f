"""A batch -> the rows COPY puts in each staging table (see merge.py for their layout).

Rows are split by `_op`: writes (insert/update) of clustering rows, writes of static rows (clustering
columns null), row deletes, partition deletes, range deletes. Every staged row keeps its index in the
batch, so a rejected one is reported by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.commitlog.arrow_batches import cells_column
from ray_cdc.destinations.postgres import cells
from ray_cdc.destinations.postgres.ckey import order_keys, range_bounds
from ray_cdc.destinations.postgres.ddl import TableNames, Target
from ray_cdc.destinations.postgres.values import RowProblems, column_values, stage_type
from ray_cdc.schema.model import ColumnSchema


@dataclass
class Stage:
    columns: list[str]
    types: list[str]
    rows: list[tuple] = field(default_factory=list)
    index: list[int] = field(default_factory=list)  # batch row of each staged row
    duplicates: bool = False  # some key appears more than once (the merge must coalesce)


@dataclass
class StagedBatch:
    writes: Stage | None = None
    static: Stage | None = None
    partitions: Stage | None = None
    row_deletes: Stage | None = None
    ranges: Stage | None = None
    problems: RowProblems = field(default_factory=RowProblems)

    def stages(self) -> dict[str, Stage]:
        return {k: v for k, v in vars(self).items() if isinstance(v, Stage) and v.rows}


def _ops(batch: pa.RecordBatch) -> np.ndarray:
    return np.asarray(batch.column("_op").to_pylist(), dtype=object)


def _present_masks(batch: pa.RecordBatch, values: tuple[ColumnSchema, ...]) -> np.ndarray:
    """Bit i set where the change writes value column i (`_present`), vectorised over the list column."""
    present = batch.column("_present")
    n = len(batch)
    masks = np.zeros(n, dtype=np.int64)
    if not values:
        return masks
    flat = present.flatten()
    if not len(flat):
        return masks
    bits_by_name = {c.name: 1 << i for i, c in enumerate(values)}
    dictionary = pc.dictionary_encode(flat)
    names = dictionary.dictionary.to_pylist()
    bit_of = np.array([bits_by_name.get(name, 0) for name in names], dtype=np.int64)
    bits = bit_of[dictionary.indices.to_numpy(zero_copy_only=False)]
    offsets = present.offsets.to_numpy()
    rows = np.repeat(np.arange(n), np.diff(offsets))
    np.bitwise_or.at(masks, rows, bits)
    return masks


def _convert(batch: pa.RecordBatch, columns, problems: RowProblems, rows: np.ndarray) -> list[list]:
    sub = batch.take(pa.array(rows, pa.int64()))
    out = []
    for c in columns:
        converted = column_values(c.type, sub.column(c.name), c.name, _Shift(problems, rows))
        out.append(converted)
    return out


class _Shift(RowProblems):
    """Problems found in a sub-batch, recorded under the row's index in the whole batch."""

    def __init__(self, problems: RowProblems, rows: np.ndarray):
        super().__init__()
        self._problems, self._rows = problems, rows

    def add(self, row: int, column: str, reason: str) -> None:
        self._problems.add(int(self._rows[row]), column, reason)


def _write_stage(batch, target: Target, rows: np.ndarray, masks, problems, *, with_ck: bool) -> Stage:
    keys, values = target.keys, target.values
    converted = _convert(batch, keys + values, problems, rows)
    sub = batch.take(pa.array(rows, pa.int64()))
    ck = order_keys(target.keys[len(target.keys) - len(_ck_cols(target)):],
                    [sub.column(c.name) for c in _ck_cols(target)]) if target.has_ck else None
    wt = sub.column("_writetime").to_pylist()
    ins = [op == "insert" for op in sub.column("_op").to_pylist()]
    expires = sub.column("_expires_at").to_pylist()
    mask = masks[rows].tolist()
    meta = [wt, mask, ins, expires, rows.tolist()]
    complex_columns = [c for c in values if c.is_complex]  # element-wise state (cells.py)
    states = [cells.stage_states(c, sub.column(cells_column(c.name))) for c in complex_columns]
    columns = [c.name for c in keys + values] + [cells_column(c.name) for c in complex_columns] + \
        (["_ck"] if with_ck else []) + ["_wt", "_mask", "_ins", "_expires_at", "_seq"]
    types = [stage_type(c.type) for c in keys + values] + ["jsonb"] * len(complex_columns) + \
        (["bytea"] if with_ck else []) + ["bigint", "bigint", "boolean", "timestamptz", "integer"]
    parts = converted + states + ([ck if ck is not None else [None] * len(rows)] if with_ck else []) + meta
    stage = Stage(columns, types, list(zip(*parts)), rows.tolist())
    stage.duplicates = _has_duplicates(sub, keys)
    return stage


def _ck_cols(target: Target) -> tuple[ColumnSchema, ...]:
    return tuple(c for c in target.keys if c.kind.value == "clustering")


def _has_duplicates(sub: pa.RecordBatch, keys) -> bool:
    if len(sub) < 2:
        return False
    table = pa.Table.from_batches([sub.select([c.name for c in keys])])
    try:
        groups = table.group_by([c.name for c in keys]).aggregate([])
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return True  # a key type group_by cannot hash: coalescing is always correct
    return groups.num_rows < len(sub)


def _delete_stage(batch, columns, rows: np.ndarray, problems) -> Stage:
    converted = _convert(batch, columns, problems, rows)
    wt = batch.column("_writetime").take(pa.array(rows, pa.int64())).to_pylist()
    return Stage([c.name for c in columns] + ["deleted_at"],
                 [stage_type(c.type) for c in columns] + ["bigint"],
                 list(zip(*converted, wt)), rows.tolist())


def _range_stage(batch, names: TableNames, rows: np.ndarray, problems) -> Stage:
    table = names.table
    pk = table.partition_key
    converted = _convert(batch, pk, problems, rows)
    ranges = batch.column("_range").take(pa.array(rows, pa.int64()))
    wt = batch.column("_writetime").take(pa.array(rows, pa.int64())).to_pylist()
    bounds = []
    for side in ("start", "end"):
        struct = ranges.field(side)
        sizes = ranges.field(f"{side}_size").to_pylist()
        keys = order_keys(table.clustering, [struct.field(c.name) for c in table.clustering], sizes)
        bounds.append([None if s == 0 else k for s, k in zip(sizes, keys)])
    incl_s = ranges.field("start_inclusive").to_pylist()
    incl_e = ranges.field("end_inclusive").to_pylist()
    lo_hi = [range_bounds(s, si, e, ei) for s, si, e, ei in zip(bounds[0], incl_s, bounds[1], incl_e)]
    rows_out = [(*keys, lo, hi, t) for keys, (lo, hi), t in zip(zip(*converted), lo_hi, wt)]
    return Stage([c.name for c in pk] + ["lo", "hi", "deleted_at"],
                 [stage_type(c.type) for c in pk] + ["bytea", "bytea", "bigint"], rows_out, rows.tolist())


def stage_batch(names: TableNames, batch: pa.RecordBatch) -> StagedBatch:
    table = names.table
    ops = _ops(batch)
    out = StagedBatch()
    is_write = (ops == "insert") | (ops == "update")
    static_rows = np.zeros(len(batch), dtype=bool)
    if names.static is not None:
        first_ck = batch.column(table.clustering[0].name)
        static_rows = is_write & np.asarray(first_ck.is_null().to_pylist(), dtype=bool)
    problems = out.problems
    rows_idx = np.flatnonzero(is_write & ~static_rows)
    if len(rows_idx):
        out.writes = _write_stage(batch, names.rows, rows_idx, _present_masks(batch, names.rows.values),
                                  problems, with_ck=True)
    static_idx = np.flatnonzero(static_rows)
    if len(static_idx):
        out.static = _write_stage(batch, names.static, static_idx, _present_masks(batch, names.static.values),
                                  problems, with_ck=False)
    pd_idx = np.flatnonzero(ops == "partition_delete")
    if len(pd_idx):
        out.partitions = _delete_stage(batch, table.partition_key, pd_idx, problems)
    rd_idx = np.flatnonzero(ops == "delete")
    if len(rd_idx) and table.clustering:
        out.row_deletes = _delete_stage(batch, table.partition_key + table.clustering, rd_idx, problems)
    elif len(rd_idx):  # a row delete in a table without clustering deletes its only row: the partition
        out.partitions = _merge_stages(out.partitions, _delete_stage(batch, table.partition_key, rd_idx, problems))
    rg_idx = np.flatnonzero(ops == "range_delete")
    if len(rg_idx):
        out.ranges = _range_stage(batch, names, rg_idx, problems)
    _drop_problem_rows(out)
    return out


def _merge_stages(a: Stage | None, b: Stage) -> Stage:
    if a is None:
        return b
    return Stage(a.columns, a.types, a.rows + b.rows, a.index + b.index)


def _drop_problem_rows(out: StagedBatch) -> None:
    if not out.problems:
        return
    for stage in out.stages().values():
        keep = [i for i, row in enumerate(stage.index) if row not in out.problems]
        stage.rows = [stage.rows[i] for i in keep]
        stage.index = [stage.index[i] for i in keep]
