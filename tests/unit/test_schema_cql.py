"""Table schemas from CQL DDL (`DESCRIBE KEYSPACE ... WITH INTERNALS` output) and back."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest

from ray_cdc.errors import CqlParseError
from ray_cdc.schema.cql import (
    Tokenizer,
    load_cql_schema,
    parse_cql_schema,
    quote_identifier,
    schema_to_cql,
    table_to_cql,
)
from ray_cdc.schema.model import ColumnKind, ColumnSchema, DroppedColumn, TableSchema
from ray_cdc.schema.types import parse_cql_type

USERS_ID = uuid.UUID("5a1c395e-b41f-11e5-9f22-ba0be0483c18")
ORDERS_ID = uuid.UUID("8f0e3a10-7cbb-11ee-9858-c9aa1eb53e69")
EVENTS_ID = uuid.UUID("0b6ac3b2-7cbc-11ee-9858-c9aa1eb53e69")
KV_ID = uuid.UUID("1d2e3f40-7cbc-11ee-9858-c9aa1eb53e69")

# Hand-written in the shape cqlsh prints `DESCRIBE KEYSPACE shop WITH INTERNALS` on Cassandra 4.1/5.0
# (TableMetadata.appendCqlTo / appendDropColumns): dropped columns inside the CREATE TABLE, then DROP,
# then ADD for a re-added one.
DESCRIBE_WITH_INTERNALS = """\
-- cqlsh> DESCRIBE KEYSPACE shop WITH INTERNALS
CREATE KEYSPACE shop WITH replication = {'class': 'org.apache.cassandra.locator.NetworkTopologyStrategy', \
'dc1': '3'}  AND durable_writes = true;

CREATE TYPE shop.address (
    street text,
    city text,
    zip int
);

CREATE TYPE shop.contact (
    name text,
    home frozen<address>,
    phones list<text>
);

/*
Warning: Table shop.legacy omitted because it has constructs not compatible with CQL (was created via legacy API).
CREATE TABLE shop.legacy (key blob PRIMARY KEY) WITH COMPACT STORAGE;
*/

CREATE TABLE shop.users (
    user_id uuid PRIMARY KEY,
    email text,
    "DisplayName" text,
    address frozen<address>,
    contacts map<text, frozen<contact>>,
    prefs map<text, text>,
    embedding vector<float, 3>,
    legacy_score int
) WITH ID = 5a1c395e-b41f-11e5-9f22-ba0be0483c18
    AND additional_write_policy = '99p'
    AND bloom_filter_fp_chance = 0.01
    AND caching = {'keys': 'ALL', 'rows_per_partition': 'NONE'}
    AND cdc = true
    AND comment = 'it''s the users table; see --docs'
    AND compaction = {'class': 'org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy', \
'max_threshold': '32', 'min_threshold': '4'}
    AND compression = {'chunk_length_in_kb': '16', 'class': 'org.apache.cassandra.io.compress.LZ4Compressor'}
    AND memtable = 'default'
    AND crc_check_chance = 1.0
    AND default_time_to_live = 0
    AND extensions = {}
    AND gc_grace_seconds = 864000
    AND max_index_interval = 2048
    AND memtable_flush_period_in_ms = 0
    AND min_index_interval = 128
    AND read_repair = 'BLOCKING'
    AND speculative_retry = '99p';
ALTER TABLE shop.users DROP legacy_score USING TIMESTAMP 1700000000000000;

CREATE INDEX users_email_idx ON shop.users (email);

CREATE CUSTOM INDEX users_embedding_idx ON shop.users (embedding) USING 'StorageAttachedIndex' \
WITH OPTIONS = {'similarity_function': 'cosine'};

