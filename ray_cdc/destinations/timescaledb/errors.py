"""Errors of the TimescaleDB destination."""

from __future__ import annotations

from ray_cdc.errors import FatalDestinationError


class TimescaleExtensionMissingError(FatalDestinationError):
    """The server has no usable timescaledb extension and `on_missing_extension` is `error`."""
