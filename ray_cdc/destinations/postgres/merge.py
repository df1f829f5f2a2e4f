"""The SQL that applies a staged batch: tombstones first, then per-column last-writer-wins upserts.

Staging tables (TEMP, `ON COMMIT DELETE ROWS`, one set per Cassandra table and connection):
- writes of a target (`StageNames.rows` / `.static`): key columns, `_ck`, value columns (stage types,
  see values.py), `_wt` (the change's writetime), `_mask` (bit i set: value column i is written or
  cell-deleted by the change), `_ins` (an INSERT: row liveness), `_expires_at`, `_seq` (batch order,
  breaks writetime ties: the later-applied change wins);
- tombstones: partitions (pk, deleted_at), rows (pk, ck, deleted_at), ranges (pk, lo, hi, deleted_at).

Order inside the one transaction, and why it converges whatever order changes arrive in:
1. the batch's tombstones are kept (newest per key) in the `__deleted_*` tables;
2. they are applied to existing state rows: each cell written at or before the tombstone becomes NULL
   with the tombstone's time as its writetime (so an older write arriving later loses the plain LWW
   comparison), and `_row_del` moves up (it kills row liveness at or before it);
3. the writes are coalesced per key (the newest value of each column), each is checked against every
   kept tombstone that covers its key (its cells at or before the newest one become NULL), and upserted
   with `CASE WHEN new writetime > old writetime` per column.
Non-frozen collections and UDTs (`"_cells.c"`, see cells.py) merge element by element instead: the
batch's element states of a key are folded with `ray_cdc_cells_agg`, floored by the covering
tombstone, merged into the stored state, and `c` is rendered from the result; a tombstone applied to
an existing row floors its element states the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ray_cdc.destinations.postgres import cells
from ray_cdc.destinations.postgres.ddl import TableNames, Target, complex_values, qi
from ray_cdc.destinations.postgres.values import cast_sql, stage_type


@dataclass(frozen=True)
class StageNames:
    rows: str
    static: str
    partitions: str
    row_deletes: str
    ranges: str


def stage_names(names: TableNames) -> StageNames:
    base = "stg_" + names.table.id.hex[:16]
    return StageNames(base + "_w", base + "_s", base + "_dp", base + "_dr", base + "_dg")


def _defs(columns) -> list[str]:
    return [f"{qi(c.name)} {stage_type(c.type)}" for c in columns]


def stage_ddl(names: TableNames, stages: StageNames) -> list[str]:
    table = names.table
    tail = "ON COMMIT DELETE ROWS"
    meta = ["_wt bigint", "_mask bigint", "_ins boolean", "_expires_at timestamptz", "_seq integer"]
    rows = ", ".join(_defs(names.rows.keys + names.rows.values) + _cells_defs(names.rows) + ["_ck bytea"] + meta)
    partitions = ", ".join(_defs(table.partition_key) + ["deleted_at bigint"])
    stmts = [f"CREATE TEMP TABLE IF NOT EXISTS {stages.rows} ({rows}) {tail}",
             f"CREATE TEMP TABLE IF NOT EXISTS {stages.partitions} ({partitions}) {tail}"]
    if names.static is not None:
        stmts.append(f"CREATE TEMP TABLE IF NOT EXISTS {stages.static} "
                     f"({', '.join(_defs(names.static.keys + names.static.values) + _cells_defs(names.static) + meta)}) "
                     f"{tail}")
    if table.clustering:
        stmts.append(f"CREATE TEMP TABLE IF NOT EXISTS {stages.row_deletes} "
                     f"({', '.join(_defs(table.partition_key + table.clustering) + ['deleted_at bigint'])}) {tail}")
        stmts.append(f"CREATE TEMP TABLE IF NOT EXISTS {stages.ranges} "
                     f"({', '.join(_defs(table.partition_key) + ['lo bytea', 'hi bytea', 'deleted_at bigint'])}) {tail}")
    return stmts


def _cells_defs(target: Target) -> list[str]:
    return [f"{qi(cells.state_column(c))} jsonb" for c in complex_values(target)]


def _cast_keys(columns, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{cast_sql(c.type, prefix + qi(c.name))} AS {qi(c.name)}" for c in columns)


def _eq(columns, a: str, b: str) -> str:
    return " AND ".join(f"{a}.{qi(c.name)} = {b}.{qi(c.name)}" for c in columns)


def _names(columns) -> str:
    return ", ".join(qi(c.name) for c in columns)


# --- 1. keep tombstones --------------------------------------------------------------------------------


def keep_tombstones_sql(names: TableNames, stages: StageNames) -> list[str]:
    table = names.table
    pk = table.partition_key
    out = [_keep(names.q("__deleted_partitions"), stages.partitions, pk, pk)]
    if table.clustering:
        key = pk + table.clustering
        out.append(_keep(names.q("__deleted_rows"), stages.row_deletes, key, key))
        out.append(
            f"INSERT INTO {names.q('__deleted_ranges')} AS k ({_names(pk)}, lo, hi, deleted_at) "
            f"SELECT {_cast_keys(pk)}, lo, hi, max(deleted_at) FROM {stages.ranges} "
            f"GROUP BY {', '.join(str(i + 1) for i in range(len(pk) + 2))} "
            f"ON CONFLICT ({_names(pk)}, lo, hi) DO UPDATE SET deleted_at = GREATEST(k.deleted_at, EXCLUDED.deleted_at)")
    return out


def _keep(target: str, stage: str, columns, key) -> str:
    group = ", ".join(str(i + 1) for i in range(len(columns)))
    return (f"INSERT INTO {target} AS k ({_names(columns)}, deleted_at) "
            f"SELECT {_cast_keys(columns)}, max(deleted_at) FROM {stage} GROUP BY {group} "
            f"ON CONFLICT ({_names(key)}) DO UPDATE SET deleted_at = GREATEST(k.deleted_at, EXCLUDED.deleted_at)")


# --- 2. apply the batch's tombstones to existing rows -------------------------------------------------


def _kill(target: Target, source: str, join_columns) -> str:
    sets = [f"{qi(c.name)} = CASE WHEN {stored_ts('s', i + 1)} <= d.t THEN NULL ELSE s.{qi(c.name)} END"
            for i, c in enumerate(target.values) if not c.is_complex]
    schema = qi(target.schema)
    for c in complex_values(target):  # elements at or before the tombstone die
        floored = cells.floor_sql(schema, f"s.{qi(cells.state_column(c))}", "d.t")
        sets.append(f"{qi(c.name)} = {cells.render_sql(schema, c, floored)}")
        sets.append(f"{qi(cells.state_column(c))} = {floored}")
    sets.append(f"_ts = {_ts_array(target, lambda i: stored_ts('s', i), lambda i: 'd.t')}")
    sets.append("_row_del = GREATEST(s._row_del, d.t)")
    return (f"UPDATE {target.qstate} AS s SET {', '.join(sets)} FROM ({source}) AS d "
            f"WHERE {_eq(join_columns, 's', 'd')}")


def stored_ts(alias: str, i: int) -> str:
    """The writetime of value column i (from 1) in a row of the state table `alias` ("": unqualified).
    An empty `_ts` stands for `_wt` in every column: the row holds what one change wrote to all of
    them (the usual insert; staging._ts_field, `_ts_array_from`), and its array would be most of the
    row's bookkeeping."""
    a = f"{alias}." if alias else ""
    return f"COALESCE({a}_ts[{i}], CASE WHEN cardinality({a}_ts) = 0 THEN {a}_wt ELSE 0 END)"


