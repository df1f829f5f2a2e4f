"""Commitlog positions: where a change sits in a node's log, and where a consumer resumes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True, slots=True)
class CommitLogPosition:
    """(segment id, logical offset just after a mutation entry's CRC) — Cassandra's replay position.

    Ordered by segment id, then offset: a consumer that has applied every change up to and including
    a position resumes reading *after* it. Logical offsets count bytes of the uncompressed stream
    (format doc §5.4), so they are comparable across plain, compressed and encrypted segments.
    """

    segment_id: int
    offset: int

    def __str__(self) -> str:
        return f"{self.segment_id}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> CommitLogPosition:
        """Parse `SEGMENT_ID:OFFSET`, the form `str()` writes."""
        seg, sep, off = text.partition(":")
        if not sep or not seg.strip().isdigit() or not off.strip().isdigit():
            raise ValueError(f"not a commitlog position (SEGMENT_ID:OFFSET): {text!r}")
        return cls(int(seg), int(off))
