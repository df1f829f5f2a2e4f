"""The `snapshot` section: the initial snapshot of tables that already hold data (ray_cdc.snapshot).

    snapshot:
      enabled: true
      consistency: LOCAL_QUORUM   # of the range reads
      fetch_size: 5000            # rows per page (the driver's paging)
      parallelism: 4              # reader actors reading ranges at once
      split_count: null           # ranges over the whole ring; null: from size estimates, else
      ranges_per_node: 64         #   ranges_per_node x nodes (Cassandra < 2.1.5 has no estimates)
      partitions_per_split: 100000
      batch_rows: 65536           # rows per change set handed to the writers
      max_in_flight_batches: 4    # per destination and reader
      progress_interval: 5s       # how often progress goes to the log
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ray_cdc.config.values import Count, Duration

Consistency = Literal["ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE"]


class SnapshotConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo'd key is an error, as in every section

    enabled: bool = True
    consistency: Consistency = "LOCAL_QUORUM"
    fetch_size: Annotated[Count, Field(le=1_000_000)] = 5000
    parallelism: Annotated[Count, Field(le=1024)] = 4
    split_count: Count | None = None
    ranges_per_node: Count = 64
    partitions_per_split: Count = 100_000
    batch_rows: Count = 65536
    max_in_flight_batches: Annotated[Count, Field(le=1024)] = 4
    progress_interval: Duration = 5.0

    def plan_settings(self):
        from ray_cdc.snapshot.ranges import PlanSettings

        return PlanSettings(self.split_count, self.ranges_per_node, self.partitions_per_split)
