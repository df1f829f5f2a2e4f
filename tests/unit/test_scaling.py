"""Writer autoscaling policy and segment routing (plain logic, no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ray_cdc.errors import ConfigError
from ray_cdc.offsets import Offset
from ray_cdc.pipeline.coordination import SegmentRef
from ray_cdc.pipeline.scaling import (
    Load,
    SegmentRouter,
    Throughput,
    WriterBounds,
    WriterScaler,
    backlog,
    committed_bytes,
)

MB = 1 << 20


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def scaler(minimum=1, maximum=4, *, target=10.0, cooldown=5.0, clock=None) -> WriterScaler:
    return WriterScaler(WriterBounds(minimum, maximum), target_drain=target, cooldown=cooldown,
                        clock=clock or Clock())


def test_a_backlog_that_would_drain_too_slowly_adds_the_writers_it_needs_at_once():
    s = scaler(maximum=8)
    # 1 writer commits 1 MB/s; 30 MB would take 30 s against a 10 s target: 3 writers
    assert s.update(Load(backlog_bytes=30 * MB, backlog_segments=20, bytes_per_second=1 * MB)) == 3


def test_the_count_stays_within_the_bounds():
    s = scaler(minimum=2, maximum=3)
    assert s.count == 2
    assert s.update(Load(100 * MB, 50, 1 * MB)) == 3
    assert scaler(minimum=2, maximum=3).update(Load(0, 0, 0.0)) == 2


def test_never_more_writers_than_segments_owed():
    # one writer applies a segment: a huge backlog in two segments keeps two busy, not eight
    assert scaler(maximum=8).update(Load(500 * MB, 2, 1 * MB)) == 2


def test_no_rate_measured_yet_keeps_the_count():
    assert scaler().update(Load(500 * MB, 40, 0.0)) == 1


def test_no_change_within_the_cooldown_then_one_step_down_at_a_time():
    clock = Clock()
    s = scaler(maximum=8, cooldown=5.0, clock=clock)
    assert s.update(Load(40 * MB, 20, 1 * MB)) == 4
    clock.now = 4.9
    assert s.update(Load(1 * MB, 20, 4 * MB)) == 4  # would shrink, but the cooldown holds it
    clock.now = 5.0
    assert s.update(Load(1 * MB, 20, 4 * MB)) == 3
    clock.now = 10.0
    assert s.update(Load(1 * MB, 20, 3 * MB)) == 2


def test_hysteresis_a_backlog_near_the_target_neither_grows_nor_shrinks_the_count():
    clock = Clock()
    s = scaler(maximum=8, cooldown=0.0, clock=clock)
    s.count = 2
    # 2 writers at 1 MB/s each: 14 MB drains in 7 s (under the 10 s target, above half of it)
    for t in range(5):
        clock.now = float(t)
        assert s.update(Load(14 * MB, 10, 2 * MB)) == 2
    clock.now = 10.0
    assert s.update(Load(8 * MB, 10, 2 * MB)) == 1  # 4 s: below half the target


def test_an_empty_backlog_returns_to_the_minimum():
    s = scaler(minimum=1, maximum=4, cooldown=0.0)
    s.count = 4
    assert s.update(Load(0, 0, 5 * MB)) == 1


def test_bad_bounds_and_settings_are_config_errors_naming_the_values():
    with pytest.raises(ConfigError, match="min=3 max=2"):
        WriterBounds(3, 2)
    with pytest.raises(ConfigError, match="min=0"):
        WriterBounds(0, 2)
    with pytest.raises(ConfigError, match="target_drain=0"):
        WriterScaler(WriterBounds(), target_drain=0, cooldown=1)


def test_throughput_is_the_committed_bytes_over_the_window():
    meter = Throughput(window=4.0)
    assert meter.sample(0.0, 0) == 0.0
    assert meter.sample(2.0, 4 * MB) == 2 * MB
    assert meter.sample(3.0, 4 * MB) == 4 * MB / 3  # a quiet second does not read as a stop
    assert meter.sample(8.0, 4 * MB) == 0.0  # nothing for the whole window
    assert meter.sample(9.0, 6 * MB) == 2 * MB / 6  # from the newest sample at least 4 s old (3.0)


def test_backlog_counts_what_each_segment_has_beyond_the_committed_position():
    segments = [SegmentRef("a", i, Path(f"CommitLog-7-{i}.log")) for i in (1, 2, 3)]
    offsets = {"a/1": Offset("a", 1, 1000, completed=True), "a/2": Offset("a", 2, 300)}
    sizes = {1: 1000, 2: 1000, 3: 700}
    assert backlog(segments, offsets, lambda s: sizes[s.segment_id]) == (700 + 700, 2)
    assert committed_bytes(offsets) == 1300


def test_router_round_robins_new_partitions_and_keeps_each_on_its_writer():
    router = SegmentRouter({"pg": "w0", "ch": "c0"})
    router.add("pg", "w1")
    first = [router.route(f"a/{i}")["pg"] for i in range(4)]
    assert first == ["w0", "w1", "w0", "w1"]
    assert router.route("a/1") == {"pg": "w1", "ch": "c0"}  # again: the same writer
    assert router.counts() == {"pg": 2, "ch": 1}


def test_a_retired_writer_keeps_its_partitions_but_gets_no_new_ones():
    router = SegmentRouter({"pg": "w0"})
    router.add("pg", "w1")
    assert [router.route(p)["pg"] for p in ("a/1", "a/2")] == ["w0", "w1"]
    assert router.retire("pg") == "w1"
    assert router.retire("pg") is None  # the last one stays
    assert router.route("a/2")["pg"] == "w1"  # a segment handed back later goes to the same writer
    assert {router.route(f"b/{i}")["pg"] for i in range(3)} == {"w0"}


def test_config_writers_reach_each_destination_and_embedded_chdb_stays_at_one():
    from ray_cdc.config.models import Config
    from ray_cdc.pipeline.run import scaling_settings

    config = Config.model_validate({
        "sources": [{"name": "n", "commitlog_dir": "/d"}], "schema": {"cql_file": "/s.cql"},
        "destinations": {"pg": {"type": "postgres", "dsn": "postgresql://h/db"},
                         "embedded": {"type": "clickhouse", "dsn": "chdb:///tmp/ch"},
                         "server": {"type": "clickhouse", "dsn": "http://ch.example.com:8123"}},
        "writers": {"min": 2, "max": 5, "target_drain": "20s", "cooldown": "3s"}})
    settings = scaling_settings(config)
    assert settings.bounds == {"pg": WriterBounds(2, 5), "embedded": WriterBounds(1, 1),
                               "server": WriterBounds(2, 5)}
    assert (settings.target_drain, settings.cooldown) == (20.0, 3.0)


def test_config_writers_reject_unknown_keys_and_min_above_max():
    from pydantic import ValidationError

    from ray_cdc.config.writers import WritersConfig

    with pytest.raises(ValidationError, match="writers.min \\(3\\) is greater than writers.max \\(2\\)"):
        WritersConfig.model_validate({"min": 3, "max": 2})
    with pytest.raises(ValidationError, match="maxx"):
        WritersConfig.model_validate({"maxx": 3})
