"""ray_cdc: replicate Apache Cassandra changes into PostgreSQL, TimescaleDB and ClickHouse on Ray."""

__version__ = "0.1.0"
