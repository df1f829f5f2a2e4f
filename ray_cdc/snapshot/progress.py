"""A token range's progress as an `Offset`, so destinations keep it beside their commitlog offsets.

Partition id `snapshot/<keyspace.table>/<start token>`: `Offset(node="snapshot/<keyspace.table>",
segment_id=<start token>, position=<tokens done past start>, completed=<range finished>)`. Every
token in `(start, start + position]` is read *and* committed to that destination; it only grows,
which is what `Offset.advance` demands. Destinations store it with the data's transaction (the writer
commits it after the batch), and the offset actor learns it from the writer once committed.

Why not the driver's opaque `paging_state`: it is bound to one statement and protocol version, does not
fit the comparable `Offset`, and a token boundary resumes just as well. The boundary recorded after a
page is `token(last row) - 1`: the last partition of a page may continue on the next page, so only
the partitions before it are known complete. A partition wider than a page is re-read from its
start after a crash (harmless: re-applying rows is a no-op under last-writer-wins).

A restart needs no stored plan: what a destination has is the union of its intervals
`(start, start + position]`; what is still to read is the complement of what *every* destination
has, planned afresh (new ranges start where the finished ones stopped, under new partition ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ray_cdc.offsets import Offset
from ray_cdc.snapshot.ranges import TokenRange, intersection, union

PREFIX = "snapshot/"


def snapshot_node(qualified_table: str) -> str:
    """The `node` of a table's snapshot offsets (no Cassandra node is named like this: it has a `/`)."""
    return PREFIX + qualified_table


def is_snapshot_offset(offset: Offset) -> bool:
    return offset.node.startswith(PREFIX)


def range_offset(qualified_table: str, token_range: TokenRange, boundary: int, completed: bool = False) -> Offset:
    """Everything of `token_range` up to token `boundary` (inclusive) is applied."""
    return Offset(snapshot_node(qualified_table), token_range.start, boundary - token_range.start, completed)


def done_intervals(offsets: Iterable[Offset], qualified_table: str) -> list[tuple[int, int]]:
    """The token intervals `(start, end]` of the table one destination has (merged)."""
    node = snapshot_node(qualified_table)
    return union((o.segment_id, o.segment_id + o.position) for o in offsets if o.node == node and o.position > 0)


def common_done(committed: Mapping[str, Mapping[str, Offset]], destinations: Iterable[str],
                qualified_table: str) -> list[tuple[int, int]]:
    """What every destination in `destinations` has of the table (one without any offset: nothing)."""
    return intersection([done_intervals(committed.get(d, {}).values(), qualified_table) for d in destinations])


def covered(intervals: list[tuple[int, int]], token_range: TokenRange) -> bool:
    return any(a <= token_range.start and token_range.end <= b for a, b in intervals)
