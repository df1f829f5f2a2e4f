"""Non-frozen collections and UDTs in ClickHouse: element-wise state, merged per element.

A non-frozen list/set/map/UDT column `c` is stored rendered (its CQL value, as `ddl.ch_type`), and its
element state lives in the bookkeeping column `_cells` (Map(String, String): column name -> JSON):

    {"d": complex deletion (µs; elements at or before it are dead),
     "e": {element key: [timestamp µs, value bytes hex (null: element tombstone), expiry s (0: never)]}}

Element keys are the hex of the cell path (a list cell's timeuuid, a set element's or map key's bytes),
or a UDT field name; values are the CQL bytes of the element (list, map value, UDT field; "" for a
set). The merge (`merge.Merger`) folds the stored state and the batch's changes of a key: the newest
write per element wins (ties: the tombstone), the newest complex deletion wins, and row, range and
partition tombstones act as a complex deletion. The rendered value holds every element not deleted
(list in timeuuid order, set and map in Cassandra's element order, UDT fields by name);
`_cells_exp` (Map(String, Array(UInt32))) holds, when some element expires, each rendered element's
expiry (0: never; a UDT: one per field), which the live view uses to leave out expired elements.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.commitlog.arrow_batches import cells_column
from ray_cdc.commitlog.builder import order_key
from ray_cdc.destinations.clickhouse.forms import to_stored
from ray_cdc.destinations.postgres.ckey import _timeuuid
from ray_cdc.destinations.postgres.values import decoded
from ray_cdc.schema.model import ColumnSchema

STATE_COLUMN = "_cells"
EXPIRY_COLUMN = "_cells_exp"
STATE_TYPE = pa.map_(pa.string(), pa.string())
EXPIRY_TYPE = pa.map_(pa.string(), pa.list_(pa.uint32()))
MIN_TS = -(2**63)


def _hex(t, value) -> str:
    return t.encode(decoded(t, value)).hex()


def change_states(column: ColumnSchema, array) -> list[dict | None]:
    """Each batch row's `_cells.<column>` as a state (None: the change does not touch the column)."""
    t = column.type
    kind = t.name
    out = []
    for row in array.to_pylist():
        if row is None:
            out.append(None)
            continue
        elements = {}
        for cell in row["cells"]:
            raw = cell["key"]
            if kind == "list":
                key = raw.hex()
            elif kind == "udt":
                key = raw
            else:
                key = _hex(t.params[0], raw)
            value = None
            if not cell["deleted"]:
                if kind == "set":
                    value = ""
                elif kind == "udt":
                    ft = t.params[t.field_names.index(key)]
                    field = (cell["value"] or {}).get(key)
                    value = "" if field is None else _hex(ft, field)
                else:
                    value = _hex(t.element_value_type, cell["value"])
            expires = cell["expires_at"]
            elements[key] = [cell["timestamp"], value, int(expires.timestamp()) if expires is not None else 0]
        d = row["replaced_at"]
        out.append({"d": d if d is not None else MIN_TS, "e": elements})
    return out


def merge(a: dict | None, b: dict | None) -> dict | None:
    if a is None:
        return b
    if b is None:
        return a
    elements = dict(a["e"])
    for key, cell in b["e"].items():
        old = elements.get(key)
        if old is None or cell[0] > old[0] or (cell[0] == old[0] and _wins_tie(cell, old)):
            elements[key] = cell
    return floor({"d": max(a["d"], b["d"]), "e": elements}, MIN_TS)


def _wins_tie(new, old) -> bool:
    if new[1] is None or old[1] is None:
        return new[1] is None
    return new[1] > old[1]


def floor(state: dict | None, t: int) -> dict | None:
    """The state with a deletion at `t` applied: elements at or before it are dropped."""
    if state is None:
        return None
    d = max(state["d"], int(t))
    return {"d": d, "e": {k: c for k, c in state["e"].items() if c[0] > d}}


def _sorted(column: ColumnSchema, live: list) -> list:
    t = column.type
    if t.name == "list":
        return sorted(live, key=lambda item: _timeuuid(bytes.fromhex(item[0])))
    if t.name in ("set", "map"):
        key_type = t.params[0]
        return sorted(live, key=lambda item: order_key(key_type, bytes.fromhex(item[0])))
    return live


