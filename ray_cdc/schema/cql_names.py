"""How CQL writes names and string literals: the one place both the type renderer and the DDL
writer quote with, so a name reads back the same wherever it was written."""

from __future__ import annotations

import re

from ray_cdc.schema.type_names import SIMPLE_TYPE_WIDTHS

# Cassandra's reserved_keywords.txt (5.x), plus words older versions reserved, plus the type names (a UDT
# or column called `map` or `text` would read back as something else): quoting them is harmless.
_RESERVED = frozenset(SIMPLE_TYPE_WIDTHS) | {"list", "set", "map", "frozen", "tuple", "vector"} | frozenset(
    """add allow alter and apply asc authorize batch begin by columnfamily create delete desc describe drop
    entries execute from full grant if in index infinity insert into is keyspace limit materialized modify
    nan norecursive not null of on or order primary rename revoke schema select set table to token truncate
    unlogged update use using view where with constraint length check default unset mbean mbeans replace""".split()  # noqa: SIM905
)
_UNQUOTED_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")


def quote_identifier(name: str) -> str:
    """The identifier as CQL must write it: bare when it reads back the same, else double-quoted."""
    if _UNQUOTED_IDENTIFIER.fullmatch(name) and name not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def string_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
