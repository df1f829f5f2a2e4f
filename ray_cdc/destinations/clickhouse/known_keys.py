"""The keys a table holds, as 64-bit hashes in the writer's memory: which of a batch's keys may be
stored, without reading the table.

Why: to merge a batch, the writer reads the stored rows of its keys (`TableStore.current`). With
keys spread over the whole table (random ids), ClickHouse reads the key columns of every part for
every batch, so the read grows with the table: at 5M rows it took more CPU than the batch's insert.
A batch of new keys (an insert workload) has nothing to merge; these hashes tell so in a few
milliseconds, and the read is skipped.

Exact in one direction only, which is the one correctness needs: a key whose hash is absent is not
stored. A hash that is present (a stored key, a collision, a row since removed by TTL) only sends
the batch to the read, as without this. That holds while every insert into the table goes through
this writer (`add`), so the destination uses it only where that is certain (embedded chDB: one
process at a time opens its directory) and forgets it on any failed write (`TableStore`). Memory is
bounded: a table of more than `limit` keys is not tracked (8 bytes a key).
"""

from __future__ import annotations

import numpy as np

#: tables with more stored keys are not tracked (64 MiB of hashes)
KNOWN_KEYS_LIMIT = 8_000_000
#: batches of hashes kept apart before they are merged into the sorted array
_PENDING = 16


class KnownKeys:
    def __init__(self, hashes: np.ndarray, limit: int = KNOWN_KEYS_LIMIT):
        self.limit = limit
        self._sorted = np.sort(np.asarray(hashes, dtype=np.uint64))
        self._pending: list[np.ndarray] = []
        self._count = len(self._sorted)

    def __len__(self) -> int:
        return self._count

    @property
    def full(self) -> bool:
        """More keys than `limit`: stop tracking (the caller drops this object)."""
        return self._count > self.limit

    def maybe_stored(self, hashes: np.ndarray) -> np.ndarray:
        """Per hash: may its key be stored (False: it certainly is not)."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        # searched in sorted order: consecutive binary searches then walk the same paths of the
        # sorted array, which stay in cache (in random order, every step of every search misses it)
        order = np.argsort(hashes, kind="stable")
        needles = hashes[order]
        found_sorted = _members(self._sorted, needles)
        for pending in self._pending:
            found_sorted |= _members(pending, needles)
        found = np.empty(len(hashes), dtype=bool)
        found[order] = found_sorted
        return found

    def add(self, hashes: np.ndarray) -> None:
        """The keys of rows just inserted."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        if not len(hashes):
            return
        self._pending.append(np.sort(hashes))
        self._count += len(hashes)
        if len(self._pending) >= _PENDING:
            merged = np.concatenate([self._sorted, *self._pending])
            self._sorted, self._pending = None, []  # freed before the sort: two arrays at most, not three
            merged.sort(kind="stable")  # sorted runs: merged in linear time
            self._sorted = merged


def _members(sorted_hashes: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    if not len(sorted_hashes):
        return np.zeros(len(hashes), dtype=bool)
    at = np.searchsorted(sorted_hashes, hashes)
    at[at == len(sorted_hashes)] = len(sorted_hashes) - 1
    return sorted_hashes[at] == hashes
