"""Table schemas by id, with history: an older change is decoded with the schema of its time."""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable, Iterable
from uuid import UUID

from ray_cdc.schema.model import TableSchema

log = logging.getLogger(__name__)

#: `since` of schemas whose start is unknown (from a DDL file or a live cluster): valid from the start
BEGINNING = -(1 << 63)

#: seconds between two loads of the tables from their source (a live cluster) on unknown columns
RELOAD_INTERVAL = 1.0


class SchemaRegistry:
    """Versions of each table's schema, keyed by table id and ordered by the time (µs) they took effect.

    Tables given without a known id (`options["id_known"] is False`, from DDL that lacks `WITH ID`)
    are bound to an unknown id on first sight when they are the only such candidate (format doc
    §16 item 2), never guessed among several.
    """

    def __init__(self, tables: Iterable[TableSchema] = (), *,
                 reload: Callable[[], Iterable[TableSchema]] | None = None,
                 reload_interval: float = RELOAD_INTERVAL, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        """`reload`: loads the tables again from where they came from (a live cluster, whose tables
        change by `ALTER TABLE` while a run follows it), called by `reload_for`."""
        self._versions: dict[UUID, list[tuple[int, TableSchema]]] = {}
        self._dropped: dict[UUID, int] = {}
        self._unbound: list[TableSchema] = []
        self._reload, self._interval, self._clock, self._sleep = reload, reload_interval, clock, sleep
        self._reloaded: float | None = None  # clock() of the last reload
        self._missing: dict[tuple[UUID, str], float] = {}  # still unknown after the reload at that time
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

    def reload_for(self, table_id: UUID, column: str) -> bool:
        """Loads the tables again because data names `column`, which `table_id`'s latest schema
        lacks (an `ALTER TABLE ... ADD` after this registry was loaded). True when a reload was
        made; False when there is no source to reload from, or a reload since the interval began
        already lacked the column (data naming an unknown column costs one load per interval, not one
        per mutation). A first sighting waits out the interval rather than be refused: the ALTER may
        have come right after the last load."""
        if self._reload is None:
            return False
        now = self._clock()
        missing_since = self._missing.get((table_id, column))
        if missing_since is not None and now - missing_since < self._interval:
            return False
        if self._reloaded is not None and now - self._reloaded < self._interval:
            self._sleep(self._interval - (now - self._reloaded))
        for table in self._reload():
            # the cluster's schema is the latest: in force from the start, after every earlier version
            self.add(table)
        self._reloaded = self._clock()
        latest = self.get(table_id)
        if latest is None or latest.column(column) is None:
            self._missing[(table_id, column)] = self._reloaded
        else:
            self._missing.pop((table_id, column), None)
        log.info("schema reloaded: data names column %r of table %s, unknown before", column,
                 latest.qualified_name if latest is not None else table_id)
        return True

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