def _ts_array(target: Target, left: Callable[[int], str], right: Callable[[int], str]) -> str:
    if not target.values:
        return "ARRAY[]::bigint[]"
    items = [f"GREATEST({left(i + 1)}, {right(i + 1)})" for i in range(len(target.values))]
    return f"ARRAY[{', '.join(items)}]"


def apply_tombstones_sql(names: TableNames, stages: StageNames, present: set[str]) -> list[str]:
    """`present`: which tombstone kinds the batch has ('partitions', 'rows', 'ranges')."""
    table = names.table
    pk = table.partition_key
    out = []
    if "partitions" in present:
        source = f"SELECT {_cast_keys(pk)}, max(deleted_at) AS t FROM {stages.partitions} " \
                 f"GROUP BY {', '.join(str(i + 1) for i in range(len(pk)))}"
        out.append(_kill(names.rows, source, pk))
        if names.static is not None:
            out.append(_kill(names.static, source, pk))
    if "rows" in present:
        key = pk + table.clustering
        source = f"SELECT {_cast_keys(key)}, max(deleted_at) AS t FROM {stages.row_deletes} " \
                 f"GROUP BY {', '.join(str(i + 1) for i in range(len(key)))}"
        out.append(_kill(names.rows, source, key))
    if "ranges" in present:
        key = names.rows.keys
        source = (f"SELECT {', '.join('x.' + qi(c.name) for c in key)}, max(g.deleted_at) AS t "
                  f"FROM {names.rows.qstate} AS x JOIN (SELECT {_cast_keys(pk)}, lo, hi, deleted_at "
                  f"FROM {stages.ranges}) AS g ON {_eq(pk, 'x', 'g')} AND x._ck >= g.lo AND x._ck < g.hi "
                  f"GROUP BY {', '.join('x.' + qi(c.name) for c in key)}")
        out.append(_kill(names.rows, source, key))
    return out


