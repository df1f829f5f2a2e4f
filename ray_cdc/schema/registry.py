"""Table schemas by id, with history: an older change is decoded with the schema of its time."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable
from uuid import UUID

from ray_cdc.schema.model import TableSchema

log = logging.getLogger(__name__)

#: `since` of schemas whose start is unknown (from a DDL file or a live cluster): valid from the start
BEGINNING = -(1 << 63)


class SchemaRegistry:
    """Versions of each table's schema, keyed by table id and ordered by the time (µs) they took effect.

    Tables given without a known id (`options["id_known"] is False`, from DDL that lacks `WITH ID`)
    are bound to an unknown id on first sight when they are the only such candidate (format doc
    §16 item 2), never guessed among several.
    """

    def __init__(self, tables: Iterable[TableSchema] = ()):
        self._versions: dict[UUID, list[tuple[int, TableSchema]]] = {}
        self._dropped: dict[UUID, int] = {}
        self._unbound: list[TableSchema] = []
        for table in tables:
            self.add(table)

    def add(self, table: TableSchema, *, since: int = BEGINNING) -> None:
        if table.options.get("id_known") is False:
            self._unbound.append(table)
            return
        versions = self._versions.setdefault(table.id, [])
        times = [t for t, _ in versions]
        i = bisect.bisect_right(times, since)
        if i and versions[i - 1][1] == table:
            return  # same definition again: no new version
        versions.insert(i, (since, table))
        self._dropped.pop(table.id, None)

    def drop(self, table_id: UUID, *, at: int) -> None:
        """A dropped table keeps its versions (older segments still hold its data)."""
        self._dropped[table_id] = at

    def get(self, table_id: UUID, at: int | None = None) -> TableSchema | None:
        """The schema in force at `at` (µs since the epoch; None = the latest). Before the first known
        version, the first version is the best guess there is."""
        versions = self._versions.get(table_id)
        if versions is None:
            return self._bind_unbound(table_id)
        if at is None:
            return versions[-1][1]
        i = bisect.bisect_right([t for t, _ in versions], at)
        return versions[max(i - 1, 0)][1]

    def versions(self, table_id: UUID) -> list[TableSchema]:
        return [t for _, t in self._versions.get(table_id, ())]

    def version_times(self) -> set[int]:
        """Every time (µs) at which some table's schema changed."""
        return {t for versions in self._versions.values() for t, _ in versions}

    def tables(self) -> list[TableSchema]:
        """The latest version of every known table."""
        return [v[-1][1] for v in self._versions.values()]

    def by_name(self, keyspace: str, name: str) -> TableSchema | None:
        for table in self.tables():
            if table.keyspace == keyspace and table.name == name:
                return table
        return None

    def _bind_unbound(self, table_id: UUID) -> TableSchema | None:
        if len(self._unbound) != 1:
            return None
        table = self._unbound.pop()
        bound = TableSchema(table.keyspace, table.name, table_id, table.columns, table.dropped,
                            {**table.options, "id_known": True})
        log.warning("table %s has no id in its DDL; bound to id %s, the first unknown id seen",
                    table.qualified_name, table_id)
        self.add(bound)
        return bound

    def __len__(self) -> int:
        return len(self._versions)
