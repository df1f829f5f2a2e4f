"""`offsets reset` plans: what moving a node to SEGMENT_ID:OFFSET changes in one destination."""

from __future__ import annotations

from ray_cdc.cli.reset_plan import plan_reset
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.offsets import Offset


def book(*offsets: Offset) -> dict[str, Offset]:
    return {o.partition_id: o for o in offsets}


def test_going_back_inside_a_segment_reopens_it_and_forgets_later_segments():
    committed = book(Offset("a", 10, 900, True), Offset("a", 11, 800, True), Offset("a", 12, 300),
                     Offset("b", 12, 50))
    plan = plan_reset("a", CommitLogPosition(11, 200), committed, {10: 900, 11: 800, 12: 400})
    assert plan.set == [Offset("a", 11, 200, completed=False)]
    assert plan.drop == ["a/12"]
    assert plan.changes == ["a/11: 11:800 (completed) -> 11:200", "a/12: 12:300 -> nothing applied"]


def test_going_forward_marks_earlier_segments_completed_at_their_durable_end():
    committed = book(Offset("a", 10, 100))
    plan = plan_reset("a", CommitLogPosition(12, 64), committed, {10: 900, 11: 700, 12: 400, 13: 50})
    assert plan.set == [Offset("a", 10, 100, True), Offset("a", 11, 700, True), Offset("a", 12, 64)]
    assert plan.drop == []  # segment 13 had no offset: nothing to forget


def test_other_nodes_are_untouched_and_an_unchanged_node_is_an_empty_plan():
    committed = book(Offset("a", 10, 900, True), Offset("a", 11, 64), Offset("b", 11, 5))
    plan = plan_reset("a", CommitLogPosition(11, 64), committed, {10: 900, 11: 500})
    assert plan.empty and plan.changes == []


def test_a_target_segment_not_on_disk_still_gets_its_offset():
    plan = plan_reset("a", CommitLogPosition(99, 0), {}, {})
    assert plan.set == [Offset("a", 99, 0)] and plan.drop == []
