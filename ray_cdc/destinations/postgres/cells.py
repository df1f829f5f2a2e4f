"""Non-frozen collections and UDTs in PostgreSQL: element-wise state, merged per element.

Cassandra keeps a non-frozen list/set/map/UDT as one cell per element, each with its own timestamp
(and TTL), plus a complex deletion (an overwrite or `DELETE c`). So, for such a column `c`, the state
table keeps, next to the user column `c` (jsonb, the rendered CQL value), a bookkeeping column
`"_cells.c"` (jsonb):

    {"d": complex deletion (µs; every element at or before it is dead),
     "x": the earliest expiry (epoch s) of the live elements, or null,
     "e": {element key: {"ts": µs, "v": value JSON, "k": map key JSON, "o": list order,
                         "x": expiry epoch s, "del": true for an element tombstone}}}

Element keys: a list cell's timeuuid (hex; `o` orders by its time, as Cassandra does), a set element
or map key as an order-preserving hex key (ckey.py encoding, else the CQL value bytes), a UDT field
name. Merging two states (`ray_cdc_cells_merge`, and the aggregate `ray_cdc_cells_agg` for a batch
with several changes of a key) takes the newest write per element (ties: the tombstone), the newest
complex deletion, and drops what a deletion covers (`ray_cdc_cells_floor`, which row, range and
partition tombstones also go through: a tombstone at T is a complex deletion at T for the elements).
`ray_cdc_cells_render` gives the CQL value as the project's JSON form: a list in timeuuid order, a
set and a non-text-keyed map (as [key, value] pairs) in Cassandra's element order, a text-keyed map
as an object, a UDT as an object with every field (null when unset); NULL when no element lives.
The state table's `c` ignores element TTLs (like the other state columns); the view re-renders `c`
without the expired elements once the earliest one has passed.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pyarrow as pa

from ray_cdc.commitlog.arrow_batches import cells_column
from ray_cdc.destinations.postgres.ckey import _python_values, _timeuuid, component_encoder
from ray_cdc.destinations.postgres.values import _as_is, decoded, json_value
from ray_cdc.schema.model import ColumnSchema

MIN_TS = -(2**63)
_TEXT = frozenset(("ascii", "text", "varchar"))


def state_column(column: ColumnSchema) -> str:
    return cells_column(column.name)


def render_kind(column: ColumnSchema) -> str:
    t = column.type
    if t.name == "map" and t.params[0].name in _TEXT:
        return "tmap"
    return t.name


def udt_template(column: ColumnSchema) -> str:
    t = column.type
    if t.name != "udt":
        return "NULL::jsonb"
    return _sql_string(json.dumps({n: None for n in t.field_names}, ensure_ascii=False)) + "::jsonb"


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- SQL ---------------------------------------------------------------------------------------------


def function_ddl(schema_q: str, schema: str) -> list[str]:
    """The functions (and the aggregate) of the element merge, in schema `schema_q` (quoted)."""
    s = schema_q
    floor = f"""CREATE OR REPLACE FUNCTION {s}.ray_cdc_cells_floor(st jsonb, t bigint) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$
SELECT CASE WHEN st IS NULL THEN NULL ELSE (
  SELECT jsonb_build_object('d', p.d,
    'e', COALESCE(jsonb_object_agg(e.key, e.value) FILTER (WHERE (e.value->>'ts')::bigint > p.d), '{{}}'::jsonb),
    'x', min((e.value->>'x')::bigint) FILTER (WHERE (e.value->>'ts')::bigint > p.d AND NOT (e.value ? 'del')))
  FROM (SELECT GREATEST(COALESCE((st->>'d')::bigint, {MIN_TS}), COALESCE(t, {MIN_TS})) AS d) AS p
  LEFT JOIN LATERAL jsonb_each(st->'e') AS e ON true
  GROUP BY p.d) END
