"""The pre-3.0 mutation body (messaging versions 8 and 9: Cassandra 2.1 and 2.2), parsed to cells.

Read from Cassandra 2.1.0 / 2.2.8 (`Mutation.MutationSerializer`, `ColumnFamilySerializer`,
`DeletionInfo`, `DeletionTime`, `RangeTombstoneList`, `ColumnSerializer`, `AbstractCType`,
`CompositeType`); the two versions write the same bytes. All integers are big-endian.

    Mutation   := key:u16-bytes  n:int  ColumnFamily{n}
    ColumnFamily := present:bool cfId:16  topLevel:DeletionTime  nRanges:int RangeTombstone{nRanges}
                    nCells:int Cell{nCells}
    DeletionTime := localDeletionTime:int markedForDeleteAt:long     (LIVE: Long.MIN_VALUE, Integer.MAX_VALUE)
    RangeTombstone := start:u16-bytes end:u16-bytes localDeletionTime:int markedForDeleteAt:long
    Cell := name:u16-bytes mask:u8 [tsOfLastDelete:long if COUNTER] [ttl:int expiration:int if EXPIRING]
            timestamp:long value:int-bytes

Unlike the 3.0 format, every piece is self-delimiting: an unknown table id does not block the other
tables of the mutation. Names (cells) and bounds (range tombstones) of CQL tables are composites:
`[0xFFFF if static] (len:u16 bytes eoc:u8)*`, whose components are the clustering values, then the
CQL column name, then (non-frozen collections) the element's key. This module only splits the bytes
(names stay raw: Cassandra's own tables use other comparators); `legacy_rows` gives them their CQL
meaning.
"""

from __future__ import annotations

import struct
from typing import NamedTuple
from uuid import UUID

from ray_cdc.errors import MutationDecodeError

# Cell masks (ColumnSerializer)
DELETION_MASK = 0x01
EXPIRATION_MASK = 0x02
COUNTER_MASK = 0x04
COUNTER_UPDATE_MASK = 0x08
RANGE_TOMBSTONE_MASK = 0x10  # sstables only: never in a mutation

LIVE_MARKED_AT = -(1 << 63)
STATIC_MARKER = 0xFFFF

_U16 = struct.Struct(">H")
_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_DELETION = struct.Struct(">iq")  # localDeletionTime, markedForDeleteAt
_EXPIRING = struct.Struct(">ii")  # ttl, expiration


class Composite(NamedTuple):
    static: bool
    components: tuple[bytes, ...]
    eoc: int  # end-of-component byte of the last component, signed: -1 start, 0 none, 1 end


class LegacyCell(NamedTuple):
    name: bytes  # a composite for CQL tables (`parse_composite`); raw, since system tables differ
    mask: int
    timestamp: int
    ttl: int
    local_deletion_time: int  # expiration (expiring cells), deletion time (tombstones), else 0
    value: bytes


class LegacyRange(NamedTuple):
    start: bytes  # composites, like cell names
    end: bytes
    marked_for_delete_at: int
    local_deletion_time: int


class LegacyUpdate(NamedTuple):
    cf_id: UUID
    marked_for_delete_at: int  # partition deletion; LIVE_MARKED_AT when none
    local_deletion_time: int
    ranges: tuple[LegacyRange, ...]
    cells: tuple[LegacyCell, ...]


class LegacyMutation(NamedTuple):
    key: bytes
    updates: tuple[LegacyUpdate, ...]


def parse_composite(raw: bytes) -> Composite:
    """A composite cell name or bound (`AbstractCompoundCellNameType.fromByteBuffer`)."""
    static = len(raw) >= 2 and _U16.unpack_from(raw)[0] == STATIC_MARKER
    pos = 2 if static else 0
    components, eoc = [], 0
    n = len(raw)
    while pos < n:
        if pos + 2 > n:
            raise ValueError(f"composite ends inside a component length (at {pos} of {n})")
        (length,) = _U16.unpack_from(raw, pos)
        end = pos + 2 + length
        if end + 1 > n:
            raise ValueError(f"composite component of {length} bytes runs past the name ({n} bytes)")
        components.append(raw[pos + 2:end])
        eoc = raw[end] - 256 if raw[end] > 127 else raw[end]
        pos = end + 1
    return Composite(static, tuple(components), eoc)


class _Cursor:
    """Reads the body; every short read becomes a MutationDecodeError at the entry's position."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise IndexError(f"needs {n} bytes at body offset {self.pos}, {len(self.buf) - self.pos} left")
        out = self.buf[self.pos:end]
        self.pos = end
        return out

    def unpack(self, st: struct.Struct) -> tuple:
        return st.unpack(self.take(st.size))

    def short_bytes(self) -> bytes:
        return self.take(self.unpack(_U16)[0])

    def int_bytes(self) -> bytes:
        (n,) = self.unpack(_INT)
        if n < 0:
            raise ValueError(f"negative value length {n} at body offset {self.pos - 4}")
        return self.take(n)


def parse_mutation(body: bytes, *, path: str | None = None, position: int | None = None) -> LegacyMutation:
    """The structure of one entry body; MutationDecodeError (with file and entry position) if malformed."""
    cur = _Cursor(body)
    try:
        key = cur.short_bytes()
        (count,) = cur.unpack(_INT)
        if count <= 0:
            raise ValueError(f"a mutation of {count} tables")
        updates = tuple(_update(cur) for _ in range(count))
        if cur.pos != len(body):
            raise ValueError(f"{len(body) - cur.pos} bytes left after the last table")
    except (IndexError, ValueError, struct.error) as exc:
        raise MutationDecodeError(f"malformed 2.1/2.2 mutation: {exc}", path=path, position=position) from None
    return LegacyMutation(key, updates)


def _update(cur: _Cursor) -> LegacyUpdate:
    if cur.take(1) == b"\0":
        raise ValueError("a null table update (never written to a commitlog)")
    cf_id = UUID(bytes=cur.take(16))
    ldt, marked_at = cur.unpack(_DELETION)
    (n_ranges,) = cur.unpack(_INT)
    ranges = []
    for _ in range(max(n_ranges, 0)):
        start, end = cur.short_bytes(), cur.short_bytes()
        r_ldt, r_at = cur.unpack(_DELETION)
        ranges.append(LegacyRange(start, end, r_at, r_ldt))
    (n_cells,) = cur.unpack(_INT)
    if n_cells < 0 or n_ranges < 0:
        raise ValueError(f"negative count ({n_ranges} ranges, {n_cells} cells)")
    return LegacyUpdate(cf_id, marked_at, ldt, tuple(ranges), tuple(_cell(cur) for _ in range(n_cells)))


def _cell(cur: _Cursor) -> LegacyCell:
    name = cur.short_bytes()
    mask = cur.take(1)[0]
    ttl = ldt = 0
    if mask & COUNTER_MASK:
        cur.take(8)  # timestampOfLastDelete: not part of the value (3.0 dropped it too)
    elif mask & EXPIRATION_MASK:
        ttl, ldt = cur.unpack(_EXPIRING)
    (timestamp,) = cur.unpack(_LONG)
    value = cur.int_bytes()
    if mask & DELETION_MASK and len(value) == 4:
        (ldt,) = _INT.unpack(value)  # a tombstone's value is its local deletion time
    return LegacyCell(name, mask, timestamp, ttl, ldt, value)
