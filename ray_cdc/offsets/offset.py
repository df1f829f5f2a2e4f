"""The offset value object: a position in one node's commitlog, that only moves forward.

A partition is one segment of one node (`node/segment_id`): segments are replayed independently and
each has its own resume point. An offset is saved only together with the data it covers, in the
same destination transaction, so a destination's offsets say exactly what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.errors import RayCdcError


class OffsetRegressionError(RayCdcError):
    """An offset was asked to move backwards: a bug upstream, never silently accepted."""


def partition_id(node: str, segment_id: int) -> str:
    return f"{node}/{segment_id}"


@dataclass(frozen=True, order=True, slots=True)
class Offset:
    """Everything up to and including `position` of `node`'s segment `segment_id` is applied.

    `completed` marks the end of the segment (its `_cdc.idx` said COMPLETED and every entry up
    to the durable end was applied): the segment may then be archived or deleted.
    """

    node: str
    segment_id: int
    position: int
    completed: bool = False

    @property
    def partition_id(self) -> str:
        return partition_id(self.node, self.segment_id)

    @property
    def commitlog_position(self) -> CommitLogPosition:
        return CommitLogPosition(self.segment_id, self.position)

    def covers(self, position: CommitLogPosition) -> bool:
        """True when the change at `position` is already applied (replay must skip it)."""
        return position.segment_id < self.segment_id or (
            position.segment_id == self.segment_id and position.offset <= self.position)

    def advance(self, newer: Offset) -> Offset:
        """The later of the two; moving backwards is an error, not a no-op."""
        if (newer.node, newer.segment_id) != (self.node, self.segment_id):
            raise ValueError(f"offset of {newer.partition_id} cannot advance {self.partition_id}")
        if newer.position < self.position or (self.completed and not newer.completed):
            raise OffsetRegressionError(f"offset of {self.partition_id} would move back from "
                                        f"{self.position} to {newer.position}")
        return newer
