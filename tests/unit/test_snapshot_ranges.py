"""Token range planning and snapshot progress as offsets (pure logic, no cluster)."""

from __future__ import annotations

import pytest

from ray_cdc.offsets import Offset
from ray_cdc.offsets.offset import OffsetRegressionError
from ray_cdc.snapshot.errors import SnapshotPlanError
from ray_cdc.snapshot.progress import common_done, covered, done_intervals, range_offset, snapshot_node
from ray_cdc.snapshot.ranges import (
    MAX_TOKEN,
    MAX_WIDTH,
    MIN_TOKEN,
    PlanSettings,
    RangeEstimate,
    TokenRange,
    complement,
    intersection,
    plan_ranges,
    ring_ranges,
    union,
)

WHOLE = TokenRange(MIN_TOKEN, MAX_TOKEN)


def contiguous(ranges):
    return all(a.end == b.start for a, b in zip(ranges, ranges[1:]))


def test_ring_covers_the_whole_token_space_with_owners():
    ring = ring_ranges([100, -5, 7], {-5: ("a",), 7: ("b",), 100: ("c",)})
    assert [(r.start, r.end) for r in ring] == [(MIN_TOKEN, -5), (-5, 7), (7, 100), (100, MAX_TOKEN)]
    assert [r.replicas for r in ring] == [("a",), ("b",), ("c",), ("a",)]  # the last range wraps to the first owner


def test_configured_count_gives_that_many_equal_contiguous_ranges():
    ring = ring_ranges([0], {0: ("a",)})
    plan = plan_ranges([WHOLE], ring, PlanSettings(split_count=16))
    assert len(plan) == 16 and plan[0].start == MIN_TOKEN and plan[-1].end == MAX_TOKEN and contiguous(plan)
    widths = [r.width for r in plan]
    assert max(widths) - min(widths) <= 2 and max(widths) <= MAX_WIDTH


def test_width_cap_forces_a_minimum_number_of_ranges():
    plan = plan_ranges([WHOLE], ring_ranges([]), PlanSettings(split_count=1))
    assert len(plan) >= 8 and all(r.width <= MAX_WIDTH for r in plan) and contiguous(plan)


def test_ranges_do_not_merge_across_primary_replicas():
    tokens = list(range(-(2**62), 2**62, 2**58))
    owners = {t: ("a" if i % 2 else "b",) for i, t in enumerate(tokens)}
    plan = plan_ranges([WHOLE], ring_ranges(tokens, owners), PlanSettings(split_count=8))
    cuts = {r.start for r in plan}
    assert set(tokens) <= cuts | {MIN_TOKEN}  # every owner change is a range boundary
    assert contiguous(plan) and plan[0].start == MIN_TOKEN and plan[-1].end == MAX_TOKEN


def test_size_estimates_put_more_ranges_where_the_partitions_are():
    # all partitions in the upper half of the ring: the lower half stays in few wide ranges
    estimates = [RangeEstimate(MIN_TOKEN, 0, 10), RangeEstimate(0, MAX_TOKEN, 1_000_000)]
    plan = plan_ranges([WHOLE], ring_ranges([]), PlanSettings(partitions_per_split=10_000), estimates)
    upper = [r for r in plan if r.start >= 0]
    lower = [r for r in plan if r.end <= 0]
    assert len(upper) >= 90 and len(lower) <= 8 and contiguous(plan)


def test_wrapping_estimate_and_only_the_todo_part_is_planned():
    estimates = [RangeEstimate(2**62, -(2**62), 500_000), RangeEstimate(-(2**62), 2**62, 500_000)]
    todo = complement([(MIN_TOKEN, 0)])
    plan = plan_ranges(todo, ring_ranges([]), PlanSettings(partitions_per_split=50_000), estimates)
    assert plan[0].start == 0 and plan[-1].end == MAX_TOKEN and contiguous(plan)


def test_not_a_range_is_a_typed_error():
    with pytest.raises(SnapshotPlanError):
        TokenRange(5, 5)


def test_interval_algebra():
    assert union([(5, 9), (0, 5), (20, 30), (25, 40)]) == [(0, 9), (20, 40)]
    assert intersection([[(0, 10), (20, 30)], [(5, 25)]]) == [(5, 10), (20, 25)]
    assert complement([(MIN_TOKEN, 0), (10, 20)]) == [TokenRange(0, 10), TokenRange(20, MAX_TOKEN)]
    assert complement([(MIN_TOKEN, MAX_TOKEN)]) == []


def test_progress_offsets_name_the_table_and_range_and_move_forward_only():
    r = TokenRange(-1000, 1000)
    first = range_offset("ks.t", r, -400)
    assert first == Offset("snapshot/ks.t", -1000, 600, False)
    assert first.partition_id == "snapshot/ks.t/-1000"
    done = range_offset("ks.t", r, 1000, completed=True)
    assert first.advance(done) == done
    with pytest.raises(OffsetRegressionError, match="move back"):
        done.advance(first)


def test_what_every_destination_holds_is_left_out_of_a_restart():
    a = {o.partition_id: o for o in [range_offset("ks.t", TokenRange(MIN_TOKEN, 0), 0, True),
                                     range_offset("ks.t", TokenRange(0, 100), 40),
                                     Offset("node1", 17, 300)]}  # commitlog offsets are ignored
    b = {o.partition_id: o for o in [range_offset("ks.t", TokenRange(MIN_TOKEN, 0), -50)]}
    assert done_intervals(a.values(), "ks.t") == [(MIN_TOKEN, 40)]
    common = common_done({"a": a, "b": b}, ["a", "b"], "ks.t")
    assert common == [(MIN_TOKEN, -50)]
    assert common_done({"a": a}, ["a", "b"], "ks.t") == []  # b holds nothing yet
    assert covered(done_intervals(a.values(), "ks.t"), TokenRange(-10, 30))
    assert not covered(done_intervals(a.values(), "ks.t"), TokenRange(30, 50))
    assert snapshot_node("ks.t") == "snapshot/ks.t"
