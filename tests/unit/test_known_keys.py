"""KnownKeys: a hash that is absent certainly is not stored; added hashes are found."""

from __future__ import annotations

import numpy as np

from ray_cdc.destinations.clickhouse.known_keys import KnownKeys


def test_absent_hashes_are_not_stored_and_present_ones_may_be():
    rng = np.random.default_rng(3)
    stored = rng.integers(0, 2**64 - 1, size=100_000, dtype=np.uint64)
    known = KnownKeys(stored)
    fresh = rng.integers(0, 2**64 - 1, size=50_000, dtype=np.uint64)
    fresh = fresh[~np.isin(fresh, stored)]
    assert not known.maybe_stored(fresh).any()
    probe = np.concatenate([stored[:10], fresh[:10]])
    assert known.maybe_stored(probe).tolist() == [True] * 10 + [False] * 10


def test_added_hashes_are_found_before_and_after_they_are_merged():
    known = KnownKeys(np.array([5, 1, 9], dtype=np.uint64))
    batches = [np.arange(100 + 10 * i, 110 + 10 * i, dtype=np.uint64)[::-1] for i in range(40)]
    for i, hashes in enumerate(batches):
        assert not known.maybe_stored(hashes).any()
        known.add(hashes)
        assert known.maybe_stored(np.concatenate(batches[: i + 1])).all()
    assert known.maybe_stored(np.array([1, 5, 9, 0, 2**64 - 1], dtype=np.uint64)).tolist() == [
        True, True, True, False, False]
    assert len(known) == 3 + 400


def test_an_empty_table_and_the_limit():
    known = KnownKeys(np.array([], dtype=np.uint64), limit=25)
    assert not known.maybe_stored(np.array([0, 7], dtype=np.uint64)).any()
    known.add(np.arange(20, dtype=np.uint64))
    assert not known.full
    known.add(np.arange(20, 30, dtype=np.uint64))
    assert known.full


def test_each_answer_belongs_to_its_own_hash_whatever_the_order_of_the_probe():
    rng = np.random.default_rng(7)
    stored = rng.integers(0, 2**64 - 1, size=20_000, dtype=np.uint64)
    known = KnownKeys(stored[:15_000])
    known.add(stored[15_000:])  # pending, not merged yet
    fresh = rng.integers(0, 2**64 - 1, size=20_000, dtype=np.uint64)
    probe = np.concatenate([stored[::7], fresh, stored[15_000::3], stored[::7]])  # repeats too
    rng.shuffle(probe)
    assert known.maybe_stored(probe).tolist() == np.isin(probe, stored).tolist()
