"""Pre-3.0 cells and range tombstones -> the 3.0 mutation model (`mutation_model`), so `changes.py`
and `arrow_batches.py` turn 2.1/2.2 mutations into the same Change records and Arrow batches.

What a 2.1 CQL row is made of, and what it becomes here:
* a row marker (a cell whose column-name component is empty, written by INSERT) -> row liveness
  (its TTL too: `INSERT ... USING TTL` writes an expiring marker);
* one cell per simple column -> a Cell; tombstone cells (`DELETE c`, `SET c = null`) stay tombstones;
* one cell per element of a non-frozen collection (the last name component is the set element, map
  key or list timeuuid: the 3.0 cell path) -> a ComplexColumn;
* a range tombstone over `[clustering, column]` (a collection overwritten, at timestamp - 1, or
  deleted) -> that ComplexColumn's deletion;
* a range tombstone over a full clustering -> a row deletion; over a shorter clustering prefix
  (`DELETE ... WHERE pk = ? AND c1 = ?`, the only range delete 2.1 CQL allows) -> a range delete;
  the partition's top-level deletion -> a partition delete.

Per-column last-writer-wins: 2.1 keeps a timestamp and TTL per cell, and one mutation can carry
cells of one CQL row with different ones (a batch with `USING TIMESTAMP`/`TTL` per statement, or an
INSERT and an UPDATE of the same row). An Arrow batch has one `_writetime`/`_ttl` per row, so such a
row becomes several rows, one per (timestamp, TTL) -- each destination then applies every column
with its own timestamp. A collection column goes with the latest timestamp among its deletion and
element cells (its `_cells.<c>` column keeps each element's own timestamp and TTL). A row deletion
is a row of its own (a deletion wins over writes of the same timestamp wherever it is applied).
"""

from __future__ import annotations

from ray_cdc.commitlog.legacy_mutation import (
    COUNTER_UPDATE_MASK,
    DELETION_MASK,
    EXPIRATION_MASK,
    LIVE_MARKED_AT,
    RANGE_TOMBSTONE_MASK,
    Composite,
    LegacyCell,
    LegacyRange,
    LegacyUpdate,
    parse_composite,
)
from ray_cdc.commitlog.mutation_model import (
    CELL_IS_DELETED,
    CELL_IS_EXPIRING,
    EXCL_END_BOUND,
    EXCL_START_BOUND,
    EXT_IS_STATIC,
    EXTENSION_FLAG,
    HAS_DELETION,
    HAS_TIMESTAMP,
    HAS_TTL,
    INCL_END_BOUND,
    INCL_START_BOUND,
    NO_DELETION_TIME,
    Cell,
    ComplexColumn,
    DeletionTime,
    Liveness,
    PartitionUpdate,
    RangeTombstoneMarker,
    Row,
)
from ray_cdc.schema.model import TableSchema


class LegacyShapeError(ValueError):
    """A cell or tombstone a CQL table of this schema cannot hold (the caller adds file and position)."""


class UnknownColumnError(LegacyShapeError):
    """A cell names a column the table's schema lacks: a schema older than the data (`ALTER TABLE
    ... ADD` since it was loaded), which the caller may load again."""

    def __init__(self, table: TableSchema, column: str):
        super().__init__(f"{table.qualified_name} has no column {column!r} (schema older than the data?)")
        self.table, self.column = table, column


class _RowParts:
    """Everything one mutation writes to one CQL row (or the static row)."""

    __slots__ = ("complex", "deletion", "marker", "simple")

    def __init__(self):
        self.marker: Liveness | None = None
        self.simple: dict[str, Cell] = {}
        self.complex: dict[str, list] = {}  # name -> [DeletionTime | None, [Cell, ...]]
        self.deletion: DeletionTime | None = None

    def complex_column(self, name: str) -> list:
        entry = self.complex.get(name)
        if entry is None:
            entry = self.complex[name] = [None, []]
        return entry


