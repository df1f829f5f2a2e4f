"""The TimescaleDB destination: the PostgreSQL destination (same tables, types, merge, offsets) whose
state tables become hypertables on a time column of their primary key when the server has the
timescaledb extension; without it, an error or (configured so) a warning and plain tables.

Modules: `plan` (which tables, which column: pure functions), `sql` (the statements), `errors`,
`destination` (TimescaleDbDestination), `factory` (from the configuration model).
"""

from ray_cdc.destinations.timescaledb.destination import TimescaleDbDestination
from ray_cdc.destinations.timescaledb.errors import TimescaleExtensionMissingError
from ray_cdc.destinations.timescaledb.factory import build_timescaledb_destination, hypertable_settings
from ray_cdc.destinations.timescaledb.plan import HypertablePlan, HypertableSettings, HypertableSpec

__all__ = [
    "HypertablePlan",
    "HypertableSettings",
    "HypertableSpec",
    "TimescaleDbDestination",
    "TimescaleExtensionMissingError",
    "build_timescaledb_destination",
    "hypertable_settings",
]
