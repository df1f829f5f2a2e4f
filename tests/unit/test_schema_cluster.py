"""tables_from_metadata on cassandra-driver metadata objects built in-process (no network)."""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from collections import OrderedDict

import pytest
from cassandra.metadata import (
    ColumnMetadata,
    KeyspaceMetadata,
    MaterializedViewMetadata,
    Metadata,
    TableMetadata,
    UserType,
)

from ray_cdc.errors import CqlTypeError, SchemaError
from ray_cdc.schema.cluster import (
    DroppedColumnInfo,
    _micros,
    legacy_marshal_type,
    tables_from_metadata,
    user_types_from_metadata,
)
from ray_cdc.schema.model import ColumnKind, DroppedColumn
from ray_cdc.schema.types import parse_cql_type

PK, CK, REG, ST = ColumnKind.PARTITION_KEY, ColumnKind.CLUSTERING, ColumnKind.REGULAR, ColumnKind.STATIC

ORDERS_ID = uuid.UUID("5a1c3d4e-0f00-11ee-be56-0242ac120002")
VIEW_ID = uuid.UUID("6b2d4e5f-0f00-11ee-be56-0242ac120002")


def _keyspace(name: str) -> KeyspaceMetadata:
    return KeyspaceMetadata(name, True, "SimpleStrategy", {"replication_factor": "1"})


def _table(keyspace: str, name: str, pk, ck=(), others=(), options=None, into=None) -> TableMetadata:
    """pk / ck / others: (name, cql type[, flag]) - flag is is_reversed for ck, is_static for others.
    `into`: fill this (view) metadata object instead of a new TableMetadata."""
    table = into if into is not None else TableMetadata(keyspace, name, options=options)
    cols = OrderedDict()
    for col_name, cql in pk:
        col = ColumnMetadata(table, col_name, cql)
        table.partition_key.append(col)
        cols[col_name] = col
    for col_name, cql, reversed_ in ck:
        col = ColumnMetadata(table, col_name, cql, is_reversed=reversed_)
        table.clustering_key.append(col)
        cols[col_name] = col
    for col_name, cql, static in others:
        cols[col_name] = ColumnMetadata(table, col_name, cql, is_static=static)
    table.columns = cols
    return table


def _metadata() -> Metadata:
    """A 4.x-style schema: table ids in options['id'] (as a 3.0+ system_schema.tables row has it),
    cdc, user types whose definition order is not their dependency order, a view, a virtual table."""
    shop = _keyspace("shop")
    # customer uses address, which uses geo: neither insertion nor name order is dependency order
    shop.user_types["customer"] = UserType(
        "shop", "customer", ["name", "home", "past"], ["text", "frozen<address>", "list<frozen<address>>"]
    )
    shop.user_types["address"] = UserType("shop", "address", ["street", "pos"], ["text", "frozen<geo>"])
    shop.user_types["geo"] = UserType("shop", "geo", ["lat", "lon"], ["double", "double"])

    orders = _table(
        "shop",
        "orders",
        pk=[("region", "text"), ("bucket", "int")],
        ck=[("placed", "timeuuid", True), ("line", "smallint", False)],
        others=[
            ("note", "text", True),
            ("amount", "decimal", False),
            ("items", "map<text, frozen<list<int>>>", False),
            ("buyer", "customer", False),  # 3.6+: a non-frozen (multi-cell) user type
            ("ship_to", "frozen<address>", False),
            ("labels", "set<text>", False),
            ("v", "vector<float, 3>", False),
            ("d", "duration", False),
        ],
        options={"id": ORDERS_ID, "cdc": True, "comment": "", "gc_grace_seconds": 864000},
    )
    shop._add_table_metadata(orders)

    view = MaterializedViewMetadata(
        "shop", "orders_by_amount", "orders", False, "amount IS NOT NULL", {"id": VIEW_ID}
    )
    _table(
        "shop",
        "orders_by_amount",
        pk=[("amount", "decimal")],
        ck=[
            ("region", "text", False),
            ("bucket", "int", False),
            ("placed", "timeuuid", True),
            ("line", "smallint", False),
        ],
        into=view,
    )
    shop._add_view_metadata(view)

    sys_ks = _keyspace("system_schema")
    sys_ks._add_table_metadata(
        _table(
            "system_schema",
            "tables",
            pk=[("keyspace_name", "text")],
            ck=[("table_name", "text", False)],
            others=[("id", "uuid", False)],
            options={"id": uuid.UUID("afddfb9d-bc1e-3068-8056-eed6c302ba09")},
        )
    )

    views_ks = _keyspace("system_views")
    virtual = _table("system_views", "clients", pk=[("address", "inet")])
    virtual.virtual = True
    views_ks._add_table_metadata(virtual)

    md = Metadata()
    md.keyspaces = {"shop": shop, "system_schema": sys_ks, "system_views": views_ks}
    return md