def to_partition_update(table: TableSchema, key: bytes, update: LegacyUpdate) -> PartitionUpdate:
    if table.options.get("compact_storage"):
        raise LegacyShapeError(f"{table.qualified_name} uses COMPACT STORAGE: its 2.x cell layout is not decoded")
    n_ck = len(table.clustering)
    rows: dict[tuple, _RowParts] = {}  # (static, clustering) -> parts, in cell (= clustering) order
    markers: list[RangeTombstoneMarker] = []
    for r in update.ranges:
        _add_range(table, n_ck, r, rows, markers)
    for cell in update.cells:
        _add_cell(table, n_ck, cell, rows)
    names: list[str] = []
    index: dict[str, int] = {}
    statics, regulars = [], []
    for (static, clustering), parts in rows.items():
        (statics if static else regulars).extend(_split(parts, static, clustering, names, index))
    deletion = None
    if update.marked_for_delete_at != LIVE_MARKED_AT:
        deletion = DeletionTime(update.marked_for_delete_at, update.local_deletion_time)
    # one name list for static and regular rows alike: rows refer to columns by index into it
    header = tuple(names)
    return PartitionUpdate(table, key, 0x04 if deletion else 0, None, header, header, deletion, None,
                           len(regulars), [*statics, *markers, *regulars])


# --- range tombstones -----------------------------------------------------------------------------


def _add_range(table, n_ck, r: LegacyRange, rows, markers) -> None:
    start, end = _composite(r.start), _composite(r.end)
    deletion = DeletionTime(r.marked_for_delete_at, r.local_deletion_time)
    if start.static or end.static:
        if start.components != end.components or len(start.components) != n_ck + 1:
            raise LegacyShapeError(f"a range tombstone over static names {start} .. {end}")
        _complex_deletion(table, rows, True, (), start.components[n_ck], deletion)
        return
    same = start.components == end.components
    if same and n_ck and len(start.components) == n_ck and start.eoc <= 0 and end.eoc == 1:
        parts = rows.setdefault((False, start.components), _RowParts())
        if parts.deletion is None or parts.deletion.marked_for_delete_at < deletion.marked_for_delete_at:
            parts.deletion = deletion
        return
    if same and len(start.components) == n_ck + 1 and start.eoc <= 0 and end.eoc == 1:
        _complex_deletion(table, rows, False, start.components[:n_ck], start.components[n_ck], deletion)
        return
    if len(start.components) > n_ck or len(end.components) > n_ck:
        # a tombstone cut through the columns of a row: RangeTombstoneList splits overlapping ranges
        # of one mutation (a row delete and a collection overwrite at other timestamps in one batch)
        raise LegacyShapeError(f"a range tombstone inside a row ({len(start.components)} and "
                               f"{len(end.components)} name components, {n_ck} clustering columns)")
    # a clustering prefix: start EOC END = after the prefix (exclusive), end EOC END = inclusive
    markers.append(RangeTombstoneMarker(EXCL_START_BOUND if start.eoc == 1 else INCL_START_BOUND,
                                        start.components, deletion))
    markers.append(RangeTombstoneMarker(INCL_END_BOUND if end.eoc == 1 else EXCL_END_BOUND,
                                        end.components, deletion))


def _complex_deletion(table, rows, static, clustering, raw_name: bytes, deletion: DeletionTime) -> None:
    name = _column_name(table, raw_name, static, complex_=True)
    entry = rows.setdefault((static, clustering), _RowParts()).complex_column(name)
    if entry[0] is None or entry[0].marked_for_delete_at < deletion.marked_for_delete_at:
        entry[0] = deletion


def _composite(raw: bytes) -> Composite:
    try:
        return parse_composite(raw)
    except ValueError as exc:
        raise LegacyShapeError(f"cell name or bound 0x{raw[:40].hex()}: {exc}") from None


def _column_name(table: TableSchema, raw: bytes, static: bool, *, complex_: bool | None = None) -> str:
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LegacyShapeError(f"column name 0x{raw.hex()} is not UTF-8") from None
    column = table.column(name)
    if column is None:
        raise UnknownColumnError(table, name)
    if column.kind.value not in ("static", "regular"):
        raise LegacyShapeError(f"a cell of primary key column {name!r}")
    if complex_ is not None and column.is_complex != complex_:
        raise LegacyShapeError(f"column {name!r} is {'' if column.is_complex else 'not '}a non-frozen collection")
    return name


