"""Table schemas rebuilt from the `system_schema` mutations found in the commitlog itself.

A node writes every schema change as mutations of `system_schema.{tables, columns, types,
dropped_columns, ...}` (format doc §16 item 4). Replaying those rows, in log order, into a small
model of the system tables gives the user tables' definitions and ids as they were at each point
of the log. `cdc_raw` keeps only segments with CDC data, so this source complements the others.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ray_cdc.commitlog.mutation_model import (
    CELL_IS_DELETED,
    INCLUSIVE_KINDS,
    START_KINDS,
    Mutation,
    PartitionUpdate,
    RangeTombstoneMarker,
)
from ray_cdc.errors import CqlTypeError, SchemaError
from ray_cdc.schema.model import ColumnKind, ColumnSchema, DroppedColumn, TableSchema
from ray_cdc.schema.registry import SchemaRegistry
from ray_cdc.schema.system_schema import KEYSPACE
from ray_cdc.schema.types import parse_cql_type

log = logging.getLogger(__name__)

Key = tuple  # (keyspace, *clustering values)
_TRACKED = ("tables", "columns", "dropped_columns", "types")


class LogSchemaTracker:
    """Applies `system_schema` mutations to a registry, in log order."""

    def __init__(self, registry: SchemaRegistry):
        self.registry = registry
        self._rows: dict[str, dict[Key, dict[str, object]]] = {name: {} for name in _TRACKED}

    @staticmethod
    def is_schema_mutation(mutation: Mutation) -> bool:
        return mutation.keyspace == KEYSPACE

    def apply(self, mutation: Mutation) -> list[TableSchema]:
        """Apply one schema mutation; returns the user tables whose definition it changed."""
        touched_keyspaces: set[str] = set()
        latest = 0
        for update in mutation.updates:
            if update.table.name not in self._rows:
                continue
            keyspace = update.table.partition_key[0].type.decode(update.key)
            touched_keyspaces.add(keyspace)
            latest = max(latest, self._apply_update(update, keyspace))
        changed = []
        for keyspace in touched_keyspaces:
            changed += self._rebuild(keyspace, since=latest)
        return changed

    # --- replaying rows of the system tables -------------------------------------------------------

    def _apply_update(self, update: PartitionUpdate, keyspace: str) -> int:
        rows = self._rows[update.table.name]
        latest = 0
        if update.partition_deletion is not None and not update.partition_deletion.is_live:
            for key in [k for k in rows if k[0] == keyspace]:
                del rows[key]
            latest = update.partition_deletion.marked_for_delete_at
        ck_types = [c.type for c in update.table.clustering]
        open_start = None
        for unfiltered in update.unfiltereds:
            if isinstance(unfiltered, RangeTombstoneMarker):
                bound = (keyspace, *(t.decode(v) for t, v in zip(ck_types, unfiltered.clustering)))
                if unfiltered.kind in START_KINDS:
                    open_start = (bound, unfiltered.kind in INCLUSIVE_KINDS)
                elif open_start is not None:
                    _delete_range(rows, open_start, (bound, unfiltered.kind in INCLUSIVE_KINDS))
                    open_start = None
                latest = max(latest, unfiltered.deletion.marked_for_delete_at)
                continue
            key = (keyspace, *(t.decode(v) for t, v in zip(ck_types, unfiltered.clustering)))
            latest = max(latest, self._apply_row(rows, key, update, unfiltered))
        return latest

    @staticmethod
    def _apply_row(rows, key, update: PartitionUpdate, row) -> int:
        latest = row.liveness.timestamp if row.liveness else 0
        if row.deletion is not None:
            rows.pop(key, None)
            latest = max(latest, row.deletion.marked_for_delete_at)
        if not row.columns and row.liveness is None:
            return latest
        values = rows.setdefault(key, {})
        for index, cell in row.columns:
            column = update.table.column(update.regular_columns[index])
            latest = max(latest, cell.timestamp)
            if cell.flags & CELL_IS_DELETED:
                values.pop(column.name, None)
            else:
                values[column.name] = column.type.decode(cell.value) if cell.value else None
        return latest

    # --- rebuilding user tables --------------------------------------------------------------------

    def _rebuild(self, keyspace: str, *, since: int) -> list[TableSchema]:
        user_types = self._user_types(keyspace)
        changed = []
        for key, row in self._rows["tables"].items():
            if key[0] != keyspace or row.get("id") is None:
                continue
            try:
                table = self._table(keyspace, key[1], row, user_types)
            except (SchemaError, ValueError) as e:
                log.warning("schema of %s.%s in the log is incomplete: %s", keyspace, key[1], e)
                continue
            before = self.registry.get(table.id)
            self.registry.add(table, since=since)
            if before != table:
                changed.append(table)
        return changed

    def _user_types(self, keyspace: str) -> dict:
        types: dict = {}
        pending = {k[1]: v for k, v in self._rows["types"].items() if k[0] == keyspace}
        # a UDT may use another UDT: resolve in dependency order
        while pending:
            progress = False
            for name, row in list(pending.items()):
                try:
                    fields = tuple(
                        (f, parse_cql_type(t, keyspace=keyspace, user_types=types))
                        for f, t in zip(row.get("field_names") or (), row.get("field_types") or ())
                    )
                except CqlTypeError:
                    continue
                types[(keyspace, name)] = fields
                del pending[name]
                progress = True
            if not progress:
                break
        return types

    def _table(self, keyspace: str, name: str, row: dict, user_types: dict) -> TableSchema:
        columns = []
        for key, col in self._rows["columns"].items():
            if key[0] != keyspace or key[1] != name:
                continue
            kind = ColumnKind(col.get("kind", "regular"))
            position = col.get("position", -1)
            columns.append(ColumnSchema(
                key[2],
                parse_cql_type(col["type"], keyspace=keyspace, user_types=user_types),
                kind,
                position=max(position if isinstance(position, int) else 0, 0),
                reversed=col.get("clustering_order") == "desc",
            ))
        dropped = tuple(
            DroppedColumn(key[2], parse_cql_type(d["type"], keyspace=keyspace, user_types=user_types),
                          _micros(d.get("dropped_time")),
                          ColumnKind(d.get("kind") or "regular"))
            for key, d in self._rows["dropped_columns"].items()
            if key[0] == keyspace and key[1] == name and d.get("type")
        )
        options = {k: v for k, v in row.items() if k != "id"}
        options["id_known"] = True
        return TableSchema(keyspace, name, row["id"], tuple(columns), dropped, options)


def _delete_range(rows: dict, start, end) -> None:
    (lo, lo_incl), (hi, hi_incl) = start, end
    for key in list(rows):
        if _after(key, lo, lo_incl) and _before(key, hi, hi_incl):
            del rows[key]


def _after(key: tuple, bound: tuple, inclusive: bool) -> bool:
    prefix = key[: len(bound)]
    return prefix > bound or (prefix == bound and inclusive)


def _before(key: tuple, bound: tuple, inclusive: bool) -> bool:
    prefix = key[: len(bound)]
    return prefix < bound or (prefix == bound and inclusive)


def _micros(value) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1_000_000)
    return int(value or 0) * 1000
