"""The table schema a dead letter's payload carries, so an entry can be replayed on its own.

Stored as CQL DDL (`schema_to_cql`, user types included) in the payload's schema metadata: it is the
schema the rows were decoded and refused with, whatever the schema source says at replay time (a
schema read from the log itself is gone once its segments are), and any Arrow tool shows it.
"""

from __future__ import annotations

import pyarrow as pa

from ray_cdc.errors import CqlParseError, RayCdcError
from ray_cdc.schema.cql import parse_cql_schema
from ray_cdc.schema.cql_writer import schema_to_cql
from ray_cdc.schema.model import TableSchema

KEY = b"ray_cdc.table_cql"


class MissingTableSchemaError(RayCdcError):
    """A dead letter's payload does not carry a usable table schema; names the entry and table."""


def with_table_schema(batch: pa.RecordBatch, table: TableSchema) -> pa.RecordBatch:
    metadata = {**(batch.schema.metadata or {}), KEY: schema_to_cql([table]).encode()}
    return batch.replace_schema_metadata(metadata)


def table_schema_of(batch: pa.RecordBatch, *, entry: str) -> TableSchema:
    meta = batch.schema.metadata or {}
    keyspace, table = meta.get(b"keyspace", b"?").decode(), meta.get(b"table", b"?").decode()
    if KEY not in meta:
        raise MissingTableSchemaError(f"dead letter {entry} ({keyspace}.{table}): its payload has no "
                                      f"table schema (metadata key {KEY.decode()})")
    try:
        tables = parse_cql_schema(meta[KEY].decode(), source=f"dead letter {entry}")
    except (CqlParseError, UnicodeDecodeError) as exc:
        raise MissingTableSchemaError(f"dead letter {entry} ({keyspace}.{table}): unreadable table "
                                      f"schema: {exc}") from exc
    matching = [t for t in tables if (t.keyspace, t.name) == (keyspace, table)]
    if len(matching) != 1:
        raise MissingTableSchemaError(f"dead letter {entry}: its table schema does not define {keyspace}.{table}")
    return matching[0]
