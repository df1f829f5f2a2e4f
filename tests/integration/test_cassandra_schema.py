"""load_cluster_schema against the live Cassandra 2.1.0 test node (tests/services/cassandra_node.py).

Cassandra 2.1.0 has no frozen collections (`frozen<>` only on user types and tuples, CASSANDRA-7859
came in 2.1.1) and no non-frozen tuples or user types; the types here are what it accepts.
"""

from __future__ import annotations

import time
import uuid

import pytest

from ray_cdc.errors import SchemaError
from ray_cdc.schema.cluster import load_cluster_schema
from ray_cdc.schema.model import ColumnKind
from tests.services.cassandra_node import free_port

PK, CK, REG, ST = ColumnKind.PARTITION_KEY, ColumnKind.CLUSTERING, ColumnKind.REGULAR, ColumnKind.STATIC

KEYSPACE = "cdc_schema"

DDL = [
    f"CREATE KEYSPACE {KEYSPACE} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}",
    # `location` goes through the driver's metadata; `address` (hex name 61646472657373, all digits)
    # is one the driver cannot parse from 2.x marshal strings: its tables come from system.schema_columns.
    f"CREATE TYPE {KEYSPACE}.location (lat double, lon double, label text)",
    f"CREATE TYPE {KEYSPACE}.venue (name text, where_ frozen<location>, tags set<text>)",
    f"CREATE TYPE {KEYSPACE}.address (street text, city text, zip int)",
    f"""CREATE TABLE {KEYSPACE}.everything (
        pk_text text, pk_int int,
        ck_time timeuuid, ck_rank bigint,
        s_note text STATIC,
        c_text text, c_varchar varchar, c_ascii ascii,
        c_int int, c_bigint bigint, c_varint varint, c_decimal decimal,
        c_double double, c_float float, c_bool boolean,
        c_uuid uuid, c_timeuuid timeuuid, c_timestamp timestamp, c_inet inet, c_blob blob,
        c_list list<int>, c_set set<text>, c_map map<text, bigint>,
        c_list_udt list<frozen<location>>, c_map_tuple map<text, frozen<tuple<int, text>>>,
        c_tuple frozen<tuple<int, text, double>>,
        c_udt frozen<location>, c_venue frozen<venue>,
        PRIMARY KEY ((pk_text, pk_int), ck_time, ck_rank)
    ) WITH CLUSTERING ORDER BY (ck_time ASC, ck_rank DESC)""",
    f"""CREATE TABLE {KEYSPACE}.shipments (
        id uuid, seq int, dest frozen<address>, stops list<frozen<address>>, note text,
        PRIMARY KEY (id, seq)
    ) WITH CLUSTERING ORDER BY (seq DESC)""",
    f"CREATE TABLE {KEYSPACE}.simple (k int PRIMARY KEY, v text)",
]

# name -> (kind, position, reversed, cql)
EVERYTHING = {
    "pk_text": (PK, 0, False, "text"),
    "pk_int": (PK, 1, False, "int"),
    "ck_time": (CK, 0, False, "timeuuid"),
    "ck_rank": (CK, 1, True, "bigint"),
    "s_note": (ST, 0, False, "text"),
    "c_text": (REG, 0, False, "text"),
    "c_varchar": (REG, 0, False, "text"),  # varchar is text's alias: Cassandra stores UTF8Type
    "c_ascii": (REG, 0, False, "ascii"),
    "c_int": (REG, 0, False, "int"),
    "c_bigint": (REG, 0, False, "bigint"),
    "c_varint": (REG, 0, False, "varint"),
    "c_decimal": (REG, 0, False, "decimal"),
    "c_double": (REG, 0, False, "double"),
    "c_float": (REG, 0, False, "float"),
    "c_bool": (REG, 0, False, "boolean"),
    "c_uuid": (REG, 0, False, "uuid"),
    "c_timeuuid": (REG, 0, False, "timeuuid"),
    "c_timestamp": (REG, 0, False, "timestamp"),
    "c_inet": (REG, 0, False, "inet"),
    "c_blob": (REG, 0, False, "blob"),
    "c_list": (REG, 0, False, "list<int>"),
    "c_set": (REG, 0, False, "set<text>"),
    "c_map": (REG, 0, False, "map<text, bigint>"),
    "c_list_udt": (REG, 0, False, "list<frozen<location>>"),
    "c_map_tuple": (REG, 0, False, "map<text, tuple<int, text>>"),
    "c_tuple": (REG, 0, False, "tuple<int, text, double>"),
    "c_udt": (REG, 0, False, "frozen<location>"),
    "c_venue": (REG, 0, False, "frozen<venue>"),
}

SHIPMENTS = {
    "id": (PK, 0, False, "uuid"),
    "seq": (CK, 0, True, "int"),
    "dest": (REG, 0, False, "frozen<address>"),
    "stops": (REG, 0, False, "list<frozen<address>>"),
    "note": (REG, 0, False, "text"),
}

MULTICELL = {"c_list", "c_set", "c_map", "c_list_udt", "c_map_tuple", "stops"}


def _cf_ids(session) -> dict[str, uuid.UUID]:
    rows = session.execute(
        "SELECT columnfamily_name, cf_id FROM system.schema_columnfamilies WHERE keyspace_name = %s",
        [KEYSPACE],
    )
    return {r.columnfamily_name: r.cf_id for r in rows}


def _assert_columns(table, expected: dict) -> None:
    assert [c.name for c in table.columns if c.kind is PK] == [n for n, e in expected.items() if e[0] is PK]
    assert sorted(c.name for c in table.columns) == sorted(expected)
    for col in table.columns:
        kind, position, reversed_, cql = expected[col.name]
        assert (col.kind, col.position, col.reversed, col.type.cql()) == (kind, position, reversed_, cql), (
            col.name
        )
        assert col.type.is_multicell == (col.name in MULTICELL), col.name