def render(column: ColumnSchema, state: dict | None):
    """(Arrow Python value of the CQL type or None, per-element expiries or None when none expires,
    newest timestamp or -1, column expiry (0: some element never expires))."""
    if state is None:
        return None, None, -1, 0
    t = column.type
    newest = max([state["d"], *(c[0] for c in state["e"].values())])
    live = _sorted(column, [(k, c) for k, c in state["e"].items() if c[1] is not None])
    if not live:
        return None, None, newest, 0
    expiries = [c[2] for _, c in live]
    column_expiry = 0 if 0 in expiries else max(expiries)
    kind = t.name
    if kind == "list":
        vt = t.params[0]
        value = [vt.to_arrow_value(vt.decode(bytes.fromhex(c[1]))) for _, c in live]
    elif kind == "set":
        kt = t.params[0]
        value = [kt.to_arrow_value(kt.decode(bytes.fromhex(k))) for k, _ in live]
    elif kind == "map":
        kt, vt = t.params
        value = [(kt.to_arrow_value(kt.decode(bytes.fromhex(k))), vt.to_arrow_value(vt.decode(bytes.fromhex(c[1]))))
                 for k, c in live]
    else:
        by_field = dict(live)
        value, expiries = {}, []
        for name, ft in zip(t.field_names, t.params):
            cell = by_field.get(name)
            value[name] = ft.to_arrow_value(ft.decode(bytes.fromhex(cell[1]))) if cell is not None and cell[1] else None
            expiries.append(cell[2] if cell is not None else 0)
    return value, (expiries if any(expiries) else None), newest, column_expiry


def merged_column(column: ColumnSchema, current, changes, cur_idx: np.ndarray, chg_idx: np.ndarray, n: int,
                  tomb: np.ndarray):
    """The merged column of every key: (stored values, writetime per key (-1: none), expiry per key,
    live mask, state JSON per key (None: none), per-element expiries per key (None: none expire))."""
    states: list = [None] * n
    if current.num_rows:
        for row, entries in enumerate(current.column(STATE_COLUMN).to_pylist()):
            for name, text in entries or ():
                if name == column.name:
                    k = cur_idx[row]
                    states[k] = merge(states[k], json.loads(text))
    touching = changes.column(cells_column(column.name))
    rows = np.flatnonzero(pc.is_valid(touching).to_numpy(zero_copy_only=False))
    for row, state in zip(rows, change_states(column, touching.take(pa.array(rows)))):
        if state is not None:
            k = chg_idx[row]
            states[k] = merge(states[k], state)
    values: list = [None] * n
    ts, exp, alive = np.full(n, -1, np.int64), np.zeros(n, np.int64), np.zeros(n, bool)
    texts: list = [None] * n
    expiries: list = [None] * n
    # only keys with element state need Python work: the others keep no value, no cell
    for k in (k for k, state in enumerate(states) if state is not None):
        state = floor(states[k], tomb[k])
        value, element_exp, newest, column_exp = render(column, state)
        values[k] = value
        ts[k], exp[k], alive[k] = newest, column_exp, value is not None
        texts[k] = json.dumps(state, separators=(",", ":"))
        expiries[k] = element_exp
    stored = to_stored(pa.array(values, column.type.arrow_type()), column.type)
    return stored, ts, exp, alive, texts, expiries


def empty_maps(n: int, typ: pa.MapType) -> pa.Array:
    """`n` empty maps of `typ` (what a row without non-frozen collections stores)."""
    return pa.MapArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], typ.key_type),
                                   pa.array([], typ.item_type), type=typ)


def meta_columns(names: list[str], texts: list[list], expiries: list[list], n: int) -> tuple[pa.Array, pa.Array]:
    """`_cells` and `_cells_exp` of each key from the per-column lists of `merged_column`."""
    if not names:
        return empty_maps(n, STATE_TYPE), empty_maps(n, EXPIRY_TYPE)
    states, exps = [], []
    for k in range(n):
        states.append([(name, col[k]) for name, col in zip(names, texts) if col[k] is not None])
        exps.append([(name, col[k]) for name, col in zip(names, expiries) if col[k] is not None])
    return pa.array(states, STATE_TYPE), pa.array(exps, EXPIRY_TYPE)
