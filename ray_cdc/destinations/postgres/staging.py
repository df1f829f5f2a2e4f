"""A batch -> the COPY payload of each staging table (see merge.py for their layout), with no
connection: this is the CPU-heavy half of a write, and can run anywhere.

Rows are split by `_op`: writes (insert/update) of clustering rows, writes of static rows (clustering
columns null), row deletes, partition deletes, range deletes. Every staged row keeps its index in the
batch, so a rejected one is reported by it. Values are encoded a column at a time (fields.py) into
binary COPY tuples (copy_binary.py).

Direct path: a write stage whose rows can go straight into the state table (no duplicate keys, no
non-frozen collection/UDT column, no column staged as text, every writetime > 0, no value outside the
columns its change writes) also gets `Stage.direct`: the same rows as COPY tuples of the state table
itself, with the merge's bookkeeping (`_ts`, `_row_ts`, `_wt`, `_expires_at`; `_row_del` takes its
default 0) computed here exactly as merge.upsert_sql computes them for a new key with no tombstone
covering it. Whether a batch may take it is decided by the writer (client.py: no tombstones, keys
new); the staging payload of such a stage is only built if the writer falls back to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.commitlog.arrow_batches import cells_column
from ray_cdc.destinations.postgres import cells
from ray_cdc.destinations.postgres.ckey import order_key_array, order_keys, range_bounds
from ray_cdc.destinations.postgres.copy_binary import (
    Field,
    Payload,
    bytes_field,
    fixed_field,
    payload,
    prefix_field,
    var_field,
)
from ray_cdc.destinations.postgres.ddl import TableNames, Target, pg_type
from ray_cdc.destinations.postgres.fields import dumped_field, encode_column
from ray_cdc.destinations.postgres.values import RowProblems, stage_type
from ray_cdc.schema.model import ColumnSchema

_PG_EPOCH_S = 946_684_800  # 2000-01-01 in s since 1970


@dataclass
class Direct:
    """The rows of a write stage as COPY tuples of the state table (see the module doc).

    The tuples are built where they are loaded, on first use, from what they are made of: the user
    columns' encoded fields (the same objects as the stage's deferred payload, so a prepared batch
    crossing processes carries them once) and the bookkeeping's inputs (8-17 bytes a row, where the
    built `_ts` array alone is 20 + 12 per value column). A transform stage's prepared batch is then
    about half the size it was with the tuples built."""

    user_fields: list[tuple[str, Field]]
    masks: np.ndarray  # per row: which value columns the change writes (bit i: column i)
    writetimes: np.ndarray  # int64
    inserts: np.ndarray  # bool: the change is an INSERT (its row marker's time is the writetime)
    expires: Field
    n_values: int
    keys: pa.RecordBatch  # the key columns, for the writer's probe of existing keys
    _built: tuple[list[str], Payload] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of_payload(cls, columns: list[str], rows: Payload, keys: pa.RecordBatch) -> Direct:
        return cls([], np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, bool), None, 0, keys,
                   (columns, rows))

    @property
    def columns(self) -> list[str]:
        return self._build()[0]

    @property
    def payload(self) -> Payload:
        return self._build()[1]

    def take(self, rows: np.ndarray) -> Direct:
        return Direct.of_payload(self.columns, self.payload.take(rows), self.keys.take(pa.array(rows, pa.int64())))

    def _build(self) -> tuple[list[str], Payload]:
        if self._built is None:
            wt = self.writetimes
            fields = [*self.user_fields,
                      ("_ts", _ts_field(self.masks, wt, self.n_values)),
                      ("_row_ts", fixed_field(np.where(self.inserts, wt, 0).astype(">i8"))),
                      ("_wt", fixed_field(wt.astype(">i8"))),
                      ("_expires_at", self.expires)]
            self._built = payload([n for n, _ in fields], [f for _, f in fields], len(self.keys))
        return self._built


@dataclass
class Stage:
    columns: list[str]
    types: list[str]
    payload: Payload | None  # one binary COPY tuple per staged row (None: deferred, see `materialize`)
    index: np.ndarray  # batch row of each staged row
    duplicates: bool = False  # some key appears more than once (the merge must coalesce)
    direct: Direct | None = None  # the direct path's payload, when the stage qualifies for it
    deferred: list | None = None  # the fields of a payload not built yet

    def __len__(self) -> int:
        return len(self.index)

    def materialize(self) -> Stage:
        """Build the staging payload if it was deferred (a direct-path stage the writer falls back on)."""
        if self.payload is None:
            self.columns, self.payload = payload(self.columns, self.deferred, len(self.index))
            self.deferred = None
        return self


@dataclass
class StagedBatch:
    writes: Stage | None = None
    static: Stage | None = None
    partitions: Stage | None = None
    row_deletes: Stage | None = None
    ranges: Stage | None = None
    problems: RowProblems = field(default_factory=RowProblems)

    def stages(self) -> dict[str, Stage]:
        return {k: v for k, v in vars(self).items() if isinstance(v, Stage) and len(v)}


def _ops(batch: pa.RecordBatch) -> pa.Array:
    return batch.column("_op")


def _is(ops: pa.Array, *values: str) -> np.ndarray:
    return pc.is_in(ops, pa.array(values, ops.type)).to_numpy(zero_copy_only=False)


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
    starts, sizes = offsets[:-1] - offsets[0], np.diff(offsets)
    # reduceat ORs bits[starts[i]:starts[i + 1]]; it reads one element for an empty row (reset below),
    # and cannot take the starts of the trailing empty rows (== len(bits)), which stay 0
    inside = int(np.searchsorted(starts, len(bits)))
    masks[:inside] = np.bitwise_or.reduceat(bits, starts[:inside])
    masks[sizes == 0] = 0
    return masks


class _Shift(RowProblems):
    """Problems found in a sub-batch, recorded under the row's index in the whole batch."""

    def __init__(self, problems: RowProblems, rows: np.ndarray):
        super().__init__()
        self._problems, self._rows = problems, rows

    def add(self, row: int, column: str, reason: str) -> None:
        self._problems.add(int(self._rows[row]), column, reason)


