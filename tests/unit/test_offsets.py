"""Offsets only move forward and say exactly which positions are applied."""

from __future__ import annotations

import pytest

from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.offsets import Offset, OffsetRegressionError


def test_covers_positions_up_to_and_including_its_own():
    offset = Offset("node-a", 100, 500)
    assert offset.partition_id == "node-a/100"
    assert offset.covers(CommitLogPosition(100, 500))
    assert offset.covers(CommitLogPosition(99, 10_000))
    assert not offset.covers(CommitLogPosition(100, 501))
    assert not offset.covers(CommitLogPosition(101, 1))


def test_advance_moves_forward_only():
    offset = Offset("a", 1, 10)
    assert offset.advance(Offset("a", 1, 20)) == Offset("a", 1, 20)
    assert offset.advance(Offset("a", 1, 10, completed=True)).completed
    with pytest.raises(OffsetRegressionError, match="a/1"):
        offset.advance(Offset("a", 1, 9))
    with pytest.raises(OffsetRegressionError):
        Offset("a", 1, 10, completed=True).advance(Offset("a", 1, 10))
    with pytest.raises(ValueError, match="cannot advance"):
        offset.advance(Offset("b", 1, 20))


def test_offset_book_keeps_the_latest_per_destination_and_partition():
    from ray_cdc.actors.offsets import OffsetBook

    book = OffsetBook({"pg": {"a/1": Offset("a", 1, 5)}})
    book.record("pg", Offset("a", 1, 9))
    book.record("ch", Offset("a", 2, 3))
    assert book.snapshot() == {"pg": {"a/1": Offset("a", 1, 9)}, "ch": {"a/2": Offset("a", 2, 3)}}
    with pytest.raises(OffsetRegressionError):
        book.record("pg", Offset("a", 1, 4))