# --- 3. coalesce, check against tombstones, upsert ------------------------------------------------------


def _coalesced(target: Target, stage: str, duplicates: bool) -> str:
    keys = target.keys
    ck = ["_ck"] if target.has_ck else []
    if not duplicates:
        cols = [_cast_keys(keys), *ck]
        for i, c in enumerate(target.values):
            cols.append(f"{qi(c.name)} AS v{i}")
            cols.append(f"CASE WHEN _mask & {1 << i} <> 0 THEN _wt ELSE 0 END AS t{i}")
            if c.is_complex:
                cols.append(f"{qi(cells.state_column(c))} AS e{i}")
        cols += ["CASE WHEN _ins THEN _wt ELSE 0 END AS row_ts", "_wt", "_expires_at"]
        return f"SELECT {', '.join(cols)} FROM {stage}"
    order = "ORDER BY _wt DESC, _seq DESC"
    cols = [_cast_keys(keys), *(["(array_agg(_ck))[1] AS _ck"] if ck else [])]
    for i, c in enumerate(target.values):
        bit = f"_mask & {1 << i} <> 0"
        cols.append(f"(array_agg({qi(c.name)} {order}) FILTER (WHERE {bit}))[1] AS v{i}")
        cols.append(f"COALESCE(max(_wt) FILTER (WHERE {bit}), 0) AS t{i}")
        if c.is_complex:
            cols.append(f"{cells.agg_sql(qi(target.schema), qi(cells.state_column(c)))} AS e{i}")
    cols += ["COALESCE(max(_wt) FILTER (WHERE _ins), 0) AS row_ts", "max(_wt) AS _wt",
             f"(array_agg(_expires_at {order}))[1] AS _expires_at"]
    group = ", ".join(str(i + 1) for i in range(len(keys)))
    return f"SELECT {', '.join(cols)} FROM {stage} GROUP BY {group}"


def _tomb(names: TableNames, target: Target, kinds: set[str]) -> tuple[str, str]:
    """(joins, expression) of the newest kept tombstone covering each coalesced row `c`."""
    pk = names.table.partition_key
    joins, parts = [], ["0"]
    if "partitions" in kinds:
        joins.append(f"LEFT JOIN {names.q('__deleted_partitions')} AS p ON {_eq(pk, 'p', 'c')}")
        parts.append("p.deleted_at")
    if target.has_ck and "rows" in kinds:
        joins.append(f"LEFT JOIN {names.q('__deleted_rows')} AS r ON {_eq(target.keys, 'r', 'c')}")
        parts.append("r.deleted_at")
    if target.has_ck and "ranges" in kinds:
        # a LATERAL join, not a scalar subquery: the planner would inline that into every use of
        # `tomb` (two per column) and run it as many times per row
        joins.append(f"LEFT JOIN LATERAL (SELECT max(g.deleted_at) AS deleted_at FROM {names.q('__deleted_ranges')} "
                     f"AS g WHERE {_eq(pk, 'g', 'c')} AND c._ck >= g.lo AND c._ck < g.hi) AS g ON true")
        parts.append("g.deleted_at")
    return " ".join(joins), f"GREATEST({', '.join(parts)})"


