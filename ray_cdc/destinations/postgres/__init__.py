"""The PostgreSQL destination: tables from the Cassandra schema, binary COPY into staging tables, and a
set-based merge (per-column last-writer-wins, kept tombstones) committed together with the offsets.

Modules: `ddl` (types and tables), `ckey` (clustering order keys for range tombstones), `values`
(Arrow -> COPY values), `staging` (a batch -> staged rows), `merge` (the SQL), `errors` (psycopg
errors -> Transient/Fatal/bad data, in one place), `client` (the destination).
"""

from ray_cdc.destinations.postgres.client import PostgresDestination

__all__ = ["PostgresDestination"]