def _encode(sub: pa.RecordBatch, columns, problems: RowProblems) -> list[tuple[str, str, Field]]:
    return [(c.name, stage_type(c.type), encode_column(c.type, sub.column(c.name), c.name, problems))
            for c in columns]


def _stage(fields: list[tuple[str, str, Field]], rows: np.ndarray, *, defer: bool = False) -> Stage:
    types = {name: t for name, t, _ in fields}
    if defer:
        return Stage([name for name, _, _ in fields], [types[name] for name, _, _ in fields], None, rows,
                     deferred=[f for _, _, f in fields])
    columns, encoded = payload([name for name, _, _ in fields], [f for _, _, f in fields], len(rows))
    return Stage(columns, [types[c] for c in columns], encoded, rows)


def _rows_of(batch: pa.RecordBatch, rows: np.ndarray, columns: list[str]) -> pa.RecordBatch:
    sub = batch.select(columns)
    return sub if len(rows) == len(batch) else sub.take(pa.array(rows, pa.int64()))  # rows ascend


def _int_field(values: np.ndarray, dtype: str) -> Field:
    return fixed_field(np.asarray(values).astype(dtype))


def _bigint(array: pa.Array) -> Field:
    valid = array.is_valid().to_numpy(zero_copy_only=False) if array.null_count else None
    return fixed_field(pc.fill_null(array, 0).to_numpy(zero_copy_only=False).astype(">i8"), valid)


