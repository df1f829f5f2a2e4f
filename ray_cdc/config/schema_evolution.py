"""The `schema_evolution` section: how destinations follow Cassandra's schema changes
(ray_cdc.destinations.evolution).

    schema_evolution:
      dropped_columns: keep   # keep: a dropped column stays, NULL from then on; drop: removed too
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class SchemaEvolutionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo'd key is an error, as in every section

    dropped_columns: Literal["keep", "drop"] = "keep"
