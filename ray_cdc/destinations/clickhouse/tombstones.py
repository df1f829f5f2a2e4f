"""Partition and range tombstones: kept in side tables, so they keep suppressing late older writes.

`<t>__deleted_partitions` holds the newest deletion time per partition; `<t>__deleted_ranges` every
range delete with its bounds (clustering prefixes, as Cassandra's slice bounds). `Tombstones` holds
those of the partitions a batch touches and answers "the newest tombstone that covers this row".
Range membership compares clustering values in Cassandra's order (per-type comparators, DESC columns
reversed); a static row (clustering all null) is only covered by partition tombstones.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pyarrow as pa

from ray_cdc.schema.model import ColumnSchema
from ray_cdc.schema.value_order import float_key, inet_key, timeuuid_key, uuid_key

_KEYS = {
    "uuid": lambda v: uuid_key(uuid.UUID(bytes=v)), "timeuuid": lambda v: timeuuid_key(uuid.UUID(bytes=v)),
    "varint": int, "decimal": Decimal, "inet": inet_key, "float": float_key, "double": float_key,
}


def _identity(v):
    return v


@dataclass(frozen=True)
class RangeTombstone:
    start: tuple  # clustering prefix (start_size values)
    start_inclusive: bool
    end: tuple
    end_inclusive: bool
    deleted_at: int


class ClusteringOrder:
    """Compares clustering prefixes the way Cassandra orders rows in a partition."""

    def __init__(self, clustering: list[ColumnSchema]):
        self.keys = [_KEYS.get(c.type.name, _identity) for c in clustering]
        self.reversed = [c.reversed for c in clustering]

    def compare(self, row: tuple, bound: tuple) -> int:
        """-1/0/1 of `row`'s first len(bound) values against `bound` (0: the prefix matches)."""
        for key, rev, a, b in zip(self.keys, self.reversed, row, bound):
            ka, kb = key(a), key(b)
            if ka != kb:
                result = -1 if ka < kb else 1
                return -result if rev else result
        return 0

    def covers(self, tombstone: RangeTombstone, clustering: tuple) -> bool:
        if tombstone.start:
            c = self.compare(clustering, tombstone.start)
            if c < 0 or (c == 0 and not tombstone.start_inclusive):
                return False
        if tombstone.end:
            c = self.compare(clustering, tombstone.end)
            if c > 0 or (c == 0 and not tombstone.end_inclusive):
                return False
        return True


@dataclass
class Tombstones:
    """The partition and range tombstones known for some partitions."""

    n_pk: int
    order: ClusteringOrder
    partitions: dict[tuple, int] = field(default_factory=dict)
    ranges: dict[tuple, list[RangeTombstone]] = field(default_factory=dict)

    def add_partition(self, pk: tuple, deleted_at: int) -> None:
        if deleted_at > self.partitions.get(pk, -1):
            self.partitions[pk] = deleted_at

    def add_range(self, pk: tuple, tombstone: RangeTombstone) -> None:
        self.ranges.setdefault(pk, []).append(tombstone)

    def __bool__(self) -> bool:
        return bool(self.partitions or self.ranges)

    def add_partition_rows(self, rows: pa.Table, pk_names: list[str]) -> None:
        """`<t>__deleted_partitions` rows (partition key columns, `deleted_at`)."""
        keys = zip(*[rows.column(n).to_pylist() for n in pk_names]) if rows.num_rows else ()
        for key, t in zip(keys, rows.column("deleted_at").to_pylist() if rows.num_rows else ()):
            self.add_partition(key, t)

    def add_range_rows(self, rows: pa.Table, pk_names: list[str], clustering: list[str]) -> None:
        """`<t>__deleted_ranges` rows (partition key, bounds of clustering prefixes, `deleted_at`)."""
        for row in rows.to_pylist() if rows.num_rows else ():
            pk = tuple(row[n] for n in pk_names)
            self.add_range(pk, range_tombstone(row, clustering))

    def times_of(self, keys: pa.Table) -> np.ndarray:
        """`times` of the keys in a table (one primary key per row); no Python objects when none."""
        out = np.zeros(keys.num_rows, dtype=np.int64)
        if not self:
            return out
        partitions = zip(*[keys.column(i).to_pylist() for i in range(self.n_pk)])
        hit = [i for i, pk in enumerate(partitions) if pk in self.partitions or pk in self.ranges]
        if hit:  # full keys (clustering too) only for the rows of partitions with a tombstone
            some = keys.take(pa.array(hit, pa.int64()))
            out[hit] = self.times(list(zip(*[some.column(i).to_pylist() for i in range(some.num_columns)])))
        return out

    def times(self, keys: list[tuple]) -> np.ndarray:
        """The newest tombstone covering each primary key (0: none)."""
        out = np.zeros(len(keys), dtype=np.int64)
        if not self.partitions and not self.ranges:
            return out
        n_pk, partitions, ranges = self.n_pk, self.partitions, self.ranges
        for i, key in enumerate(keys):
            pk = key[:n_pk]
            t = partitions.get(pk, 0)
            clustering = key[n_pk:]
            if pk in ranges and clustering and clustering[0] is not None:
                for tombstone in ranges[pk]:
                    if tombstone.deleted_at > t and self.order.covers(tombstone, clustering):
                        t = tombstone.deleted_at
            out[i] = t
        return out


def range_tombstone(row: dict, clustering: list[str]) -> RangeTombstone:
    """A `<t>__deleted_ranges` row (as a dict) as a RangeTombstone."""
    start = tuple(row["start"][n] for n in clustering[:row["start_size"]])
    end = tuple(row["end"][n] for n in clustering[:row["end_size"]])
    return RangeTombstone(start, bool(row["start_inclusive"]), end, bool(row["end_inclusive"]),
                          int(row["deleted_at"]))
