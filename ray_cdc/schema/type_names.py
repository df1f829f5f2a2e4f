"""The simple type names and Cassandra's marshal package. They live in a module that imports
nothing so that the codec, rendering and parsing modules can share them without importing one
another."""

from __future__ import annotations

#: CQL names of the simple types, with the width they have in the commitlog (None = vbytes).
SIMPLE_TYPE_WIDTHS: dict[str, int | None] = {
    "ascii": None,
    "text": None,
    "varchar": None,
    "blob": None,
    "boolean": 1,
    "tinyint": None,
    "smallint": None,
    "int": 4,
    "bigint": 8,
    "varint": None,
    "float": 4,
    "double": 8,
    "decimal": None,
    "counter": None,
    "date": None,
    "time": None,
    "timestamp": 8,
    "duration": None,
    "uuid": 16,
    "timeuuid": 16,
    "inet": None,
    "empty": 0,
}

MARSHAL_PACKAGE = "org.apache.cassandra.db.marshal."
