"""The ONE place psycopg errors become ray_cdc's destination errors.

By SQLSTATE class: connection problems, shutdowns, serialization failures, deadlocks, lock and
statement timeouts, and resource shortages are transient (retry with backoff); bad credentials,
missing permissions or objects, and anything else are fatal; data exceptions (class 22) and
integrity violations (class 23) are bad rows (`is_bad_data`: the writer isolates and rejects them).
Connection failures carry no SQLSTATE in psycopg: libpq's message is the only signal there, so an
authentication failure is recognised by it. Passwords are removed from every message.
"""

from __future__ import annotations

import psycopg

from ray_cdc.errors import (
    DestinationError,
    FatalDestinationError,
    RejectedRowsError,
    TransientDestinationError,
)

_TRANSIENT_CLASSES = ("08", "53", "57", "58")  # connection, resources, operator intervention, system
_TRANSIENT_STATES = frozenset(("40001", "40P01", "55P03", "55006", "57014"))
_FATAL_STATES = frozenset(("57P04",))  # database dropped
_BAD_DATA_CLASSES = ("22", "23")
_AUTH_WORDS = ("password authentication failed", "authentication failed", "no password supplied",
               "role", "does not exist", "permission denied", "no pg_hba.conf entry")


def is_bad_data(exc: BaseException) -> bool:
    """A value refused by the server (SQLSTATE class 22/23) or by psycopg while dumping it (DataError)."""
    state = getattr(exc, "sqlstate", None)
    return (bool(state) and state.startswith(_BAD_DATA_CLASSES)) or isinstance(exc, psycopg.DataError)


def _catalog_race(exc: BaseException) -> bool:
    """A unique violation in PostgreSQL's own catalog: another session created the same object at the
    same moment (CREATE ... IF NOT EXISTS is not safe against that). Transient: the retry finds it."""
    diag = getattr(exc, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or ""
    return getattr(exc, "sqlstate", None) == "23505" and constraint.startswith("pg_")


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def classify(exc: BaseException, *, destination: str, secrets: list[str], doing: str) -> DestinationError:
    """The DestinationError to raise for `exc` (raise it `from None`: the original may carry the DSN)."""
    message = redact(f"{doing}: {type(exc).__name__}: {str(exc).strip()}", secrets)
    state = getattr(exc, "sqlstate", None)
    if state:
        race = _catalog_race(exc)
        transient = (state.startswith(_TRANSIENT_CLASSES) or state in _TRANSIENT_STATES) and state not in _FATAL_STATES
        kind = TransientDestinationError if transient or race else FatalDestinationError
        if state.startswith(_BAD_DATA_CLASSES) and not race:
            kind = RejectedRowsError  # a row the server refused failed the whole statement (a merge)
        return kind(f"{message} (SQLSTATE {state})", destination=destination)
    if isinstance(exc, psycopg.OperationalError):
        lowered = str(exc).lower()
        if any(word in lowered for word in _AUTH_WORDS):
            return FatalDestinationError(message, destination=destination)
        return TransientDestinationError(message, destination=destination)  # refused, reset, timeout
    if isinstance(exc, (psycopg.InterfaceError, OSError)):
        return TransientDestinationError(message, destination=destination)
    return FatalDestinationError(message, destination=destination)
