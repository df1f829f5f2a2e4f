"""The transform stage without Ray: coalescing (checked against a reference reconciler over random
change sequences, seeds printed), TTL expiry filling, the masking hook and the destination's
`prepare` through the Transformer."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timezone

import pyarrow as pa
import pytest

from ray_cdc.commitlog.arrow_batches import arrow_batches
from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.reader import ChangeSet, DecodedMutation
from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
from ray_cdc.schema.types import parse_cql_type
from ray_cdc.transforms import Transformer, TransformSettings, coalesce, fill_expiry

t = parse_cql_type
TABLE = TableSchema("ks", "t", uuid.uuid5(uuid.NAMESPACE_OID, "ks.t"), (
    ColumnSchema("id", t("bigint"), ColumnKind.PARTITION_KEY), ColumnSchema("ck", t("int"), ColumnKind.CLUSTERING),
    ColumnSchema("a", t("text"), ColumnKind.REGULAR), ColumnSchema("b", t("int"), ColumnKind.REGULAR),
    ColumnSchema("s", t("text"), ColumnKind.STATIC), ColumnSchema("m", t("map<int, int>"), ColumnKind.REGULAR)))


def batch_of(*steps, segment: int = 7) -> pa.RecordBatch:
    decoded = []
    for i, (pk, step) in enumerate(steps):
        builder = MutationBuilder(TABLE, {"id": pk})
        step(builder)
        decoded.append(DecodedMutation(CommitLogPosition(segment, 100 + i), builder.mutation()))
    return pa.Table.from_batches([b for _, b in arrow_batches(decoded)]).combine_chunks().to_batches()[0]


# --- a reference reconciler over batch rows (the destinations' rules, written independently) ---------


def reconcile(batch: pa.RecordBatch, earlier_tombstones: dict) -> dict:
    """key -> {column: value} of live rows, after `earlier_tombstones` (key -> time) and the batch."""
    cells: dict = {}
    liveness: dict = {}
    tombs = dict(earlier_tombstones)
    parts: dict = {}
    for row in batch.to_pylist():
        key, ts = (row["id"], row["ck"]), row["_writetime"]
        if row["_op"] == "delete":
            tombs[key] = max(tombs.get(key, -1), ts)
        elif row["_op"] == "partition_delete":
            parts[row["id"]] = max(parts.get(row["id"], -1), ts)
        else:
            for column in row["_present"]:
                if column == "m":
                    continue  # element-wise; the checks below only compare simple columns
                old = cells.setdefault(key, {}).get(column)
                if old is None or ts >= old[0]:
                    cells[key][column] = (ts, row[column])
            if row["_op"] == "insert" and ts >= liveness.get(key, -1):
                liveness[key] = ts
    out = {}
    for key in set(cells) | set(liveness):
        floor = max(tombs.get(key, -1), parts.get(key[0], -1))
        live = {c: v for c, (ts, v) in cells.get(key, {}).items() if ts > floor and v is not None}
        if live or liveness.get(key, -1) > floor:
            out[key] = live
    return out


def random_steps(rng: random.Random, n: int):
    steps = []
    for _ in range(n):
        pk, ck, ts = rng.randrange(2), rng.randrange(3), rng.randrange(1, 40)
        kind = rng.choices(["insert", "update", "delete", "pdelete", "static", "map"], [4, 4, 1, 0.3, 1, 0.5])[0]
        value = {"a": f"v{rng.randrange(100)}", "b": rng.randrange(100)}
        cols = dict(rng.sample(sorted(value.items()), rng.randint(1, 2)))
        if kind == "insert":
            steps.append((pk, lambda m, ck=ck, cols=cols, ts=ts: m.insert({"ck": ck}, cols, timestamp=ts)))
        elif kind == "update":
            steps.append((pk, lambda m, ck=ck, cols=cols, ts=ts: m.update({"ck": ck}, cols, timestamp=ts)))
        elif kind == "delete":
            steps.append((pk, lambda m, ck=ck, ts=ts: m.delete_row({"ck": ck}, timestamp=ts)))
        elif kind == "pdelete":
            steps.append((pk, lambda m, ts=ts: m.delete_partition(timestamp=ts)))
        elif kind == "static":
            steps.append((pk, lambda m, ts=ts: m.static({"s": f"s{ts}"}, timestamp=ts)))
        else:
            steps.append((pk, lambda m, ck=ck, ts=ts: m.update({"ck": ck}, {"m": {ts: ts}}, timestamp=ts)))
    return steps


@pytest.mark.parametrize("trial", range(40))
def test_coalescing_never_changes_the_reconciled_state(trial):
    seed = random.randrange(1 << 30)
    print(f"seed={seed}")
    rng = random.Random(seed)
    raw = batch_of(*random_steps(rng, rng.randint(2, 30)))
    earlier = {(pk, ck): rng.randrange(0, 45) for pk in range(2) for ck in (0, 1, 2, None) if rng.random() < 0.4}
    coalesced = coalesce(raw, TABLE)
    assert coalesced.schema == raw.schema and coalesced.num_rows <= raw.num_rows
    assert reconcile(coalesced, earlier) == reconcile(raw, earlier)
    kept = set(coalesced.column("_position").to_pylist())
    assert kept <= set(raw.column("_position").to_pylist())  # rows are dropped, never made up


@pytest.mark.parametrize("trial", range(20))
def test_repeated_key_rows_matches_a_reference(trial):
    """The combined-code detection of repeated keys finds exactly the rows whose (nullable,
    multi-column, string and int) key occurs more than once, and nothing when no key repeats."""
    from ray_cdc.transforms.coalesce import _repeated_key_rows

    seed = random.randrange(1 << 30)
    print(f"seed={seed}")
    rng = random.Random(seed)
    n = rng.randint(0, 400)
    spread = rng.choice([3, 50, 10**6])
    ids = [rng.randrange(spread) for _ in range(n)]
    cks = [None if rng.random() < 0.1 else rng.randrange(spread) for _ in range(n)]
    batch = pa.record_batch({"id": pa.array(ids, pa.int64()), "ck": pa.array(cks, pa.int32())})
    expected = [i for i, k in enumerate(zip(ids, cks)) if list(zip(ids, cks)).count(k) > 1]
    assert _repeated_key_rows(batch, TABLE).tolist() == expected


def test_coalescing_drops_exactly_the_shadowed_writes():
    raw = batch_of(
        (1, lambda m: m.insert({"ck": 1}, {"a": "x", "b": 1}, timestamp=10)),  # shadowed by the INSERT at 30
        (1, lambda m: m.update({"ck": 1}, {"a": "y"}, timestamp=20)),  # shadowed: a rewritten at 30
        (1, lambda m: m.update({"ck": 2}, {"a": "k"}, timestamp=50)),  # newer than the later write: kept
        (1, lambda m: m.delete_row({"ck": 1}, timestamp=25)),  # a tombstone: always kept
        (1, lambda m: m.insert({"ck": 1}, {"a": "z", "b": 2}, timestamp=30)),
        (1, lambda m: m.update({"ck": 2}, {"a": "old"}, timestamp=40)),
        (1, lambda m: m.update({"ck": 3}, {"m": {1: 1}}, timestamp=5)),  # a collection: kept
        (1, lambda m: m.update({"ck": 3}, {"m": {2: 2}}, timestamp=6)),
        (1, lambda m: m.insert({"ck": 4}, {"a": "p"}, timestamp=5)),  # INSERT: its liveness outlives
        (1, lambda m: m.update({"ck": 4}, {"a": "q"}, timestamp=9)),  # an UPDATE of all its columns
    )
    out = coalesce(raw, TABLE)
    assert out.column("_position").to_pylist() == [102, 103, 104, 105, 106, 107, 108, 109]


def test_fill_expiry_only_where_missing():
    raw = batch_of((1, lambda m: m.insert({"ck": 1}, {"a": "x"}, timestamp=2_000_000_000_000, ttl=60,
                                           now=1_000)),
                   (1, lambda m: m.insert({"ck": 2}, {"a": "y"}, timestamp=3_000_000)))
    assert fill_expiry(raw) is raw  # the decoder filled it: nothing to do
    expires = raw.schema.get_field_index("_expires_at")
    stripped = raw.set_column(expires, raw.schema.field(expires), pa.nulls(2, raw.schema.field(expires).type))
    filled = fill_expiry(stripped).column("_expires_at").to_pylist()
    assert filled == [datetime.fromtimestamp(2_000_000 + 60, timezone.utc), None]  # writetime (µs) + ttl


class UpperNotes:
    """A destination's pure `prepare` (the shape the destinations are getting): batch -> its form."""

    name = "pg"

    def prepare(self, table, batch):
        return ("prepared", table.name, batch.num_rows)


def test_transformer_common_steps_then_mask_and_prepare_per_destination():
    raw = batch_of((1, lambda m: m.update({"ck": 1}, {"a": "old"}, timestamp=1)),
                   (1, lambda m: m.update({"ck": 1}, {"a": "new"}, timestamp=2)))
    change_set = ChangeSet(7, CommitLogPosition(7, 101), [(TABLE, raw)], completed=True)
    masked = []

    def mask(batch, table, destination):
        masked.append((table.name, destination, batch.num_rows))
        return table, batch

    transformer = Transformer(TransformSettings(coalesce=True), mask=mask, preparers={"pg": UpperNotes()})
    common = transformer.common(change_set)
    assert (common.rows, common.input_rows, common.completed, common.end) == (1, 2, True, change_set.end)
    for_pg = transformer.for_destination(common, "pg")
    for_ch = transformer.for_destination(common, "ch")
    assert [i.prepared for i in for_pg.items] == [("prepared", "t", 1)]
    assert [i.prepared for i in for_ch.items] == [None]  # no prepare: the writer uses write()
    assert masked == [("t", "pg", 1), ("t", "ch", 1)]
    off = Transformer(TransformSettings(coalesce=False)).common(change_set)
    assert off.rows == 2
