"""An independent oracle: the final state Cassandra's reconciliation gives a stream of change records.

Plain Python over `CommitLogReader.changes()` (typed `Change`s), sharing no code with any destination:
- every cell keeps its newest write (value or tombstone) by timestamp; row liveness likewise;
- partition, row and range tombstones are kept; a cell, element or liveness at or before the newest
  tombstone covering it is dead, whatever order they arrived in;
- non-frozen collections and UDTs are element-wise: each element keeps its newest write, a complex
  deletion (overwrite: at timestamp - 1; `DELETE col`: at the timestamp) kills older elements, element
  removals are element tombstones (list cells are keyed by (timestamp, position): list element ids
  are not in the change records, so list removals by id are not modelled);
- counters: the commitlog carries the shard's new total, so a counter cell is a plain LWW cell;
- TTL: each cell and the liveness keep their expiry; a row's expected `_expires_at` is None when a
  non-expiring live cell or liveness exists, else the latest expiry. By default the oracle does not
  apply "now" (it describes what is stored); `live_rows(now=...)` / `live_statics(now=...)` treat
  what expired at or before `now` as gone, element by element (what a live view shows).
`complex_ttl` holds the rows with expiring collection elements (an Arrow batch's `_expires_at` only
reflects simple cells and row liveness). `whole_value[(key, column)]` is False when a non-replacing element edit touched a multicell column:
an Arrow batch carries only the elements a change writes, so such a column cannot be compared exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ray_cdc.commitlog.builder import order_key
from ray_cdc.commitlog.changes import PARTITION_DELETE, RANGE_DELETE, Change
from ray_cdc.schema.model import TableSchema


@dataclass
class _Cell:
    value: Any
    ts: int
    expires: Any = None


@dataclass
class _Complex:
    deleted_at: int = -1
    elements: dict = field(default_factory=dict)  # element -> _Cell (value None = element tombstone)
    expires: Any = None


@dataclass
class _Row:
    liveness: _Cell | None = None
    cells: dict = field(default_factory=dict)  # simple column -> _Cell
    complex: dict = field(default_factory=dict)  # multicell column -> _Complex


def _newer(old: _Cell | None, ts: int) -> bool:
    return old is None or ts >= old.ts


class TableState:
    def __init__(self, table: TableSchema):
        self.table = table
        self.rows: dict[tuple, _Row] = {}
        self.statics: dict[tuple, _Row] = {}
        self.partition_del: dict[tuple, int] = {}
        self.row_del: dict[tuple, int] = {}
        self.ranges: dict[tuple, list] = {}
        self.whole_value: dict[tuple, bool] = {}
        self.complex_ttl: set[tuple] = set()  # rows with expiring collection elements
        self._now = None  # set by live_rows / live_statics

    # --- applying changes ------------------------------------------------------------------------------

    def apply(self, change: Change) -> None:
        pk = tuple(change.partition_key[c.name] for c in self.table.partition_key)
        if change.kind == PARTITION_DELETE:
            self.partition_del[pk] = max(self.partition_del.get(pk, -1), change.deleted_at)
            return
        if change.kind == RANGE_DELETE:
            self.ranges.setdefault(pk, []).append((change.range_start, change.range_end, change.deleted_at))
            return
        if change.static:
            row = self.statics.setdefault(pk, _Row())
            key = pk
        else:
            ck = tuple(change.clustering.get(c.name) for c in self.table.clustering)
            key = pk + ck
            row = self.rows.setdefault(key, _Row())
            if change.deleted_at is not None:
                if not self.table.clustering:
                    self.partition_del[pk] = max(self.partition_del.get(pk, -1), change.deleted_at)
                else:
                    self.row_del[key] = max(self.row_del.get(key, -1), change.deleted_at)
        if change.timestamp is not None and _newer(row.liveness, change.timestamp):
            row.liveness = _Cell(True, change.timestamp, change.expires_at)
        for name, cell in change.cells.items():
            column = self.table.column(name)
            if column.is_complex:
                self._apply_complex(row, key, name, column, cell)
            elif _newer(row.cells.get(name), cell.timestamp):
                row.cells[name] = _Cell(None if cell.deleted else cell.value, cell.timestamp, cell.expires_at)

    def _apply_complex(self, row: _Row, key, name, column, cell) -> None:
        state = row.complex.setdefault(name, _Complex())
        if cell.replaced:
            deletion = cell.timestamp - 1 if cell.value is not None else cell.timestamp
            state.deleted_at = max(state.deleted_at, deletion)
        else:
            self.whole_value[(key, name)] = False
        if cell.expires_at is not None:
            self.complex_ttl.add(key)
        kind = column.type.name
        value = cell.value
        if value is not None:
            if kind == "list":
                items = [((cell.timestamp, i), v) for i, v in enumerate(value)]
            elif kind == "set":
                items = [(e, True) for e in value]
            else:
                items = list(value.items())
            for element, v in items:
                if _newer(state.elements.get(element), cell.timestamp):
                    state.elements[element] = _Cell(v, cell.timestamp, cell.expires_at)
        for element in cell.removed:
            if kind != "list" and _newer(state.elements.get(element), cell.timestamp):
                state.elements[element] = _Cell(None, cell.timestamp)

    # --- the final state --------------------------------------------------------------------------------

    def _covering(self, key: tuple) -> int:
        n_pk = len(self.table.partition_key)
        pk = key[:n_pk]
        newest = max(self.partition_del.get(pk, -1), self.row_del.get(key, -1))
        for start, end, t in self.ranges.get(pk, ()):
            if t > newest and self._in_range(key[n_pk:], start, end):
                newest = t
        return newest

    def _in_range(self, ck: tuple, start, end) -> bool:
        return self._after(ck, start) and self._before(ck, end)

    def _cmp_prefix(self, ck: tuple, bound: dict) -> int:
        for column, value in zip(self.table.clustering, ck):
            if column.name not in bound:
                return 0
            a = order_key(column.type, column.type.encode(value))
            b = order_key(column.type, column.type.encode(bound[column.name]))
            if a != b:
                result = -1 if a < b else 1
                return -result if column.reversed else result
        return 0

    def _after(self, ck, start) -> bool:
        if not start.values:
            return True
        c = self._cmp_prefix(ck, start.values)
        return c > 0 or (c == 0 and start.inclusive)

    def _before(self, ck, end) -> bool:
        if not end.values:
            return True
        c = self._cmp_prefix(ck, end.values)
        return c < 0 or (c == 0 and end.inclusive)

    def _materialize(self, row: _Row, tomb: int, columns, now=None) -> dict | None:
        out, expiries, forever = {}, [], False
        self._now = now
        if row.liveness is not None and row.liveness.ts > tomb and self._unexpired(row.liveness):
            forever |= row.liveness.expires is None
            expiries.append(row.liveness.expires)
        for column in columns:
            if column.is_complex:
                value, exp = self._complex_value(row.complex.get(column.name), tomb, column)
            else:
                cell = row.cells.get(column.name)
                live = cell is not None and cell.value is not None and cell.ts > tomb and self._unexpired(cell)
                value, exp = (cell.value, [cell.expires]) if live else (None, [])
            out[column.name] = value
            forever |= any(e is None for e in exp)
            expiries += exp
        if not expiries:
            return None  # no live liveness, no live cell: the row does not exist
        out["_expires_at"] = None if forever else max(expiries)
        return out

    def _complex_value(self, state: _Complex | None, tomb: int, column):
        if state is None:
            return None, []
        floor = max(tomb, state.deleted_at)
        live = [(e, c) for e, c in state.elements.items()
                if c.value is not None and c.ts > floor and self._unexpired(c)]
        if not live:
            return None, []
        kind = column.type.name
        if kind == "list":
            value = [c.value for _, c in sorted(live, key=lambda item: item[0])]
        elif kind == "set":
            value = frozenset(e for e, _ in live)
        elif kind == "map":  # Cassandra returns map entries in key order
            key_type = column.type.params[0]
            ordered = sorted(live, key=lambda item: order_key(key_type, key_type.encode(item[0])))
            value = {e: c.value for e, c in ordered}
        else:
            value = {e: c.value for e, c in live}
        return value, [c.expires for _, c in live]

    def _unexpired(self, cell: _Cell) -> bool:
        return self._now is None or cell.expires is None or cell.expires > self._now

    def live_rows(self, now=None) -> dict[tuple, dict]:
        out = {}
        for key, row in self.rows.items():
            values = self._materialize(row, self._covering(key), self.table.regular, now)
            if values is not None:
                out[key] = values
        return out

    def live_statics(self, now=None) -> dict[tuple, dict]:
        out = {}
        for pk, row in self.statics.items():
            values = self._materialize(row, self.partition_del.get(pk, -1), self.table.static, now)
            if values is not None:
                out[pk] = values
        return out


def expected_state(changes) -> dict[str, TableState]:
    """keyspace.table -> its TableState after every change."""
    states: dict[str, TableState] = {}
    for change in changes:
        name = change.table.qualified_name
        state = states.get(name)
        if state is None:
            state = states[name] = TableState(change.table)
        state.apply(change)
    return states
