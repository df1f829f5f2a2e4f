"""The ClickHouse destination (ReplacingMergeTree, per-column merge, token-deduplicated inserts)."""

from ray_cdc.destinations.clickhouse.destination import ClickHouseDestination

__all__ = ["ClickHouseDestination"]
