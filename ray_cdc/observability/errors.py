"""Errors of the health API."""

from __future__ import annotations

from ray_cdc.errors import ConfigError


class HealthApiError(ConfigError):
    """The health API cannot serve on the configured address (in use, not this machine's, ...)."""