def test_4x_table_columns_kinds_positions_types_and_options():
    tables = tables_from_metadata(_metadata())
    assert [t.qualified_name for t in tables] == ["shop.orders", "shop.orders_by_amount"]
    orders = tables[0]

    assert orders.id == ORDERS_ID
    assert orders.options == {"id_known": True, "cdc": True}
    got = [(c.name, c.kind, c.position, c.reversed, c.type.cql()) for c in orders.columns]
    assert got == [
        ("region", PK, 0, False, "text"),
        ("bucket", PK, 1, False, "int"),
        ("placed", CK, 0, True, "timeuuid"),
        ("line", CK, 1, False, "smallint"),
        ("note", ST, 0, False, "text"),
        ("amount", REG, 0, False, "decimal"),
        ("items", REG, 0, False, "map<text, frozen<list<int>>>"),
        ("buyer", REG, 0, False, "customer"),
        ("ship_to", REG, 0, False, "frozen<address>"),
        ("labels", REG, 0, False, "set<text>"),
        ("v", REG, 0, False, "vector<float, 3>"),
        ("d", REG, 0, False, "duration"),
    ]
    multicell = {c.name for c in orders.columns if c.type.is_multicell}
    assert multicell == {"items", "buyer", "labels"}
    assert [c.name for c in orders.static] == ["note"]

    buyer = orders.column("buyer").type
    assert (buyer.keyspace, buyer.udt_name, buyer.field_names) == (
        "shop",
        "customer",
        ("name", "home", "past"),
    )
    home = buyer.params[1]
    assert home.cql() == "frozen<address>" and home.field_names == ("street", "pos")
    assert home.params[1].field_names == ("lat", "lon")  # geo, resolved before address


def test_view_gets_its_own_id_and_marks():
    view = tables_from_metadata(_metadata())[1]
    assert view.id == VIEW_ID
    assert view.options == {"id_known": True, "view": True, "base_table": "orders"}
    assert [(c.name, c.kind, c.position, c.reversed) for c in view.columns] == [
        ("amount", PK, 0, False),
        ("region", CK, 0, False),
        ("bucket", CK, 1, False),
        ("placed", CK, 2, True),
        ("line", CK, 3, False),
    ]
    assert tables_from_metadata(_metadata(), include_views=False)[-1].name == "orders"


def test_system_keyspaces_only_when_named():
    md = _metadata()
    assert {t.keyspace for t in tables_from_metadata(md)} == {"shop"}
    (tables,) = tables_from_metadata(md, keyspaces=["system_schema"])
    assert (tables.qualified_name, tables.id) == (
        "system_schema.tables",
        uuid.UUID("afddfb9d-bc1e-3068-8056-eed6c302ba09"),
    )
    assert tables_from_metadata(md, keyspaces="system_views") == []  # virtual tables have no commitlog
    with pytest.raises(SchemaError, match="nope"):
        tables_from_metadata(md, keyspaces=["shop", "nope"])
    # a plain dict name -> KeyspaceMetadata works too
    assert [t.name for t in tables_from_metadata(md.keyspaces, keyspaces=["shop"])] == [
        "orders",
        "orders_by_amount",
    ]


def test_table_ids_argument_wins_and_missing_id_is_a_placeholder():
    md = _metadata()
    other = uuid.uuid4()
    orders = tables_from_metadata(md, table_ids={("shop", "orders"): str(other)})[0]
    assert orders.id == other and orders.options["id_known"] is True

    md.keyspaces["shop"].tables["orders"].options.pop("id")
    a = tables_from_metadata(md)[0]
    b = tables_from_metadata(_metadata_without_id())[0]
    assert a.options["id_known"] is False
    assert a.id == b.id  # deterministic placeholder, as ray_cdc.schema.cql gives
    assert a.id == uuid.uuid3(uuid.NAMESPACE_OID, "ray_cdc:missing-id:shop.orders")


def _metadata_without_id() -> Metadata:
    md = _metadata()
    md.keyspaces["shop"].tables["orders"].options.pop("id")
    return md


def test_dropped_columns():
    at = 1_700_000_000_123_456
    md = _metadata()
    dropped = {
        ("shop", "orders"): [
            DroppedColumnInfo("old_addr", "frozen<address>", at),
            DroppedColumnInfo("old_note", "text", at - 5, "static"),
            DroppedColumnInfo("legacy", None, at + 1),  # 2.1/2.2: no type recorded
            DroppedColumn("given", parse_cql_type("int"), at + 2),
        ]
    }
    orders = tables_from_metadata(md, dropped_columns=dropped)[0]
    assert [(d.name, d.type.cql(), d.dropped_at, d.kind) for d in orders.dropped] == [
        ("old_note", "text", at - 5, ST),
        ("old_addr", "frozen<address>", at, REG),
        ("legacy", "blob", at + 1, REG),
        ("given", "int", at + 2, REG),
    ]
    assert orders.options["dropped_types_unknown"] is True
    assert orders.column("old_addr").type.field_names == ("street", "pos")


