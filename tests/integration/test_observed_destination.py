"""The health API's view of writes: a destination wrapped by ObservedDestination reports every table
batch and the offsets committed with it, whichever write method the writer calls (real chDB; the
observer is the plain Observations the ObserverActor wraps, called directly instead of over Ray)."""

from __future__ import annotations

from ray_cdc.destinations.clickhouse import ClickHouseDestination
from ray_cdc.observability.observations import Observations
from ray_cdc.observability.observed import ObservedDestination
from ray_cdc.offsets import Offset
from tests.unit.test_dlq import USERS, users_batch


class _Direct:
    """`observer.method.remote(...)` calls `method` at once (what the actor does, minus Ray)."""

    def __init__(self, target):
        self._target = target

    def __getattr__(self, name):
        method = getattr(self._target, name)
        return type("Remote", (), {"remote": staticmethod(method)})


def test_write_and_write_prepared_report_rows_and_their_offsets(tmp_path):
    observations = Observations()
    inner = ClickHouseDestination(f"chdb://{tmp_path / 'ch'}", name="ch", database="default")
    destination = ObservedDestination(inner, _Direct(observations))
    destination.open()
    try:
        destination.ensure_table(USERS)
        first, second = Offset("n1", 3, 100, False), Offset("n1", 3, 200, True)
        assert destination.write(USERS, users_batch(), [first]).rows == 2
        prepared = destination.prepare(USERS, users_batch(3))
        assert destination.write_prepared(prepared, offsets=[second]).rows == 3
        destination.write(USERS, users_batch(1), [])  # a DLQ replay: rows, no offset
    finally:
        destination.close()
    seen = observations.snapshot()
    assert seen.rows[("ch", "crm.users")] == 6 and seen.commits["ch"] == 3
    assert seen.committed["ch"] == {second.partition_id: second}
    assert seen.segments_completed["ch"] == 1