$f$"""
    merge = f"""CREATE OR REPLACE FUNCTION {s}.ray_cdc_cells_merge(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$
SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a ELSE {s}.ray_cdc_cells_floor(jsonb_build_object(
  'd', GREATEST((a->>'d')::bigint, (b->>'d')::bigint),
  'e', COALESCE((SELECT jsonb_object_agg(COALESCE(x.key, y.key),
         CASE WHEN y.key IS NULL THEN x.value WHEN x.key IS NULL THEN y.value
              WHEN (y.value->>'ts')::bigint > (x.value->>'ts')::bigint THEN y.value
              WHEN (y.value->>'ts')::bigint < (x.value->>'ts')::bigint THEN x.value
              WHEN y.value ? 'del' THEN y.value
              WHEN x.value ? 'del' THEN x.value
              WHEN (y.value->'v')::text > (x.value->'v')::text THEN y.value ELSE x.value END)
       FROM jsonb_each(a->'e') AS x FULL JOIN jsonb_each(b->'e') AS y ON x.key = y.key), '{{}}'::jsonb)),
  NULL) END
$f$"""
    aggregate = (f"CREATE OR REPLACE AGGREGATE {s}.ray_cdc_cells_agg(jsonb) "
                 f"(SFUNC = {s}.ray_cdc_cells_merge, STYPE = jsonb)")
    render = f"""CREATE OR REPLACE FUNCTION {s}.ray_cdc_cells_render(st jsonb, kind text, template jsonb, at bigint)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$
SELECT CASE kind
  WHEN 'udt' THEN template || jsonb_object_agg(e.key, e.value->'v') FILTER (WHERE kind = 'udt')
  WHEN 'tmap' THEN jsonb_object_agg(e.value->>'k', e.value->'v') FILTER (WHERE kind = 'tmap')
  WHEN 'map' THEN jsonb_agg(jsonb_build_array(e.value->'k', e.value->'v') ORDER BY e.key COLLATE "C")
    FILTER (WHERE kind = 'map')
  ELSE jsonb_agg(e.value->'v' ORDER BY COALESCE(e.value->>'o', e.key) COLLATE "C") END
FROM jsonb_each(st->'e') AS e
WHERE NOT (e.value ? 'del') AND (e.value->>'ts')::bigint > COALESCE((st->>'d')::bigint, {MIN_TS})
  AND (at IS NULL OR e.value->>'x' IS NULL OR (e.value->>'x')::bigint > at)
$f$"""
    # functions are shared by the schema's tables: one creator at a time
    lock = f"SELECT pg_advisory_xact_lock(hashtext({_sql_string(schema + '.ray_cdc_cells')}))"
    return [lock, floor, merge, aggregate, render]


def floor_sql(schema_q: str, state: str, t: str) -> str:
    return f"{schema_q}.ray_cdc_cells_floor({state}, {t})"


def merge_sql(schema_q: str, a: str, b: str) -> str:
    return f"{schema_q}.ray_cdc_cells_merge({a}, {b})"


def agg_sql(schema_q: str, expr: str) -> str:
    return f"{schema_q}.ray_cdc_cells_agg({expr})"


def render_sql(schema_q: str, column: ColumnSchema, state: str, at: str = "NULL") -> str:
    return (f"{schema_q}.ray_cdc_cells_render({state}, '{render_kind(column)}', {udt_template(column)}, {at})")


def view_sql(schema_q: str, column: ColumnSchema, qname: str, qstate: str) -> str:
    """The view's column: the stored value, re-rendered without expired elements once one expired."""
    now = "floor(extract(epoch FROM now()))::bigint"
    return (f"CASE WHEN ({qstate}->>'x')::bigint <= {now} THEN {render_sql(schema_q, column, qstate, now)} "
            f"ELSE {qname} END")


# --- staging: a batch's `_cells.<c>` -> state jsonb ---------------------------------------------------


def _key_encoder(t):
    """Element (Arrow Python value) -> an order-preserving hex key of a set element / map key."""
    probe = SimpleNamespace(name="key", type=t, reversed=False)
    try:
        encode = component_encoder(probe)
    except NotImplementedError:
        encode = None

    def key_of(values: list) -> list[str]:
        if encode is not None:
            python = _python_values(probe, pa.array(values, t.arrow_type()))
            return [encode(v).hex() for v in python]
        return [t.encode(decoded(t, v)).hex() for v in values]
    return key_of


def stage_states(column: ColumnSchema, array: pa.Array) -> list:
    """The jsonb state (psycopg Jsonb, or None) of each row's `_cells.<column>`."""
    from psycopg.types.json import Jsonb

    t = column.type
    kind = t.name
    rows = array.to_pylist()
    keys: list[str] = []
    if kind in ("set", "map"):
        flat = [c["key"] for row in rows if row is not None for c in row["cells"]]
        keys = _key_encoder(t.params[0])(flat) if flat else []
    key_iter = iter(keys)
    out = []
    for row in rows:
        if row is None:
            out.append(None)
            continue
        elements = {}
        for cell in row["cells"]:
            element: dict = {"ts": cell["timestamp"]}
            if kind == "list":
                key = cell["key"].hex()
                element["o"] = _timeuuid(cell["key"]).hex()
            elif kind == "udt":
                key = cell["key"]
            else:
                key = next(key_iter)
                if kind == "map":
                    element["k"] = json_value(t.params[0], cell["key"])
            if cell["deleted"]:
                element["del"] = True
            else:
                if kind == "set":
                    element["v"] = json_value(t.params[0], cell["key"])
                elif kind == "udt":
                    ft = t.params[t.field_names.index(key)]
                    element["v"] = json_value(ft, (cell["value"] or {}).get(key))
                else:
                    element["v"] = json_value(t.element_value_type, cell["value"])
                if cell["expires_at"] is not None:
                    element["x"] = int(cell["expires_at"].timestamp())
            elements[key] = element
        d = row["replaced_at"]
        state = {"d": d if d is not None else MIN_TS, "e": elements}
        out.append(Jsonb(json.dumps(state, ensure_ascii=False), dumps=_as_is))
    return out
