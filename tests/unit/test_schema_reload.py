"""A schema older than the data (`ALTER TABLE ... ADD` on the cluster after the reader loaded it): the
registry loads the tables again, rate-limited, and the 2.1 decoder decodes with the new schema; a
column still unknown after that is an undecodable mutation naming table and column. Real segment
bytes (tests/unit/data/legacy_commitlog, see test_legacy_segments.py), no Ray."""

from __future__ import annotations

import pytest

from ray_cdc.commitlog.legacy_reader import LegacyCommitLogReader
from ray_cdc.errors import MutationDecodeError
from ray_cdc.schema.registry import SchemaRegistry
from tests.unit.test_legacy_segments import _changes, raw, registry, segment  # noqa: F401 - fixtures


class Clock:
    """time.monotonic and time.sleep for the registry: sleeping moves the clock."""

    def __init__(self):
        self.now, self.slept = 100.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def without_b(registry: SchemaRegistry):
    """The tables as loaded before `ALTER TABLE ks.t ADD b text`."""
    [t] = [t for t in registry.tables() if t.name == "t"]
    narrowed = type(t)(t.keyspace, t.name, t.id, tuple(c for c in t.columns if c.name != "b"))
    return [narrowed, *[x for x in registry.tables() if x.name == "t2"]]


def loader(*results):
    """A cluster whose successive loads return `results` (the last one from then on); counts loads."""
    calls = []

    def load():
        calls.append(1)
        return results[min(len(calls), len(results)) - 1]
    return load, calls


def test_a_column_added_after_loading_reloads_and_decodes_like_the_full_schema(segment, registry):
    load, calls = loader(registry.tables())
    clock = Clock()
    stale = SchemaRegistry(without_b(registry), reload=load, clock=clock, sleep=clock.sleep)
    assert _changes(segment, stale) == _changes(segment, registry)
    assert len(calls) == 1 and clock.slept == []  # one load for every mutation naming b
    assert stale.get(stale.by_name("ks", "t").id).column("b") is not None


def test_a_column_still_unknown_after_reloading_is_undecodable_naming_table_and_column(segment, registry):
    load, calls = loader(without_b(registry))
    clock = Clock()
    stale = SchemaRegistry(without_b(registry), reload=load, clock=clock, sleep=clock.sleep)
    with pytest.raises(MutationDecodeError, match=r"ks\.t has no column 'b'"):
        _changes(segment, stale)
    assert len(calls) == 1
    # skipped instead: counted, and the cluster is asked once per interval, not once per mutation
    reader = LegacyCommitLogReader(stale, on_error="skip")
    changes = list(reader.changes([segment]))
    # the three statements writing b (INSERT, DELETE b, the batch) are skipped; the others decode
    assert reader.summaries[-1].undecodable == 3 and len(changes) == 9
    assert len(calls) == 1


def test_reloads_are_rate_limited_but_a_first_sighting_waits_rather_than_being_refused(registry):
    load, calls = loader(without_b(registry), registry.tables())
    clock = Clock()
    stale = SchemaRegistry(without_b(registry), reload=load, reload_interval=1.0, clock=clock, sleep=clock.sleep)
    t_id = stale.by_name("ks", "t").id
    assert stale.reload_for(t_id, "b") is True and len(calls) == 1  # the ALTER had not happened yet
    clock.now += 0.25
    assert stale.reload_for(t_id, "b") is False and len(calls) == 1  # confirmed missing this interval
    assert stale.reload_for(t_id, "z") is True and clock.slept == [0.75]  # another column: after the wait
    assert len(calls) == 2 and stale.get(t_id).column("b") is not None


def test_without_a_source_there_is_no_reload(registry):
    assert SchemaRegistry(without_b(registry)).reload_for(registry.by_name("ks", "t").id, "b") is False