# --- cells ------------------------------------------------------------------------------------------


def _add_cell(table, n_ck, cell: LegacyCell, rows) -> None:
    name = _composite(cell.name)
    comps = name.components
    if len(comps) not in (n_ck + 1, n_ck + 2):
        raise LegacyShapeError(f"a cell name of {len(comps)} components; {table.qualified_name} has "
                               f"{n_ck} clustering columns")
    if cell.mask & (COUNTER_UPDATE_MASK | RANGE_TOMBSTONE_MASK):
        raise LegacyShapeError(f"a cell with mask {cell.mask:#04x} (counter update or on-disk range tombstone)")
    clustering = () if name.static else comps[:n_ck]
    parts = rows.setdefault((name.static, clustering), _RowParts())
    raw_name = comps[n_ck]
    expiring = bool(cell.mask & EXPIRATION_MASK)
    if not raw_name:  # the row marker
        if name.static or len(comps) != n_ck + 1 or cell.mask & DELETION_MASK:
            raise LegacyShapeError("a static, nested or deleted row marker")
        marker = Liveness(cell.timestamp, cell.ttl, cell.local_deletion_time) if expiring else Liveness(cell.timestamp)
        if parts.marker is None or parts.marker.timestamp <= marker.timestamp:
            parts.marker = marker
        return
    if cell.mask & DELETION_MASK:
        model = Cell(CELL_IS_DELETED, cell.timestamp, cell.local_deletion_time, 0, None, b"")
    elif expiring:
        model = Cell(CELL_IS_EXPIRING, cell.timestamp, cell.local_deletion_time, cell.ttl, None, cell.value)
    else:
        model = Cell(0, cell.timestamp, NO_DELETION_TIME, 0, None, cell.value)
    if len(comps) == n_ck + 2:
        column = _column_name(table, raw_name, name.static, complex_=True)
        parts.complex_column(column)[1].append(model._replace(path=comps[n_ck + 1]))
    else:
        parts.simple[_column_name(table, raw_name, name.static, complex_=False)] = model


# --- rows, one per (timestamp, TTL) -------------------------------------------------------------------


def _group_key(data) -> tuple[int, int]:
    if isinstance(data, Cell):
        return data.timestamp, data.ttl if data.flags & CELL_IS_EXPIRING else 0
    deletion, cells = data
    stamp = max([c.timestamp for c in cells] + ([deletion.marked_for_delete_at] if deletion else []))
    ttl = next((c.ttl for c in cells if c.flags & CELL_IS_EXPIRING), 0)
    return stamp, ttl


def _split(parts: _RowParts, static: bool, clustering: tuple, names: list, index: dict) -> list[Row]:
    ext = EXT_IS_STATIC if static else 0
    base_flags = EXTENSION_FLAG if static else 0
    out = []
    if parts.deletion is not None:
        out.append(Row(base_flags | HAS_DELETION, ext, clustering, None, parts.deletion, []))
    groups: dict[tuple[int, int], list] = {}
    for name, cell in parts.simple.items():
        groups.setdefault(_group_key(cell), []).append((name, cell))
    for name, (deletion, cells) in parts.complex.items():
        cells.sort(key=lambda c: c.path)  # 2.1 writes them in comparator order already; keep it certain
        groups.setdefault(_group_key((deletion, cells)), []).append((name, ComplexColumn(deletion, tuple(cells))))
    marker = parts.marker
    if marker is not None:
        groups.setdefault((marker.timestamp, marker.ttl), [])
    for key in sorted(groups):
        liveness = marker if marker is not None and (marker.timestamp, marker.ttl) == key else None
        columns = []
        for name, data in groups[key]:
            i = index.get(name)
            if i is None:
                i = index[name] = len(names)
                names.append(name)
            columns.append((i, data))
        columns.sort(key=lambda item: item[0])
        flags = base_flags | (HAS_TIMESTAMP if liveness else 0) | (HAS_TTL if liveness and liveness.ttl else 0)
        out.append(Row(flags, ext, clustering, liveness, None, columns))
    return out