CREATE TABLE shop.orders (
    customer_id uuid,
    order_time timestamp,
    order_id timeuuid,
    customer_name text static,
    items list<frozen<tuple<text, int, decimal>>>,
    totals map<text, decimal>,
    tags set<text>,
    note text,
    status int,
    PRIMARY KEY (customer_id, order_time, order_id)
) WITH ID = 8f0e3a10-7cbb-11ee-9858-c9aa1eb53e69
    AND CLUSTERING ORDER BY (order_time DESC, order_id ASC)
    AND cdc = true
    AND comment = ''
    AND default_time_to_live = 0
    AND gc_grace_seconds = 864000;
ALTER TABLE shop.orders DROP status USING TIMESTAMP 1690000000000000;
ALTER TABLE shop.orders ADD status text;

CREATE MATERIALIZED VIEW shop.orders_by_note AS
    SELECT *
    FROM shop.orders
    WHERE note IS NOT NULL AND customer_id IS NOT NULL AND order_time IS NOT NULL AND order_id IS NOT NULL
    PRIMARY KEY (note, customer_id, order_time, order_id)
 WITH ID = 9b0d7a3e-7cbc-11ee-9858-c9aa1eb53e69
    AND CLUSTERING ORDER BY (customer_id ASC, order_time DESC, order_id ASC)
    AND comment = ''
    AND gc_grace_seconds = 864000;

CREATE TABLE shop."Events" (
    "Tenant" text,
    day date,
    ts timestamp,
    seq bigint,
    "Payload" blob,
    "select" int,
    PRIMARY KEY (("Tenant", day), ts, seq)
) WITH ID = 0b6ac3b2-7cbc-11ee-9858-c9aa1eb53e69
    AND CLUSTERING ORDER BY (ts DESC, seq DESC)
    AND cdc = false;

// a table written by hand, with PRIMARY KEY (k) and an id as a string
CREATE TABLE IF NOT EXISTS shop.kv (
    k text,
    v blob,
    PRIMARY KEY (k)
) WITH id = '1d2e3f40-7cbc-11ee-9858-c9aa1eb53e69' AND comment = 'kv';

CREATE FUNCTION shop.add_one(x int)
    RETURNS NULL ON NULL INPUT
    RETURNS int
    LANGUAGE java
    AS $$return x + 1; /* not a comment */ -- nor this$$;

CREATE AGGREGATE shop.total(int)
    SFUNC add_one
    STYPE int
    INITCOND 0;

