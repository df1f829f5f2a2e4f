"""Schema evolution of a ClickHouse table (see destinations/evolution.py).

The stored value columns come from `system.columns`. Columns are addressed by name everywhere here
(inserts, `_ts`/`_exp` maps), so their order does not matter. A change is ALTER TABLE ADD COLUMN
(Nullable, or an empty composite: older rows read NULL/empty), MODIFY COLUMN for a widening (ClickHouse
converts the stored parts), DROP COLUMN for a dropped column with `dropped_columns: drop`, the element
columns when the first non-frozen collection arrives; then the `__live` view is made again over the
new columns.
"""

from __future__ import annotations

import re

from ray_cdc.destinations.clickhouse import ddl
from ray_cdc.destinations.clickhouse.client import ClickHouseClient
from ray_cdc.destinations.evolution import DestColumn, Dialect, Plan
from ray_cdc.schema.model import TableSchema
from ray_cdc.schema.types import CqlType, parse_cql_type

_CQL_OF = {"String": "text", "Bool": "boolean", "Int8": "tinyint", "Int16": "smallint", "Int32": "int",
           "Int64": "bigint", "Float32": "float", "Float64": "double", "UUID": "uuid", "Date32": "date",
           "DateTime64(3,'UTC')": "timestamp"}
_INTS = ("Int8", "Int16", "Int32", "Int64")
WIDENINGS = frozenset({*((f"Nullable({a})", f"Nullable({b})") for i, a in enumerate(_INTS) for b in _INTS[i + 1:]),
                       ("Nullable(Float32)", "Nullable(Float64)")})


def normalized(type_text: str) -> str:
    """A type as compared: ClickHouse prints types with its own spacing and quoting of names."""
    return re.sub(r"[\s`]", "", type_text)


def stored_type(t: CqlType) -> str:
    return normalized(ddl.ch_type(t))


def _cql_of(text: str) -> CqlType | None:
    inner = text[len("Nullable("):-1] if text.startswith("Nullable(") else text
    name = _CQL_OF.get(inner)
    return parse_cql_type(name) if name else None


def dialect(destination: str) -> Dialect:
    return Dialect(destination, stored_type, _cql_of, frozenset((normalized(a), normalized(b)) for a, b in WIDENINGS))


def read_stored(client: ClickHouseClient, table: TableSchema) -> tuple[list[DestColumn] | None, bool]:
    """The table's value columns as stored (None: no such table yet), and whether it has the element
    columns of non-frozen collections."""
    rows = client.query_arrow(
        f"SELECT name, type FROM system.columns WHERE database = {ddl.sql_string(table.keyspace)} "
        f"AND table = {ddl.sql_string(table.name)} ORDER BY position").to_pylist()
    if not rows:
        return None, False
    keys = {c.name for c in ddl.key_columns(table)}
    # bookkeeping columns start with "_" (ddl.META_COLUMNS, ELEMENT_COLUMNS)
    values = [DestColumn(r["name"], normalized(r["type"])) for r in rows
              if r["name"] not in keys and not r["name"].startswith("_")]
    return values, any(r["name"] == ddl.ELEMENT_COLUMNS[0][0] for r in rows)


def evolution_statements(plan: Plan, had_elements: bool) -> list[str]:
    if not plan.changes_table:
        return []
    table = ddl.qualified(plan.layout)
    actions = [f"ADD COLUMN IF NOT EXISTS {ddl.quote(c.name)} {ddl.ch_type(c.type)}" for c in plan.add]
    if ddl.has_elements(plan.layout) and not had_elements:
        actions += [f"ADD COLUMN IF NOT EXISTS {n} {t}" for n, t in ddl.ELEMENT_COLUMNS]
    actions += [f"MODIFY COLUMN {ddl.quote(c.name)} {ddl.ch_type(c.type)}" for c in plan.widen]
    actions += [f"DROP COLUMN IF EXISTS {ddl.quote(name)}" for name in plan.drop]
    return [f"DROP VIEW IF EXISTS {ddl.qualified(plan.layout, '__live')}",
            f"ALTER TABLE {table} {', '.join(actions)}"]


def layout_is_current(client: ClickHouseClient, layout: TableSchema) -> bool:
    """Whether the stored value columns are still the layout's (another writer may have evolved them)."""
    stored, _ = read_stored(client, layout)
    wanted = {c.name: stored_type(c.type) for c in ddl.value_columns(layout)}
    return stored is not None and {c.name: c.type for c in stored} == wanted
