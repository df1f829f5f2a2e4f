"""Schema evolution of the PostgreSQL tables of one Cassandra table (see destinations/evolution.py).

The stored value columns are read from `pg_attribute` (state table, then static table, in column
order: `_ts` keys writetimes by that order). The changes run in the transaction of the first batch
that needs them, before its data (a failed write leaves the tables as they were):
1. the views go (they pin the columns' types), and each changed state table's generated `_live`
   (its expression lists the value columns);
2. ADD COLUMN (and `"_cells.c"` for a non-frozen collection/UDT), ALTER COLUMN ... TYPE for a
   widening, DROP COLUMN for a dropped column with `dropped_columns: drop`;
3. `_ts` is rebuilt in the new column order (0 for a new column: no cell yet), `_live` added back;
4. the table's usual DDL (idempotent) creates what is still missing (a first static column's table)
   and the views over the new columns.
"""

from __future__ import annotations

from dataclasses import dataclass

from ray_cdc.commitlog.arrow_batches import cells_column
from ray_cdc.destinations.evolution import DestColumn, Dialect, Plan
from ray_cdc.destinations.postgres import cells
from ray_cdc.destinations.postgres.ddl import TableNames, Target, live_column, pg_type, qi
from ray_cdc.destinations.postgres.merge import stored_ts
from ray_cdc.schema.model import ColumnKind
from ray_cdc.schema.types import CqlType, parse_cql_type

#: format_type() spells these differently from the DDL
_CATALOG_NAMES = {"timestamptz": "timestamp with time zone"}
#: stored type -> a CQL type stored that way (for columns a batch's schema does not describe)
_CQL_OF = {"text": "text", "bytea": "blob", "boolean": "boolean", "smallint": "smallint", "integer": "int",
           "bigint": "bigint", "numeric": "decimal", "real": "float", "double precision": "double",
           "date": "date", "timestamp with time zone": "timestamp", "interval": "duration", "uuid": "uuid",
           "inet": "inet", "jsonb": "frozen<list<text>>"}
_INTEGERS = ("smallint", "integer", "bigint")
WIDENINGS = frozenset({("smallint", "integer"), ("smallint", "bigint"), ("integer", "bigint"),
                       ("real", "double precision"), *((i, "numeric") for i in _INTEGERS)})

_COLUMNS_SQL = ("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a "
                "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum")


@dataclass(frozen=True)
class PendingDdl:
    """Changes planned for a table, made inside the transaction of its next write."""

    names: TableNames  # the layout they give
    stored: dict  # the stored columns they were planned from (re-read under the lock before they run)
    statements: list[str]
    plan: Plan


def stored_type(t: CqlType) -> str:
    text = pg_type(t)
    return _CATALOG_NAMES.get(text, text)


def _cql_of(text: str) -> CqlType | None:
    name = _CQL_OF.get(text)
    return parse_cql_type(name) if name else None


def dialect(destination: str) -> Dialect:
    return Dialect(destination, stored_type, _cql_of, WIDENINGS)


def targets(names: TableNames) -> list[tuple[Target, ColumnKind]]:
    out = [(names.rows, ColumnKind.REGULAR)]
    if names.static is not None:
        out.append((names.static, ColumnKind.STATIC))
    return out


def read_stored(cur, names: TableNames) -> tuple[dict[str, list[DestColumn]], bool]:
    """Value columns of each existing state table (by its name, in column order); whether the rows
    state table exists at all (if not, the table is new)."""
    static_state = names.table.name + "__static"
    stored: dict[str, list[DestColumn]] = {}
    keys = {c.name for c in names.table.partition_key + names.table.clustering}
    for state, kind in ((names.rows.state, ColumnKind.REGULAR), (static_state, ColumnKind.STATIC)):
        rows = cur.execute(_COLUMNS_SQL, (f"{qi(names.schema)}.{qi(state)}",)).fetchall()
        if rows:
            # bookkeeping columns start with "_" (see ddl.py); key columns never change
            stored[state] = [DestColumn(n, t, kind) for n, t in rows if not n.startswith("_") and n not in keys]
    return stored, names.rows.state in stored


def evolution_sql(plan: Plan, stored: dict[str, list[DestColumn]], new: TableNames) -> list[str]:
    """The statements of steps 1-3 (see the module doc) for the state tables that exist."""
    widened = {c.name for c in plan.widen}
    changed = []
    for target, _ in targets(new):
        before = stored.get(target.state)
        if before is not None and ([c.name for c in before] != [c.name for c in target.values]
                                   or any(c.name in widened for c in target.values)):
            changed.append((target, before))
    if not changed:
        return []
    out = [f"DROP VIEW IF EXISTS {qi(t.schema)}.{qi(t.view)}" for t, _ in targets(new)]
    for target, before in changed:
        out += _alter_state(plan, target, before)
    return out


def _alter_state(plan: Plan, target: Target, before: list[DestColumn]) -> list[str]:
    table = target.qstate
    present = {c.name for c in before}
    mine = {c.name for c in target.values}
    actions = [f"ADD COLUMN {qi(c.name)} {pg_type(c.type)}" for c in plan.add if c.name in mine]
    actions += [f"ADD COLUMN {qi(cells.state_column(c))} jsonb" for c in plan.add if c.name in mine and c.is_complex]
    actions += [f"ALTER COLUMN {qi(c.name)} TYPE {pg_type(c.type)} USING {qi(c.name)}::{pg_type(c.type)}"
                for c in plan.widen if c.name in mine]
    for name in plan.drop:
        if name in present:
            actions += [f"DROP COLUMN {qi(name)}", f"DROP COLUMN IF EXISTS {qi(cells_column(name))}"]
    out = [f"ALTER TABLE {table} DROP COLUMN _live"]
    if actions:
        out.append(f"ALTER TABLE {table} {', '.join(actions)}")
    old_order = [c.name for c in before]
    if old_order != [c.name for c in target.values]:
        out.append(f"UPDATE {table} SET _ts = {_remapped_ts(old_order, target)}")
    out.append(f"ALTER TABLE {table} ADD COLUMN {live_column(target)}")
    return out


def _remapped_ts(old_order: list[str], target: Target) -> str:
    """`_ts` in the target's column order: a kept column's writetime moves with it, a new one is 0."""
    if not target.values:
        return "ARRAY[]::bigint[]"
    old = {name: i + 1 for i, name in enumerate(old_order)}
    items = [stored_ts("", old[c.name]) if c.name in old else "0" for c in target.values]
    return f"ARRAY[{', '.join(items)}]::bigint[]"


def layout_is_current(cur, names: TableNames) -> bool:
    """Whether the stored value columns are still those `names` writes (another writer of the same
    destination may have evolved the table since this one read it)."""
    stored, _ = read_stored(cur, names)
    for target, _ in targets(names):
        found = stored.get(target.state)
        if found is not None and [(c.name, c.type) for c in found] != [
                (c.name, stored_type(c.type)) for c in target.values]:
            return False
    return True