@pytest.fixture(scope="module")
def schema_session(cassandra_node):
    session = cassandra_node.session()
    session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")
    for statement in DDL:
        session.execute(statement)
    yield session
    session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")


@pytest.mark.cassandra
def test_tables_types_kinds_and_ids(cassandra_node, schema_session):
    tables = load_cluster_schema(["127.0.0.1"], port=cassandra_node.port, protocol_version=3)
    by_name = {t.qualified_name: t for t in tables}
    assert {f"{KEYSPACE}.everything", f"{KEYSPACE}.shipments", f"{KEYSPACE}.simple"} <= set(by_name)
    assert not any(t.keyspace.startswith("system") for t in tables), "system keyspaces only when asked"

    everything = by_name[f"{KEYSPACE}.everything"]
    _assert_columns(everything, EVERYTHING)
    assert [c.name for c in everything.partition_key] == ["pk_text", "pk_int"]
    assert [(c.name, c.reversed) for c in everything.clustering] == [("ck_time", False), ("ck_rank", True)]
    assert [c.name for c in everything.static] == ["s_note"]

    udt = everything.column("c_venue").type
    assert (udt.keyspace, udt.udt_name, udt.field_names) == (KEYSPACE, "venue", ("name", "where_", "tags"))
    assert [f.cql() for f in udt.params][:2] == ["text", "frozen<location>"]

    _assert_columns(by_name[f"{KEYSPACE}.shipments"], SHIPMENTS)
    dest = by_name[f"{KEYSPACE}.shipments"].column("dest").type
    assert (dest.udt_name, dest.field_names) == ("address", ("street", "city", "zip"))

    cf_ids = _cf_ids(schema_session)
    for name in ("everything", "shipments", "simple"):
        table = by_name[f"{KEYSPACE}.{name}"]
        assert table.id == cf_ids[name]
        assert table.options["id_known"] is True
        assert "cdc" not in table.options  # 2.1 has no cdc option
        assert table.dropped == ()


@pytest.mark.cassandra
def test_keyspace_filter_and_explicit_system_keyspace(cassandra_node, schema_session):
    only = load_cluster_schema(
        "127.0.0.1", port=cassandra_node.port, keyspaces=[KEYSPACE], protocol_version=3
    )
    assert {t.keyspace for t in only} == {KEYSPACE}
    system = load_cluster_schema(
        ["127.0.0.1"], port=cassandra_node.port, keyspaces=["system"], protocol_version=3
    )
    local = {t.name: t for t in system}["local"]
    assert local.id == uuid.UUID("7ad54392-bcdd-35a6-8417-4e047860b377")  # name-based id of system.local
    with pytest.raises(SchemaError, match="no_such_keyspace"):
        load_cluster_schema(["127.0.0.1"], port=cassandra_node.port, keyspaces=["no_such_keyspace"])


@pytest.mark.cassandra
@pytest.mark.parametrize("factory", ["tuple_factory", "dict_factory", "named_tuple_factory"])
def test_given_session_with_any_row_factory(cassandra_node, schema_session, factory):
    import cassandra.query
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile

    profile = ExecutionProfile(row_factory=getattr(cassandra.query, factory))
    session = cassandra_node.session(execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    tables = {t.name: t for t in load_cluster_schema(session=session, keyspaces=KEYSPACE)}
    assert tables["everything"].id == _cf_ids(schema_session)["everything"]
    assert tables["shipments"].column("dest").type.cql() == "frozen<address>"


@pytest.mark.cassandra
def test_reload_sees_added_and_dropped_columns(cassandra_node, schema_session):
    before = {t.name: t for t in load_cluster_schema(session=schema_session, keyspaces=[KEYSPACE])}
    assert before["simple"].column("extra") is None

    schema_session.execute(f"ALTER TABLE {KEYSPACE}.simple ADD extra map<int, text>")
    after = {t.name: t for t in load_cluster_schema(session=schema_session, keyspaces=[KEYSPACE])}
    extra = after["simple"].column("extra")
    assert (extra.kind, extra.type.cql(), extra.type.is_multicell) == (REG, "map<int, text>", True)
    assert after["simple"].id == before["simple"].id

    dropped_after = time.time_ns() // 1000
    schema_session.execute(f"ALTER TABLE {KEYSPACE}.simple DROP v")
    again = {t.name: t for t in load_cluster_schema(session=schema_session, keyspaces=[KEYSPACE])}["simple"]
    assert [c.name for c in again.columns] == ["k", "extra"]
    # 2.1 records the drop time (µs) but not the type: the column reads back as a blob
    (dropped,) = again.dropped
    assert (dropped.name, dropped.type.cql(), dropped.kind) == ("v", "blob", REG)
    assert dropped_after - 60_000_000 <= dropped.dropped_at <= time.time_ns() // 1000 + 60_000_000
    assert again.options["dropped_types_unknown"] is True
    assert again.column("v").type.cql() == "blob"  # older data that still has v stays readable


def test_unreachable_host_is_a_schema_error_naming_host_and_port():
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(SchemaError) as info:
        load_cluster_schema(["127.0.0.1"], port=port, connect_timeout=2)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert time.monotonic() - started < 30


def test_error_never_shows_the_password():
    from cassandra.auth import PlainTextAuthProvider

    port = free_port()
    secret = "s3cr3t-pa55word"
    with pytest.raises(SchemaError) as info:
        load_cluster_schema(
            "127.0.0.1", port=port, auth_provider=PlainTextAuthProvider("user", secret), connect_timeout=2
        )
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert f"127.0.0.1:{port}" in str(info.value)
