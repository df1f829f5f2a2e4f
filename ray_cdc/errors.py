"""Typed errors of ray_cdc.

Every error that concerns input data names *what* is wrong and *where* (file and byte position,
table id, config key). Callers classify by type, never by message text.
"""

from __future__ import annotations

from uuid import UUID


class RayCdcError(Exception):
    """Base class of every error ray_cdc raises on purpose."""


# --- commitlog -----------------------------------------------------------------------------------


class CommitLogError(RayCdcError):
    """A problem in a commitlog segment, located by file and (logical) byte position."""

    def __init__(self, message: str, *, path: str | None = None, position: int | None = None):
        self.path = path
        self.position = position
        where = []
        if path is not None:
            where.append(str(path))
        if position is not None:
            where.append(f"position {position}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)
        self.reason = message


class SegmentNameError(CommitLogError):
    """The file name is not `CommitLog-<version>-<id>.log`."""


class SegmentHeaderError(CommitLogError):
    """The descriptor header is unreadable: too short, bad CRC, unknown version, id mismatch."""


class UnsupportedSegmentError(CommitLogError):
    """The segment uses a version, compressor or cipher this reader does not support."""


class SyncMarkerError(CommitLogError):
    """A sync marker is corrupt (bad CRC, or pointing outside the file)."""


class EntryChecksumError(CommitLogError):
    """A mutation entry failed its length or body CRC."""


class TruncatedSegmentError(CommitLogError):
    """The file ends inside a section or entry."""


class SectionDecodeError(CommitLogError):
    """A compressed or encrypted section cannot be decompressed or decrypted."""


class CdcIndexError(CommitLogError):
    """A `_cdc.idx` file is unreadable (Cassandra rewrites it in place: an empty one may be mid-write)."""


class MutationDecodeError(CommitLogError):
    """A mutation body does not match the schema it is decoded with, or is malformed."""


class UnknownTableError(CommitLogError):
    """A mutation touches a table whose schema is unknown; the whole mutation cannot be decoded."""

    def __init__(self, table_id: UUID, *, path: str | None = None, position: int | None = None):
        self.table_id = table_id
        super().__init__(f"unknown table id {table_id}", path=path, position=position)


class KeystoreError(RayCdcError):
    """The keystore cannot be opened, or lacks the key alias a segment names."""


# --- schema --------------------------------------------------------------------------------------


class SchemaError(RayCdcError):
    """A table schema is missing, malformed or inconsistent."""


class CqlTypeError(SchemaError):
    """A CQL type string cannot be parsed or resolved."""


class CqlParseError(SchemaError):
    """A CQL DDL file cannot be parsed; names the line."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        self.source = source
        self.line = line
        where = ":".join(str(p) for p in (source, line) if p is not None)
        super().__init__(f"{message} ({where})" if where else message)


class ValueCodecError(SchemaError):
    """A value's bytes do not fit its CQL type (wrong length, bad UTF-8, ...)."""


# --- configuration -------------------------------------------------------------------------------


class ConfigError(RayCdcError):
    """A configuration value is missing or invalid; names the key."""


# --- destinations --------------------------------------------------------------------------------


class DestinationError(RayCdcError):
    """A destination failed; names the destination (never its credentials)."""

    def __init__(self, message: str, *, destination: str | None = None):
        self.destination = destination
        super().__init__(f"{destination}: {message}" if destination else message)


class TransientDestinationError(DestinationError):
    """Worth retrying with backoff: connection lost, server restarting, lock timeout, ..."""


class FatalDestinationError(DestinationError):
    """Retrying will not help: bad credentials, missing permission, incompatible schema, ..."""


class RejectedRowsError(FatalDestinationError):
    """Some rows of a batch were refused as bad data; they go to the DLQ, the rest is applied.
    Without `rows` the batch was refused as a whole for some row(s) in it (a constraint failing a
    merge): the writer bisects it to find them (`ray_cdc.dlq.isolate`)."""

    def __init__(self, message: str, *, destination: str | None = None, rows: list[tuple[int, str]] = ()):
        self.rows = list(rows)  # (row index in the batch, reason)
        super().__init__(message, destination=destination)