CREATE ROLE IF NOT EXISTS reporter WITH LOGIN = true AND PASSWORD = 'p;ss';
"""


def T(text: str, keyspace: str | None = "shop", user_types=None):
    return parse_cql_type(text, keyspace=keyspace, user_types=user_types)


@pytest.fixture(scope="module")
def tables() -> dict[str, TableSchema]:
    return {t.qualified_name: t for t in parse_cql_schema(DESCRIBE_WITH_INTERNALS, source="shop.cql")}


def user_types():
    address = (("street", T("text")), ("city", T("text")), ("zip", T("int")))
    types = {("shop", "address"): address}
    types[("shop", "contact")] = (
        ("name", T("text")),
        ("home", T("frozen<address>", user_types=types)),
        ("phones", T("list<text>")),
    )
    return types


# --- the realistic DESCRIBE output ---------------------------------------------------------------


def test_describe_output_yields_only_the_tables_in_order(tables):
    assert list(tables) == ["shop.users", "shop.orders", "shop.Events", "shop.kv"]


def test_single_column_primary_key_and_regular_columns(tables):
    users = tables["shop.users"]
    udts = user_types()
    assert users.id == USERS_ID
    assert users.options["id_known"] is True
    assert users.columns == (
        ColumnSchema("user_id", T("uuid"), ColumnKind.PARTITION_KEY, 0),
        ColumnSchema("email", T("text"), ColumnKind.REGULAR),
        ColumnSchema("DisplayName", T("text"), ColumnKind.REGULAR),
        ColumnSchema("address", T("frozen<address>", user_types=udts), ColumnKind.REGULAR),
        ColumnSchema("contacts", T("map<text, frozen<contact>>", user_types=udts), ColumnKind.REGULAR),
        ColumnSchema("prefs", T("map<text, text>"), ColumnKind.REGULAR),
        ColumnSchema("embedding", T("vector<float, 3>"), ColumnKind.REGULAR),
    )
    assert users.clustering == ()


def test_udt_columns_carry_their_fields(tables):
    address = tables["shop.users"].column("address").type
    assert (address.name, address.keyspace, address.udt_name, address.frozen) == (
        "udt",
        "shop",
        "address",
        True,
    )
    assert address.field_names == ("street", "city", "zip")
    home = tables["shop.users"].column("contacts").type.params[1].params[1]
    assert home == address


def test_dropped_column_keeps_its_type_and_time(tables):
    users = tables["shop.users"]
    assert users.dropped == (DroppedColumn("legacy_score", T("int"), 1700000000000000),)
    assert users.column("legacy_score") == ColumnSchema("legacy_score", T("int"), ColumnKind.REGULAR)


def test_dropped_then_re_added_column_is_live_with_the_new_type(tables):
    orders = tables["shop.orders"]
    assert orders.dropped == (DroppedColumn("status", T("int"), 1690000000000000),)
    assert orders.column("status") == ColumnSchema("status", T("text"), ColumnKind.REGULAR)
    assert orders.columns[-1].name == "status"


def test_compound_primary_key_static_and_desc_clustering(tables):
    orders = tables["shop.orders"]
    assert orders.id == ORDERS_ID
    assert orders.partition_key == (ColumnSchema("customer_id", T("uuid"), ColumnKind.PARTITION_KEY, 0),)
    assert orders.clustering == (
        ColumnSchema("order_time", T("timestamp"), ColumnKind.CLUSTERING, 0, reversed=True),
        ColumnSchema("order_id", T("timeuuid"), ColumnKind.CLUSTERING, 1, reversed=False),
    )
    assert orders.static == (ColumnSchema("customer_name", T("text"), ColumnKind.STATIC),)
    assert orders.column("items").type == T("list<frozen<tuple<text, int, decimal>>>")
    assert orders.column("tags").type == T("set<text>")


def test_composite_partition_key_and_quoted_identifiers(tables):
    events = tables["shop.Events"]
    assert (events.keyspace, events.name, events.id) == ("shop", "Events", EVENTS_ID)
    assert [(c.name, c.position) for c in events.partition_key] == [("Tenant", 0), ("day", 1)]
    assert [(c.name, c.position, c.reversed) for c in events.clustering] == [
        ("ts", 0, True),
        ("seq", 1, True),
    ]
    assert [c.name for c in events.regular] == ["Payload", "select"]


def test_primary_key_clause_with_one_column_and_quoted_id(tables):
    kv = tables["shop.kv"]
    assert kv.id == KV_ID
    assert kv.partition_key == (ColumnSchema("k", T("text"), ColumnKind.PARTITION_KEY, 0),)
    assert kv.options["comment"] == "kv"


def test_options_are_parsed_literals(tables):
    options = tables["shop.users"].options
    assert options["bloom_filter_fp_chance"] == 0.01
    assert options["cdc"] is True
    assert options["comment"] == "it's the users table; see --docs"
    assert options["caching"] == {"keys": "ALL", "rows_per_partition": "NONE"}
    assert options["compaction"]["max_threshold"] == "32"
    assert options["crc_check_chance"] == 1.0
    assert options["gc_grace_seconds"] == 864000
    assert options["extensions"] == {}
    assert "id" not in options
    assert tables["shop.Events"].options["cdc"] is False


def test_keyspace1_standard1_from_the_legacy_commitlog_corpus():
    (table,) = parse_cql_schema(
        'CREATE TABLE "Keyspace1"."Standard1" (key ascii, col ascii, val blob, PRIMARY KEY (key, col)) '
        "WITH ID = 657e5210-7cbb-11ee-9858-c9aa1eb53e69;"
    )
    assert table == TableSchema(
        "Keyspace1",
        "Standard1",
        uuid.UUID("657e5210-7cbb-11ee-9858-c9aa1eb53e69"),
        (
            ColumnSchema("key", T("ascii"), ColumnKind.PARTITION_KEY, 0),
            ColumnSchema("col", T("ascii"), ColumnKind.CLUSTERING, 0),
            ColumnSchema("val", T("blob"), ColumnKind.REGULAR),
        ),
    )


def test_load_cql_schema_reads_a_file(tmp_path):
    path = tmp_path / "schema.cql"
    path.write_text(DESCRIBE_WITH_INTERNALS, encoding="utf-8")
    assert [t.qualified_name for t in load_cql_schema(path)] == [
        "shop.users",
        "shop.orders",
        "shop.Events",
        "shop.kv",
    ]


# --- smaller forms -------------------------------------------------------------------------------


def test_table_without_id_gets_a_deterministic_placeholder():
    ddl = "CREATE TABLE ks.t (a int PRIMARY KEY, b text)"  # no final ';' either
    (first,) = parse_cql_schema(ddl)
    (second,) = parse_cql_schema(ddl)
    assert first.id == second.id == uuid.uuid3(uuid.NAMESPACE_OID, "ray_cdc:missing-id:ks.t")
    assert first.options["id_known"] is False


def test_use_and_default_keyspace_qualify_bare_names():
    ddl = "USE other; CREATE TYPE pt (x int, y int); CREATE TABLE t (k int PRIMARY KEY, p frozen<pt>);"
    (table,) = parse_cql_schema(ddl, default_keyspace="ignored")
    assert table.qualified_name == "other.t"
    assert table.column("p").type.keyspace == "other"
    (table,) = parse_cql_schema("CREATE TABLE t (k int PRIMARY KEY);", default_keyspace="dflt")
    assert table.qualified_name == "dflt.t"


def test_keywords_are_case_insensitive_and_bare_names_lower_cased():
    (table,) = parse_cql_schema(
        "create TABLE Ks.MyTable (Id INT, Name Text, Tags FROZEN<SET<TEXT>>, primary KEY ((id), name)) "
        "with clustering ORDER by (NAME desc) and CDC = TRUE;"
    )
    assert table.qualified_name == "ks.mytable"
    assert [c.name for c in table.columns] == ["id", "name", "tags"]
    assert table.column("tags").type == T("frozen<set<text>>")
    assert table.clustering[0].reversed
    assert table.options["cdc"] is True


def test_partition_key_in_double_parentheses_with_one_column():
    (table,) = parse_cql_schema("CREATE TABLE ks.t (a int, b int, c int, PRIMARY KEY ((a), b));")
    assert [c.name for c in table.partition_key] == ["a"]
    assert [c.name for c in table.clustering] == ["b"]


def test_alter_table_add_and_drop_lists_and_implicit_timestamp():
    before = time.time_ns() // 1000
    (table,) = parse_cql_schema(
        """CREATE TABLE ks.t (k int, c int, a int, b text, PRIMARY KEY (k, c));
        ALTER TABLE ks.t ADD (s int static, m map<int, text>);
        ALTER TABLE ks.t DROP (a, b);"""
    )
    assert [c.name for c in table.columns] == ["k", "c", "s", "m"]
    assert table.column("s").kind is ColumnKind.STATIC
    assert [d.name for d in table.dropped] == ["a", "b"]
    assert all(before <= d.dropped_at <= time.time_ns() // 1000 for d in table.dropped)


def test_masked_and_constrained_columns_are_read():
    (table,) = parse_cql_schema(
        "CREATE TABLE ks.t (k int PRIMARY KEY, "
        "email text MASKED WITH system.mask_default(), age int CHECK age > 0 AND age < 200) WITH ID = "
        "657e5210-7cbb-11ee-9858-c9aa1eb53e69;"
    )
    assert [(c.name, c.kind) for c in table.columns] == [
        ("k", ColumnKind.PARTITION_KEY),
        ("email", ColumnKind.REGULAR),
        ("age", ColumnKind.REGULAR),
    ]


def test_tokenizer_reads_strings_identifiers_and_numbers():
    tokens = Tokenizer(
        """'it''s' "a""b" $$x;y$$ -1.5e3 0xCAFE 5a1c395e-b41f-11e5-9f22-ba0be0483c18 Foo"""
    ).tokens()
    assert [(t.kind, t.value) for t in tokens] == [
        ("string", "it's"),
        ("qident", 'a"b'),
        ("dollar", "x;y"),
        ("number", -1500.0),
        ("blob", b"\xca\xfe"),
        ("uuid", USERS_ID),
        ("ident", "foo"),
    ]


@pytest.mark.parametrize(
    ("name", "quoted"),
    [("abc_1", "abc_1"), ("Abc", '"Abc"'), ("select", '"select"'), ("1a", '"1a"'), ('a"b', '"a""b"')],
)
def test_quote_identifier(name, quoted):
    assert quote_identifier(name) == quoted


# --- writing -------------------------------------------------------------------------------------


def test_table_to_cql_round_trips_tables_without_user_types(tables):
    for name in ("shop.orders", "shop.Events", "shop.kv"):
        table = tables[name]
        (again,) = parse_cql_schema(table_to_cql(table))
        assert again == table
        assert again.options == table.options


def test_table_to_cql_writes_clustering_order_and_id(tables):
    text = table_to_cql(tables["shop.orders"])
    assert text.startswith("CREATE TABLE shop.orders (")
    assert f"WITH ID = {ORDERS_ID}" in text
    assert "CLUSTERING ORDER BY (order_time DESC, order_id ASC)" in text
    assert "ALTER TABLE shop.orders DROP status USING TIMESTAMP 1690000000000000;" in text


def test_table_to_cql_leaves_out_a_placeholder_id():
    (table,) = parse_cql_schema('CREATE TABLE ks."T" (a int PRIMARY KEY);')
    text = table_to_cql(table)
    assert "ID =" not in text
    (again,) = parse_cql_schema(text)
    assert again == table and again.options["id_known"] is False


def test_schema_to_cql_round_trips_everything(tables):
    text = schema_to_cql(tables.values())
    assert text.index("CREATE TYPE shop.address") < text.index("CREATE TYPE shop.contact")
    assert text.count("CREATE KEYSPACE") == 1
    again = parse_cql_schema(text)
    assert again == list(tables.values())
    assert [t.options for t in again] == [t.options for t in tables.values()]


def test_schema_to_cql_quotes_keyspaces_and_tables():
    (table,) = parse_cql_schema(
        'CREATE TABLE "Keyspace1"."Standard1" (key ascii, col ascii, val blob, PRIMARY KEY (key, col)) '
        "WITH ID = 657e5210-7cbb-11ee-9858-c9aa1eb53e69;"
    )
    text = schema_to_cql([table])
    assert 'CREATE KEYSPACE "Keyspace1"' in text and 'CREATE TABLE "Keyspace1"."Standard1"' in text
    assert parse_cql_schema(text) == [table]


# --- errors --------------------------------------------------------------------------------------

ERRORS = {
    "unterminated string": ("CREATE TABLE ks.t (a int PRIMARY KEY)\nWITH comment = 'oops;\n\n", 2),
    "unterminated quoted identifier": ('\nCREATE TABLE ks."t (a int PRIMARY KEY);', 2),
    "unterminated block comment": ("CREATE TABLE ks.t (a int PRIMARY KEY);\n/* never closed\n", 2),
    "unterminated $$": ("\n\nCREATE FUNCTION f() AS $$ return", 3),
    "missing )": ("CREATE TABLE ks.t (\n    a int,\n    b int,\n    PRIMARY KEY (a, b)\nWITH cdc = true;", 5),
    "missing ) in primary key": ("CREATE TABLE ks.t (\n  a int,\n  PRIMARY KEY (a\n);", 4),
    "unclosed type": ("CREATE TABLE ks.t (\n  a int PRIMARY KEY,\n  m map<text, int\n);", 4),
    "unknown udt": (
        "CREATE TYPE ks.a (x int);\nCREATE TABLE ks.t (\n  a int PRIMARY KEY,\n  u frozen<b>\n);",
        4,
    ),
    "udt of another keyspace": (
        "CREATE TYPE ks.a (x int);\nCREATE TABLE ks2.t (a int PRIMARY KEY, u frozen<a>);",
        2,
    ),
    "bad uuid": ("CREATE TABLE ks.t (a int PRIMARY KEY)\n  WITH ID = 5a1c395e-b41f-11e5-9f22;", 2),
    "bad quoted uuid": ("CREATE TABLE ks.t (a int PRIMARY KEY)\n  WITH cdc = true\n  AND ID = 'nope';", 3),
    "primary key names unknown column": (
        "CREATE TABLE ks.t (\n  a int,\n  b int,\n  PRIMARY KEY (a, c)\n);",
        4,
    ),
    "primary key repeats a column": ("CREATE TABLE ks.t (a int, b int,\n PRIMARY KEY ((a, b), a));", 2),
    "duplicate column": ("CREATE TABLE ks.t (\n  a int PRIMARY KEY,\n  b int,\n  b text\n);", 4),
    "duplicate udt field": ("CREATE TYPE ks.u (\n  x int,\n  x int\n);", 3),
    "no primary key": ("\nCREATE TABLE ks.t (a int, b int);", 2),
    "two primary keys": ("CREATE TABLE ks.t (\n  a int PRIMARY KEY,\n  b int PRIMARY KEY\n);", 3),
    "static without clustering": ("CREATE TABLE ks.t (a int, c int,\n s int static, PRIMARY KEY (a));", 2),
    "clustering order of non-clustering column": (
        "CREATE TABLE ks.t (a int, c int, PRIMARY KEY (a, c))\n WITH CLUSTERING ORDER BY (a DESC);",
        2,
    ),
    "unqualified name without keyspace": ("\n\nCREATE TABLE t (a int PRIMARY KEY);", 3),
    "missing type": ("CREATE TABLE ks.t (\n  a PRIMARY KEY\n);", 2),
    "missing type before static": ("CREATE TABLE ks.t (k int, c int,\n  s static, PRIMARY KEY (k, c));", 2),
    "bad blob literal": ("CREATE TABLE ks.t (a int PRIMARY KEY)\n WITH extensions = {'x': 0xabc};", 2),
    "bad option value": ("CREATE TABLE ks.t (a int PRIMARY KEY)\n WITH comment = ;", 2),
    "trailing garbage": ("CREATE TABLE ks.t (a int PRIMARY KEY) cdc = true;", 1),
    "alter unknown table": ("CREATE TABLE ks.t (a int PRIMARY KEY);\nALTER TABLE ks.u ADD b int;", 2),
    "drop unknown column": ("CREATE TABLE ks.t (a int PRIMARY KEY);\nALTER TABLE ks.t DROP b;", 2),
    "drop key column": (
        "CREATE TABLE ks.t (a int PRIMARY KEY);\nALTER TABLE ks.t DROP a USING TIMESTAMP 1;",
        2,
    ),
    "bad drop timestamp": (
        "CREATE TABLE ks.t (a int PRIMARY KEY, b int);\nALTER TABLE ks.t DROP b USING TIMESTAMP x;",
        2,
    ),
    "add existing column": (
        "CREATE TABLE ks.t (a int PRIMARY KEY, b int);\n\nALTER TABLE ks.t ADD b int;",
        3,
    ),
    "unknown alter action": ("CREATE TABLE ks.t (a int PRIMARY KEY);\nALTER TABLE ks.t TRUNCATE;", 2),
    "table defined twice": (
        "CREATE TABLE ks.t (a int PRIMARY KEY);\nCREATE TABLE ks.t (a int PRIMARY KEY);",
        2,
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_name_the_line(case):
    text, line = ERRORS[case]
    with pytest.raises(CqlParseError) as info:
        parse_cql_schema(text, source="schema.cql")
    assert (info.value.source, info.value.line) == ("schema.cql", line), str(info.value)
    assert str(info.value).endswith(f"(schema.cql:{line})")


def test_error_message_says_what_was_expected():
    with pytest.raises(CqlParseError, match=r"expected the table id \(a UUID\)"):
        parse_cql_schema("CREATE TABLE ks.t (a int PRIMARY KEY) WITH ID = 42;")
    with pytest.raises(CqlParseError, match=r"expected '\)'"):
        parse_cql_schema("CREATE TABLE ks.t (a int, PRIMARY KEY (a) WITH cdc = true;")
    with pytest.raises(CqlParseError, match="unterminated string"):
        parse_cql_schema("CREATE TABLE ks.t (a int PRIMARY KEY) WITH comment = 'x")


def test_if_not_exists_keeps_the_first_definition():
    tables = parse_cql_schema(
        "CREATE TABLE ks.t (a int PRIMARY KEY);\nCREATE TABLE IF NOT EXISTS ks.t (b int PRIMARY KEY);"
    )
    assert [c.name for c in tables[0].columns] == ["a"] and len(tables) == 1


def test_rename_primary_key_column():
    (table,) = parse_cql_schema(
        "CREATE TABLE ks.t (a int, c int, v int, PRIMARY KEY (a, c));\nALTER TABLE ks.t RENAME c TO d AND a TO b;"
    )
    assert [(c.name, c.kind) for c in table.columns] == [
        ("b", ColumnKind.PARTITION_KEY),
        ("d", ColumnKind.CLUSTERING),
        ("v", ColumnKind.REGULAR),
    ]


def test_alter_table_with_updates_options():
    (table,) = parse_cql_schema(
        "CREATE TABLE ks.t (a int PRIMARY KEY) WITH cdc = false;\nALTER TABLE ks.t WITH cdc = true;"
    )
    assert table.options["cdc"] is True


def test_alter_if_exists_forms_skip_what_is_missing():
    (table,) = parse_cql_schema(
        "CREATE TABLE ks.t (a int PRIMARY KEY, b int);\n"
        "ALTER TABLE IF EXISTS ks.nope ADD c int;\n"
        "ALTER TABLE ks.t ADD IF NOT EXISTS b text;\n"
        "ALTER TABLE ks.t DROP IF EXISTS zz;"
    )
    assert table.column("b").type == T("int") and table.dropped == ()


def test_mixed_case_user_types_round_trip():
    ddl = """CREATE TYPE "Ks"."Point" ("X" int, y int);
    CREATE TYPE "Ks".line (a frozen<"Point">, "B" frozen<"Ks"."Point">);
    CREATE TABLE "Ks".t (k int PRIMARY KEY, l frozen<line>, p "Point", q list<frozen<"Point">>);"""
    (table,) = parse_cql_schema(ddl)
    point = table.column("p").type
    assert (point.keyspace, point.udt_name, point.field_names, point.frozen) == (
        "Ks",
        "Point",
        ("X", "y"),
        False,
    )
    assert table.column("l").type.params == (dataclasses.replace(point, frozen=True),) * 2
    text = schema_to_cql([table])
    assert text.index('CREATE TYPE "Ks"."Point"') < text.index('CREATE TYPE "Ks".line')
    assert parse_cql_schema(text) == [table]


def test_dropped_static_column_keeps_its_kind():
    (table,) = parse_cql_schema(
        "CREATE TABLE ks.t (k int, c int, s text static, PRIMARY KEY (k, c));\n"
        "ALTER TABLE ks.t DROP s USING TIMESTAMP 5;"
    )
    assert table.dropped == (DroppedColumn("s", T("text"), 5, ColumnKind.STATIC),)
    assert parse_cql_schema(table_to_cql(table)) == [table]