def _timestamptz_seconds(array: pa.Array) -> Field:
    """`_expires_at` (s since 1970; Cassandra keeps it in 32 bits, always in range) -> timestamptz."""
    seconds = pc.fill_null(array.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    valid = array.is_valid().to_numpy(zero_copy_only=False) if array.null_count else None
    return fixed_field(((seconds - _PG_EPOCH_S) * 1_000_000).astype(">i8"), valid)


def _write_stage(batch, target: Target, rows: np.ndarray, masks, problems, *, with_ck: bool) -> Stage:
    keys, values = target.keys, target.values
    complex_columns = [c for c in values if c.is_complex]  # element-wise state (cells.py)
    sub = _rows_of(batch, rows, [c.name for c in keys + values] + [cells_column(c.name) for c in complex_columns]
                   + ["_op", "_writetime", "_expires_at"])
    shifted = _Shift(problems, rows)
    fields = _encode(sub, keys + values, shifted)
    fields += [(cells_column(c.name), "jsonb",
                dumped_field(cells.stage_states(c, sub.column(cells_column(c.name))), c.name, shifted))
               for c in complex_columns]
    if with_ck:
        ck_cols = _ck_cols(target)
        keyed = order_key_array(ck_cols, [sub.column(c.name) for c in ck_cols]) if target.has_ck else \
            pa.nulls(len(rows), pa.binary())
        fields.append(("_ck", "bytea", var_field(keyed)))
    wt, expires = _bigint(sub.column("_writetime")), _timestamptz_seconds(sub.column("_expires_at"))
    inserts = pc.equal(sub.column("_op"), "insert").to_numpy(zero_copy_only=False)
    user_fields = list(fields)
    fields += [("_wt", "bigint", wt),
               ("_mask", "bigint", _int_field(masks[rows], ">i8")),
               ("_ins", "boolean", _int_field(inserts, "u1")),
               ("_expires_at", "timestamptz", expires),
               ("_seq", "integer", _int_field(rows, ">i4"))]
    duplicates = _has_duplicates(sub, keys)
    direct = None
    if not duplicates and _direct_ok(sub, target, masks[rows]):
        direct = _direct(sub, target, user_fields, masks[rows], inserts, expires)
    stage = _stage(fields, rows, defer=direct is not None)
    stage.duplicates = duplicates
    stage.direct = direct
    return stage


def _direct_ok(sub: pa.RecordBatch, target: Target, masks: np.ndarray) -> bool:
    """Whether the rows can be COPYed as state rows: the merge would neither cast nor combine anything,
    and would keep every value the batch holds (a value outside `_present`, or written at a writetime
    <= 0, would be NULLed by its `t_i > tomb` check)."""
    if any(c.is_complex for c in target.values):
        return False
    if any(stage_type(c.type) != pg_type(c.type) for c in target.keys + target.values):
        return False
    wt = sub.column("_writetime")
    if wt.null_count or (len(wt) and pc.min(wt).as_py() <= 0):
        return False
    for i, c in enumerate(target.values):
        column = sub.column(c.name)
        if column.null_count == len(column):
            continue
        unset = (masks & (1 << i)) == 0
        if bool((column.is_valid().to_numpy(zero_copy_only=False) & unset).any()):
            return False
    return True


def _ts_field(masks: np.ndarray, wt: np.ndarray, n_values: int) -> Field:
    """`_ts bigint[]` in binary array form: the change's writetime for the columns it writes, else 0;
    the empty array where that is the writetime of every column (merge.stored_ts: a row one change
    wrote whole, the usual insert, whose array would be most of its bookkeeping's bytes)."""
    n = len(masks)
    empty = np.array([0, 0, 20], dtype=">i4").view(np.uint8)  # no dimensions, no NULLs, int8 elements
    if not n_values:
        return fixed_field(np.broadcast_to(empty, (n, len(empty))))
    bits = (masks[:, None] >> np.arange(n_values, dtype=np.int64)[None, :]) & 1
    ts = np.where(bits == 1, wt[:, None], 0)
    whole = (ts == wt[:, None]).all(axis=1)
    if whole.all():
        return fixed_field(np.broadcast_to(empty, (n, len(empty))))
    header = np.array([1, 0, 20, n_values, 1], dtype=">i4").view(np.uint8)
    width = len(header) + 12 * n_values
    out = np.empty((n, width), dtype=np.uint8)
    out[:, :len(header)] = header
    elements = np.empty((n, n_values), dtype=[("len", ">i4"), ("ts", ">i8")])
    elements["len"] = 8
    elements["ts"] = ts
    out[:, len(header):] = elements.view(np.uint8).reshape(n, -1)
    if not whole.any():
        return fixed_field(out)
    out[whole, :len(empty)] = empty
    return prefix_field(out, np.where(whole, len(empty), width))


def _direct(sub: pa.RecordBatch, target: Target, user_fields, masks: np.ndarray, inserts: np.ndarray,
            expires: Field) -> Direct:
    wt = sub.column("_writetime").to_numpy(zero_copy_only=False).astype(np.int64)
    return Direct([(name, f) for name, _, f in user_fields if name != "_ck" or target.has_ck], masks, wt,
                  inserts, expires, len(target.values), sub.select([c.name for c in target.keys]))


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
    sub = _rows_of(batch, rows, [c.name for c in columns] + ["_writetime"])
    fields = _encode(sub, columns, _Shift(problems, rows))
    return _stage(fields + [("deleted_at", "bigint", _bigint(sub.column("_writetime")))], rows)


def _range_stage(batch, names: TableNames, rows: np.ndarray, problems) -> Stage:
    table = names.table
    pk = table.partition_key
    sub = _rows_of(batch, rows, [c.name for c in pk] + ["_range", "_writetime"])
    fields = _encode(sub, pk, _Shift(problems, rows))
    ranges = sub.column("_range")
    bounds = []
    for side in ("start", "end"):
        struct = ranges.field(side)
        sizes = ranges.field(f"{side}_size").to_pylist()
        keys = order_keys(table.clustering, [struct.field(c.name) for c in table.clustering], sizes)
        bounds.append([None if s == 0 else k for s, k in zip(sizes, keys)])
    incl_s = ranges.field("start_inclusive").to_pylist()
    incl_e = ranges.field("end_inclusive").to_pylist()
    lo_hi = [range_bounds(s, si, e, ei) for s, si, e, ei in zip(bounds[0], incl_s, bounds[1], incl_e)]
    fields += [("lo", "bytea", bytes_field([lo for lo, _ in lo_hi])),
               ("hi", "bytea", bytes_field([hi for _, hi in lo_hi])),
               ("deleted_at", "bigint", _bigint(sub.column("_writetime")))]
    return _stage(fields, rows)


def stage_batch(names: TableNames, batch: pa.RecordBatch) -> StagedBatch:
    table = names.table
    ops = _ops(batch)
    out = StagedBatch()
    is_write = _is(ops, "insert", "update")
    static_rows = np.zeros(len(batch), dtype=bool)
    if names.static is not None:
        first_ck = batch.column(table.clustering[0].name)
        static_rows = is_write & first_ck.is_null().to_numpy(zero_copy_only=False)
    problems = out.problems
    rows_idx = np.flatnonzero(is_write & ~static_rows)
    if len(rows_idx):
        out.writes = _write_stage(batch, names.rows, rows_idx, _present_masks(batch, names.rows.values),
                                  problems, with_ck=True)
    static_idx = np.flatnonzero(static_rows)
    if len(static_idx):
        out.static = _write_stage(batch, names.static, static_idx, _present_masks(batch, names.static.values),
                                  problems, with_ck=False)
    pd_idx = np.flatnonzero(_is(ops, "partition_delete"))
    if len(pd_idx):
        out.partitions = _delete_stage(batch, table.partition_key, pd_idx, problems)
    rd_idx = np.flatnonzero(_is(ops, "delete"))
    if len(rd_idx) and table.clustering:
        out.row_deletes = _delete_stage(batch, table.partition_key + table.clustering, rd_idx, problems)
    elif len(rd_idx):  # a row delete in a table without clustering deletes its only row: the partition
        out.partitions = _merge_stages(out.partitions, _delete_stage(batch, table.partition_key, rd_idx, problems))
    rg_idx = np.flatnonzero(_is(ops, "range_delete"))
    if len(rg_idx):
        out.ranges = _range_stage(batch, names, rg_idx, problems)
    _drop_problem_rows(out)
    return out


def _merge_stages(a: Stage | None, b: Stage) -> Stage:
    if a is None:
        return b
    return Stage(a.columns, a.types, Payload(pa.concat_arrays([a.payload.rows, b.payload.rows])),
                 np.concatenate([a.index, b.index]))


def _drop_problem_rows(out: StagedBatch) -> None:
    if not out.problems:
        return
    bad = np.fromiter(out.problems.keys(), dtype=np.int64)
    for stage in out.stages().values():
        keep = np.flatnonzero(~np.isin(stage.index, bad))
        stage.materialize()
        stage.payload = stage.payload.take(keep)
        stage.index = stage.index[keep]
        if stage.direct is not None:
            stage.direct = stage.direct.take(keep)
