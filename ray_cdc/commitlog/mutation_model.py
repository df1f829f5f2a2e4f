"""The structure of a serialized mutation (format doc §7–§12), kept faithful to the bytes.

Decoding keeps raw value bytes and the flags as written, so the writer can re-encode a decoded
mutation into identical bytes; typed values are produced later, by `changes.py` and `arrow.py`.
Cells are plain tuples (a NamedTuple), because a mutation carries many of them and tuples are
the cheapest object CPython builds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple
from uuid import UUID

from ray_cdc.schema.model import TableSchema

# Sentinels (§12.2)
NO_TIMESTAMP = -(1 << 63)
NO_DELETION_TIME = 0x7FFFFFFF  # 4.x "no local deletion time"; also the LIVE deletion's LDT
LIVE = (NO_TIMESTAMP, NO_DELETION_TIME)

# Epochs of the encoding stats (§8)
TIMESTAMP_EPOCH = 1442880000000000
DELETION_TIME_EPOCH = 1442880000
TTL_EPOCH = 0

# Partition update flags (§8)
P_IS_EMPTY = 0x01
P_IS_REVERSED = 0x02
P_HAS_PARTITION_DELETION = 0x04
P_HAS_STATIC_ROW = 0x08
P_HAS_ROW_ESTIMATE = 0x10

# Unfiltered flags (§9)
END_OF_PARTITION = 0x01
IS_MARKER = 0x02
HAS_TIMESTAMP = 0x04
HAS_TTL = 0x08
HAS_DELETION = 0x10
HAS_ALL_COLUMNS = 0x20
HAS_COMPLEX_DELETION = 0x40
EXTENSION_FLAG = 0x80
EXT_IS_STATIC = 0x01

# Cell flags (§10)
CELL_IS_DELETED = 0x01
CELL_IS_EXPIRING = 0x02
CELL_HAS_EMPTY_VALUE = 0x04
CELL_USE_ROW_TIMESTAMP = 0x08
CELL_USE_ROW_TTL = 0x10

# Range tombstone bound kinds (§11)
EXCL_END_BOUND, INCL_START_BOUND, EXCL_END_INCL_START_BOUNDARY = 0, 1, 2
INCL_END_EXCL_START_BOUNDARY, INCL_END_BOUND, EXCL_START_BOUND = 5, 6, 7
BOUNDARY_KINDS = frozenset((EXCL_END_INCL_START_BOUNDARY, INCL_END_EXCL_START_BOUNDARY))
START_KINDS = frozenset((INCL_START_BOUND, EXCL_START_BOUND))
INCLUSIVE_KINDS = frozenset((INCL_START_BOUND, INCL_END_BOUND))


class EncodingStats(NamedTuple):
    min_timestamp: int
    min_local_deletion_time: int
    min_ttl: int


class DeletionTime(NamedTuple):
    marked_for_delete_at: int
    local_deletion_time: int

    @property
    def is_live(self) -> bool:
        return self.marked_for_delete_at == NO_TIMESTAMP


class Liveness(NamedTuple):
    """A row's primary-key liveness: when it was inserted, and its TTL if expiring."""

    timestamp: int
    ttl: int = 0
    local_expiration_time: int = NO_DELETION_TIME


class Cell(NamedTuple):
    """One cell as written. `flags` are kept so re-encoding reproduces the bytes."""

    flags: int
    timestamp: int
    local_deletion_time: int
    ttl: int
    path: bytes | None
    value: bytes

    @property
    def is_tombstone(self) -> bool:
        return bool(self.flags & CELL_IS_DELETED)

    @property
    def is_expiring(self) -> bool:
        return bool(self.flags & CELL_IS_EXPIRING)


class ComplexColumn(NamedTuple):
    """A non-frozen collection/UDT column in a row: an optional deletion, then one cell per element."""

    deletion: DeletionTime | None  # None when the row has no complex deletions at all
    cells: tuple[Cell, ...]


@dataclass(slots=True)
class Row:
    flags: int
    ext_flags: int
    clustering: tuple[bytes | None, ...]  # raw values; None = null (bounds, compact tables)
    liveness: Liveness | None
    deletion: DeletionTime | None
    # (index into the update's column list for this row kind, Cell or ComplexColumn), header order
    columns: list[tuple[int, Cell | ComplexColumn]]

    @property
    def is_static(self) -> bool:
        return bool(self.ext_flags & EXT_IS_STATIC)


@dataclass(slots=True)
class RangeTombstoneMarker:
    kind: int
    clustering: tuple[bytes | None, ...]  # a prefix of the clustering; may be empty (open end)
    deletion: DeletionTime  # for a boundary: the END deletion
    start_deletion: DeletionTime | None = None  # boundaries only

    @property
    def is_boundary(self) -> bool:
        return self.kind in BOUNDARY_KINDS


@dataclass(slots=True)
class PartitionUpdate:
    table: TableSchema
    key: bytes
    flags: int
    stats: EncodingStats | None = None  # None only for an empty update
    static_columns: tuple[str, ...] = ()
    regular_columns: tuple[str, ...] = ()
    partition_deletion: DeletionTime | None = None
    static_row: Row | None = None
    row_estimate: int | None = None
    unfiltereds: list[Row | RangeTombstoneMarker] = field(default_factory=list)

    @property
    def table_id(self) -> UUID:
        return self.table.id


@dataclass(slots=True)
class Mutation:
    updates: list[PartitionUpdate]

    @property
    def keyspace(self) -> str:
        return self.updates[0].table.keyspace
