"""The ONE place that turns clickhouse-connect / chDB errors into ray_cdc's destination errors.

Everything else in this package calls `classify(exc, destination)` at its boundary (`client.py`),
so retry decisions never depend on scattered `except` clauses or on message text elsewhere.
"""

from __future__ import annotations

import re

from ray_cdc.errors import (
    DestinationError,
    FatalDestinationError,
    RejectedRowsError,
    TransientDestinationError,
)

# ClickHouse server error codes (src/Common/ErrorCodes.cpp) worth a retry
_TRANSIENT_CODES = frozenset((
    159,  # TIMEOUT_EXCEEDED
    164,  # READONLY (replica temporarily read-only)
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    236,  # ABORTED
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY
    252,  # TOO_MANY_PARTS
    319,  # UNKNOWN_STATUS_OF_INSERT
    425,  # SYSTEM_ERROR
    999,  # KEEPER_EXCEPTION
))
# a row of the insert refused for its data: the insert fails as a whole
_REFUSED_ROW_CODES = frozenset((469,))  # VIOLATED_CONSTRAINT
_CODE = re.compile(r"Code: (\d+)")
_SECRET = re.compile(r"(//[^:/@\s]*:)[^@\s]*@")  # user:password@ in a URL


def redact(text: str) -> str:
    """The text without the password of any URL in it."""
    return _SECRET.sub(r"\1***@", text)


def error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


def classify(exc: BaseException, destination: str) -> DestinationError:
    """The ray_cdc error for a driver error: transient (retry with backoff) or fatal."""
    if isinstance(exc, DestinationError):
        return exc
    message = redact(f"{type(exc).__name__}: {exc}")
    if _is_transient(exc):
        return TransientDestinationError(message, destination=destination)
    if error_code(exc) in _REFUSED_ROW_CODES:
        return RejectedRowsError(message, destination=destination)  # the writer bisects to the row
    return FatalDestinationError(message, destination=destination)


def _is_transient(exc: BaseException) -> bool:
    from clickhouse_connect.driver import exceptions as ch  # deferred: no driver at package import

    if isinstance(exc, (ConnectionError, TimeoutError, ch.OperationalError)):
        return True  # network trouble or a server that is (re)starting
    code = error_code(exc)
    if code is None:
        return False
    return code in _TRANSIENT_CODES  # anything else (bad SQL, bad data, auth) will fail again
