"""The `writers` section: how many writer actors each destination gets, scaled from the backlog.

    writers:
      min: 1                    # writers per destination, always running
      max: 4                    # the most the backlog may scale a destination to
      target_drain: 30s         # scale up while the backlog would take longer than this to drain
      cooldown: 10s             # at least this long between two changes of one destination's count

Several writers of one destination apply whole change sets of *different* segments at the same
time; that is safe because every destination applies last-writer-wins by Cassandra writetime (the
order of different segments does not matter, as with RF > 1 duplicates) and every segment is its
own offset partition, only ever applied by one writer per pass.

Embedded chDB (`chdb://DIR`) always gets exactly one writer, whatever `max` says: the ClickHouse
engine runs inside the writer's process and only one process at a time may open its directory.
ClickHouse servers (`http(s)://`) and PostgreSQL/TimescaleDB scale up to `max`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ray_cdc.config.values import Count, Duration


class WritersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)  # a typo'd key is an error

    minimum: Annotated[Count, Field(alias="min", le=64)] = 1
    maximum: Annotated[Count, Field(alias="max", le=64)] = 1
    target_drain: Duration = 30.0
    cooldown: Duration = 10.0

    @model_validator(mode="after")
    def _ordered(self) -> WritersConfig:
        if self.minimum > self.maximum:
            raise ValueError(f"writers.min ({self.minimum}) is greater than writers.max ({self.maximum})")
        return self
