"""The offsets table: what each partition (node/segment) of this destination has applied.

Written after the data, with the batch's dedup token; `_version` = position * 2 + completed makes
ReplacingMergeTree keep the furthest offset, so the stored offset can only move forward.
"""

from __future__ import annotations

import uuid

import pyarrow as pa

from ray_cdc.destinations.clickhouse import ddl
from ray_cdc.destinations.clickhouse.client import ClickHouseClient
from ray_cdc.destinations.clickhouse.literals import _string
from ray_cdc.offsets import Offset


class OffsetStore:
    def __init__(self, client: ClickHouseClient, database: str, destination: str):
        self.client = client
        self.database = database
        self.destination = destination
        self._known: dict[str, Offset] | None = None

    def create(self) -> None:
        self.client.command(f"CREATE DATABASE IF NOT EXISTS {ddl.quote(self.database)}")
        self.client.command(ddl.create_offsets(self.database))

    def load(self) -> dict[str, Offset]:
        sql = (f"SELECT node, segment_id, position, completed FROM {ddl.quote(self.database)}."
               f"{ddl.OFFSETS_TABLE} FINAL WHERE destination = {_string(self.destination)}")
        rows = self.client.query_arrow(sql).to_pylist()
        offsets = [Offset(r["node"], r["segment_id"], r["position"], bool(r["completed"])) for r in rows]
        self._known = {o.partition_id: o for o in offsets}
        return dict(self._known)

    def check_forward(self, offsets: list[Offset]) -> None:
        """Raises OffsetRegressionError when an offset would move back."""
        known = self._known if self._known is not None else self.load()
        for offset in offsets:
            previous = known.get(offset.partition_id)
            if previous is not None:
                previous.advance(offset)

    def save(self, offsets: list[Offset], token: str) -> None:
        if not offsets:
            return
        self._insert(offsets, f"offsets:{token}")

    def rewrite(self, offsets: list[Offset], drop: list[str]) -> None:
        """Set `offsets` as given, backwards too, and delete the partitions in `drop` (`ray-cdc
        offsets reset`). ClickHouse has no transaction: the old rows go first (a synchronous delete,
        since `_version` would keep a further offset over a nearer one), then the new ones; if this
        is interrupted in between, those partitions are read again from their start (harmless:
        last writer wins), and running the reset again completes it."""
        partitions = sorted({*drop, *(o.partition_id for o in offsets)})
        if partitions:
            listed = ", ".join(_string(p) for p in partitions)
            self.client.command(f"ALTER TABLE {ddl.quote(self.database)}.{ddl.OFFSETS_TABLE} DELETE WHERE "
                                f"destination = {_string(self.destination)} AND partition_id IN ({listed}) "
                                "SETTINGS mutations_sync = 2")
        if offsets:
            # a fresh token: a block equal to one inserted before would be dropped as a duplicate
            self._insert(offsets, f"offsets-reset:{uuid.uuid4().hex}")
        self._known = None

    def _insert(self, offsets: list[Offset], token: str) -> None:
        data = pa.table({
            "destination": [self.destination] * len(offsets),
            "partition_id": [o.partition_id for o in offsets],
            "node": [o.node for o in offsets],
            "segment_id": pa.array([o.segment_id for o in offsets], pa.int64()),
            "position": pa.array([o.position for o in offsets], pa.int64()),
            "completed": [o.completed for o in offsets],
            "_version": pa.array([o.position * 2 + int(o.completed) for o in offsets], pa.int64()),
        })
        self.client.insert_arrow(f"{self.database}.{ddl.OFFSETS_TABLE}", data,
                                 settings={"insert_deduplication_token": token})
        known = self._known if self._known is not None else {}
        for o in offsets:
            known[o.partition_id] = o
        self._known = known
