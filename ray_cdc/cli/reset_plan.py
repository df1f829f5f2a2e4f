"""What `ray-cdc offsets reset --node N --to SEGMENT_ID:OFFSET` changes in one destination.

Offsets are kept per partition (one segment of one node). Moving a node to S:O means: everything of
the node before that position counts as applied, nothing after it. So segment S gets offset O (not
completed), every later segment of the node loses its offset (read again from its start), and every
earlier one is marked completed: an existing offset keeps its position, a segment found on disk with
no offset gets its durable end. Going back is safe: the destinations apply Cassandra's last-writer-
wins by writetime, so changes applied twice converge to the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.offsets import Offset, partition_id


@dataclass(frozen=True)
class ResetPlan:
    set: list[Offset] = field(default_factory=list)  # written as given
    drop: list[str] = field(default_factory=list)  # partition ids whose offset is deleted
    changes: list[str] = field(default_factory=list)  # one line per partition, for the operator

    @property
    def empty(self) -> bool:
        return not self.set and not self.drop


def describe(offset: Offset | None) -> str:
    if offset is None:
        return "nothing applied"
    return f"{offset.segment_id}:{offset.position}" + (" (completed)" if offset.completed else "")


def plan_reset(node: str, target: CommitLogPosition, committed: dict[str, Offset],
               segment_ends: dict[int, int]) -> ResetPlan:
    """The changes moving `node` to `target` in one destination. `committed`: that destination's
    offsets (every node's); `segment_ends`: the node's segments on disk -> their durable end."""
    current = {o.segment_id: o for o in committed.values() if o.node == node}
    plan = ResetPlan()
    for segment_id in sorted(set(current) | set(segment_ends) | {target.segment_id}):
        before = current.get(segment_id)
        after = _wanted(node, segment_id, target, before, segment_ends.get(segment_id))
        if after == before:
            continue
        if after is None:
            plan.drop.append(partition_id(node, segment_id))
        else:
            plan.set.append(after)
        plan.changes.append(f"{partition_id(node, segment_id)}: {describe(before)} -> {describe(after)}")
    return plan


def _wanted(node: str, segment_id: int, target: CommitLogPosition, before: Offset | None,
            end: int | None) -> Offset | None:
    if segment_id > target.segment_id:
        return None
    if segment_id == target.segment_id:
        return Offset(node, segment_id, target.offset, completed=False)
    if before is not None:
        return Offset(node, segment_id, before.position, completed=True)
    return Offset(node, segment_id, end or 0, completed=True)
