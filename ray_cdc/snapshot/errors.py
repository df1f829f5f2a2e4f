"""Typed errors of the initial snapshot (all `RayCdcError`s, classified by type, never by text)."""

from __future__ import annotations

from ray_cdc.errors import RayCdcError


class SnapshotError(RayCdcError):
    """The snapshot of a table cannot go on; names the table (and the token range when there is one)."""


class SnapshotPlanError(SnapshotError):
    """The token ranges cannot be planned, or the plans recorded in the destinations disagree."""


class SnapshotReadError(SnapshotError):
    """Reading a token range from Cassandra failed (after the driver's own retries)."""

    def __init__(self, message: str, *, table: str, token_range: str | None = None):
        self.table = table
        self.token_range = token_range
        where = table + (f" range {token_range}" if token_range else "")
        super().__init__(f"{where}: {message}")