def upsert_sql(names: TableNames, target: Target, stage: str, *, duplicates: bool, kinds: set[str],
               on_conflict: bool = True) -> str:
    """`kinds`: the tombstone tables that hold anything (the others need no lookup). Without
    `on_conflict`, a plain INSERT: for batches whose keys are all new (see `any_key_exists_sql`)."""
    joins, tomb = _tomb(names, target, kinds)
    checked = f"SELECT c.*, {tomb} AS tomb FROM ({_coalesced(target, stage, duplicates)}) AS c {joins}"
    keys = _names(target.keys)
    ck = ["_ck"] if target.has_ck else []
    schema = qi(target.schema)
    values, states, state_cols, sets = [], [], [], []
    for i, c in enumerate(target.values):
        name = qi(c.name)
        if not c.is_complex:
            values.append(f"CASE WHEN t{i} > tomb THEN {cast_sql(c.type, f'v{i}')} END")
            sets.append(f"{name} = CASE WHEN {stored_ts('EXCLUDED', i + 1)} > {stored_ts('s', i + 1)} "
                        f"THEN EXCLUDED.{name} "
                        f"ELSE s.{name} END")
            continue
        state = qi(cells.state_column(c))
        floored = cells.floor_sql(schema, f"e{i}", "tomb")
        values.append(cells.render_sql(schema, c, floored))
        states.append(floored)
        state_cols.append(state)
        merged = cells.merge_sql(schema, f"s.{state}", f"EXCLUDED.{state}")
        sets.append(f"{name} = {cells.render_sql(schema, c, merged)}")
        sets.append(f"{state} = {merged}")
    ts = _ts_array_from(target)
    select = ", ".join([keys, *ck, *values, *states, ts, "row_ts", "tomb", "_wt", "_expires_at"])
    insert_cols = ", ".join([keys, *ck, *(qi(c.name) for c in target.values), *state_cols,
                             "_ts", "_row_ts", "_row_del", "_wt", "_expires_at"])
    sets.append(f"_ts = {_ts_array(target, lambda i: stored_ts('s', i), lambda i: stored_ts('EXCLUDED', i))}")
    sets += ["_row_ts = GREATEST(s._row_ts, EXCLUDED._row_ts)", "_row_del = GREATEST(s._row_del, EXCLUDED._row_del)",
             # row-level expiry follows the row's newest change (see client.py: TTL)
             "_expires_at = CASE WHEN EXCLUDED._wt > s._wt THEN EXCLUDED._expires_at ELSE s._expires_at END",
             "_wt = GREATEST(s._wt, EXCLUDED._wt)"]
    if target.has_ck:
        sets.append("_ck = EXCLUDED._ck")
    insert = f"INSERT INTO {target.qstate} AS s ({insert_cols}) SELECT {select} FROM ({checked}) AS w"
    return f"{insert} ON CONFLICT ({keys}) DO UPDATE SET {', '.join(sets)}" if on_conflict else insert


def any_key_exists_sql(target: Target, stage: str) -> str:
    """Does any staged key exist in the state table? One primary-key probe per staged row: the LATERAL
    ... LIMIT 1 keeps the planner from hashing the whole state table."""
    probe = " AND ".join(f"s.{qi(c.name)} = {cast_sql(c.type, 'w.' + qi(c.name))}" for c in target.keys)
    return (f"SELECT EXISTS (SELECT 1 FROM {stage} AS w, "
            f"LATERAL (SELECT 1 FROM {target.qstate} AS s WHERE {probe} LIMIT 1) AS x)")


def _ts_array_from(target: Target) -> str:
    """A coalesced row's `_ts`: empty when every column's writetime is the row's `_wt` (`stored_ts`),
    as the direct path writes it."""
    if not target.values:
        return "ARRAY[]::bigint[]"
    items = [f"GREATEST(t{i}, tomb)" for i in range(len(target.values))]
    whole = " AND ".join(f"{item} = _wt" for item in items)
    return f"CASE WHEN {whole} THEN ARRAY[]::bigint[] ELSE ARRAY[{', '.join(items)}] END"


def kinds_present_sql(names: TableNames) -> str:
    """One round trip: which tombstone tables hold anything."""
    parts = [f"EXISTS (SELECT 1 FROM {names.q('__deleted_partitions')})"]
    if names.table.clustering:
        parts += [f"EXISTS (SELECT 1 FROM {names.q('__deleted_rows')})",
                  f"EXISTS (SELECT 1 FROM {names.q('__deleted_ranges')})"]
    return "SELECT " + ", ".join(parts)


OFFSETS_UPSERT = """INSERT INTO {table} AS o
    (destination, partition_id, node, segment_id, position, completed, events)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (destination, partition_id) DO UPDATE SET
    position = GREATEST(o.position, EXCLUDED.position),
    completed = o.completed OR EXCLUDED.completed,
    events = o.events + CASE WHEN EXCLUDED.position > o.position THEN EXCLUDED.events ELSE 0 END,
    updated_at = now()"""

# `ray-cdc offsets reset`: the position as given, forwards or backwards (the events count is kept)
OFFSETS_SET = """INSERT INTO {table} AS o (destination, partition_id, node, segment_id, position, completed)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (destination, partition_id) DO UPDATE SET
    position = EXCLUDED.position, completed = EXCLUDED.completed, updated_at = now()"""
