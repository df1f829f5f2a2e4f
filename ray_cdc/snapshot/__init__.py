"""The initial snapshot of tables that already hold data: token ranges read through cassandra-driver.

- `ranges`: the token ring split into ranges sized from `system.size_estimates` or a configured count.
- `progress`: a range's progress as an `Offset` (partition `snapshot/<keyspace.table>/<start token>`).
- `rows`: rows read with WRITETIME()/TTL() -> Arrow batches in the destinations' layout.
- `reader`: one range read page by page (driver paging) into change sets.
- `meter`: rows, ranges, rows/s and ETA on a terminal, in the logs and as metrics.

The Ray side is `ray_cdc.actors.snapshot` (reader actors) and `ray_cdc.pipeline.snapshot` (driver).
"""
