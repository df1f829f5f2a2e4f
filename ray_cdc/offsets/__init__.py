"""Offsets: how far each destination has applied each partition (node + segment) of the log."""

from ray_cdc.offsets.offset import Offset, OffsetRegressionError, partition_id

__all__ = ["Offset", "OffsetRegressionError", "partition_id"]