def test_user_types_in_dependency_order():
    user_types = user_types_from_metadata(_metadata().keyspaces["shop"])
    assert list(user_types) == [("shop", "geo"), ("shop", "address"), ("shop", "customer")]
    assert [name for name, _ in user_types[("shop", "customer")]] == ["name", "home", "past"]


def test_bad_type_names_table_and_column():
    md = _metadata()
    md.keyspaces["shop"].tables["orders"].columns["amount"].cql_type = "map<text"
    with pytest.raises(CqlTypeError, match=r"shop\.orders column amount"):
        tables_from_metadata(md)


def test_driver_parse_failure_without_rows_is_a_schema_error():
    md = _metadata()
    table = md.keyspaces["shop"].tables["orders"]
    try:
        raise AttributeError("'int' object has no attribute 'cassname'")
    except AttributeError:
        table._exc_info = sys.exc_info()
    with pytest.raises(SchemaError, match=r"shop\.orders: the driver could not read"):
        tables_from_metadata(md)


M = "org.apache.cassandra.db.marshal."
ADDRESS = f"{M}UserType(ks,61646472657373,737472656574:{M}UTF8Type,7a6970:{M}Int32Type)"


def test_driver_parse_failure_falls_back_to_2x_schema_columns_rows():
    """The driver fails on 2.x user types whose hex name is all digits (`address`); the table is then
    built from its system.schema_columns rows."""
    ks = _keyspace("ks")
    broken = TableMetadata("ks", "shipments")
    try:
        raise AttributeError("'int' object has no attribute 'cassname'")
    except AttributeError:
        broken._exc_info = sys.exc_info()
    ks._add_table_metadata(broken)
    md = Metadata()
    md.keyspaces = {"ks": ks}
    rows = [
        {"column_name": "dest", "component_index": 1, "type": "regular", "validator": ADDRESS},
        {"column_name": "id", "component_index": None, "type": "partition_key", "validator": f"{M}UUIDType"},
        {"column_name": "s", "component_index": 1, "type": "static", "validator": f"{M}UTF8Type"},
        {
            "column_name": "seq",
            "component_index": 0,
            "type": "clustering_key",
            "validator": f"{M}ReversedType({M}Int32Type)",
        },
        {
            "column_name": "stops",
            "component_index": 1,
            "type": "regular",
            "validator": f"{M}ListType({ADDRESS})",
        },
    ]
    cf_id = uuid.uuid1()
    (table,) = tables_from_metadata(
        md, table_ids={("ks", "shipments"): cf_id}, legacy_column_rows={("ks", "shipments"): rows}
    )
    assert table.id == cf_id
    assert [
        (c.name, c.kind, c.position, c.reversed, c.type.cql(), c.type.is_multicell) for c in table.columns
    ] == [
        ("id", PK, 0, False, "uuid", False),
        ("seq", CK, 0, True, "int", False),
        ("dest", REG, 0, False, "frozen<address>", False),
        ("s", ST, 0, False, "text", False),
        ("stops", REG, 0, False, "list<frozen<address>>", True),
    ]


def test_legacy_marshal_type_makes_implicit_freezing_explicit():
    assert legacy_marshal_type(f"{M}ReversedType({M}LongType)") == (f"{M}LongType", True)
    text, reversed_ = legacy_marshal_type(f"{M}MapType({M}UTF8Type,{M}TupleType({M}Int32Type,{M}UTF8Type))")
    assert not reversed_
    assert parse_cql_type(text).cql() == "map<text, tuple<int, text>>"
    assert parse_cql_type(text).params[1].frozen
    text, _ = legacy_marshal_type(ADDRESS)
    assert parse_cql_type(text).cql() == "frozen<address>" and not parse_cql_type(text).is_multicell
    already = f"{M}FrozenType({ADDRESS})"
    assert legacy_marshal_type(already)[0] == already
    assert parse_cql_type(legacy_marshal_type(f"{M}SetType({M}UTF8Type)")[0]).is_multicell


def test_micros_of_system_timestamps():
    assert _micros(dt.datetime(2024, 1, 2, 3, 4, 5, 678000)) == 1704164645678000
    assert _micros(dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)) == 1704164645678000
    assert _micros(1704164645678) == 1704164645678000
