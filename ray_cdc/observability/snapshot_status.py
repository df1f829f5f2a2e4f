"""Snapshot progress from the committed offsets alone: the snapshot keeps each token range's progress
as an offset (`ray_cdc/snapshot/progress.py`), so what every destination holds is known without
asking the snapshot's actors, and survives their restarts."""

from __future__ import annotations

from ray_cdc.observability.models import SnapshotTableStatus
from ray_cdc.observability.status import Committed
from ray_cdc.snapshot.progress import PREFIX, common_done, is_snapshot_offset

#: Murmur3 tokens span the signed 64-bit range
RING_SIZE = 2 ** 64


def snapshot_tables(committed: Committed) -> list[str]:
    tables = {o.node.removeprefix(PREFIX) for book in committed.values() for o in book.values()
              if is_snapshot_offset(o)}
    return sorted(tables)


def snapshot_status(committed: Committed, destinations: list[str]) -> dict[str, SnapshotTableStatus]:
    """keyspace.table -> ranges each destination finished, and the share of the ring all of them hold."""
    status = {}
    for table in snapshot_tables(committed):
        node = PREFIX + table
        finished = {d: sum(1 for o in committed.get(d, {}).values() if o.node == node and o.completed)
                    for d in destinations}
        held = sum(end - start for start, end in common_done(committed, destinations, table))
        status[table] = SnapshotTableStatus(ranges_completed=finished, fraction_done=min(1.0, held / RING_SIZE))
    return status
