"""Value types of the configuration: secrets, DSNs, sizes, durations, counts, paths, names.

Each is an `Annotated` type, so a model field says what it holds and its validation in one word.
Validation messages say what is expected but never echo the value: the error already names the key,
and a value in the wrong place may be a secret.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, SecretStr, ValidationInfo

from ray_cdc.secrets import MASK, redact

# --- secrets -------------------------------------------------------------------------------------

#: A password or token: `repr`/`str` show `'**********'`, the JSON dump (`redacted_dict`) shows `***`.
SecretText = Annotated[SecretStr, PlainSerializer(lambda s: MASK if s.get_secret_value() else "",
                                                  return_type=str, when_used="json")]

#: The DSN with its passwords masked: `postgresql://u:pw@h/db` -> `postgresql://u:***@h/db`.
redact_dsn = redact


class SecretDsn(SecretStr):
    """A connection string: it may carry a password, so it is a secret, but unlike a password its
    redacted form (host, database, user) is worth showing in logs."""

    def _display(self) -> str:
        return redact_dsn(self.get_secret_value())


def dsn_scheme(dsn: SecretStr) -> str:
    """`postgresql` of `postgresql://...`; "" for a libpq `key=value` conninfo string."""
    head, sep, _ = dsn.get_secret_value().partition("://")
    return head.lower() if sep else ""


def embedded_dir(dsn: SecretStr, scheme: str) -> Path | None:
    """DIR of `scheme://DIR` (the embedded engines: `pgserver://DIR`, `chdb://DIR`), else None."""
    head, sep, rest = dsn.get_secret_value().partition("://")
    return Path(rest) if sep and head.lower() == scheme else None


def dsn_checker(*schemes: str, conninfo: bool = False, embedded: tuple[str, ...] = ()) -> AfterValidator:
    """Accept URLs of `schemes` (and, with `conninfo`, libpq `key=value` strings); relative DIRs of the
    `embedded` schemes are resolved like every other path of the file."""

    def check(dsn: SecretDsn, info: ValidationInfo) -> SecretDsn:
        scheme = dsn_scheme(dsn)
        if not scheme and not (conninfo and "=" in dsn.get_secret_value()):
            kinds = " or key=value pairs" if conninfo else ""
            raise ValueError(f"expected a URL ({', '.join(s + '://' for s in schemes)}){kinds}")
        if scheme and scheme not in schemes:
            raise ValueError(f"scheme {scheme!r} is not one of {', '.join(schemes)}")
        if scheme in embedded:
            directory = dsn.get_secret_value().partition("://")[2]
            if not directory:
                raise ValueError(f"{scheme}:// needs a data directory: {scheme}://DIR")
            return SecretDsn(f"{scheme}://{resolve_path(Path(directory), info)}")
        return dsn

    return AfterValidator(check)


# The JSON dump (`redacted_dict`) shows a DSN as `str` does: redacted, not as SecretStr's stars.
_REDACTED_JSON = PlainSerializer(str, return_type=str, when_used="json")

#: postgresql://user:pass@host/db, libpq key=value pairs, or pgserver://DIR (an embedded server).
PostgresDsn = Annotated[SecretDsn, dsn_checker("postgresql", "postgres", "pgserver", conninfo=True,
                                               embedded=("pgserver",)), _REDACTED_JSON]
#: chdb://DIR (embedded chDB) or http(s)://user:pass@host:8123 (clickhouse-connect's DSN).
ClickHouseDsn = Annotated[SecretDsn, dsn_checker("chdb", "http", "https", "clickhouse", "clickhouses",
                                                 embedded=("chdb",)), _REDACTED_JSON]

# --- paths ---------------------------------------------------------------------------------------


def resolve_path(path: Path, info: ValidationInfo) -> Path:
    """`~` expanded; a relative path is relative to the config file's directory (the loader passes
    it as `base_dir`), so a config means the same wherever `ray-cdc run` is started from."""
    path = path.expanduser()
    base = (info.context or {}).get("base_dir")
    return Path(base) / path if base is not None and not path.is_absolute() else path


ConfigPath = Annotated[Path, AfterValidator(resolve_path)]

# --- numbers -------------------------------------------------------------------------------------


def _no_bool(value: Any) -> Any:
    # pydantic's lax int takes True as 1; YAML 1.1 reads `yes`/`on` as True: `batch_rows: yes` is a typo
    if isinstance(value, bool):
        # ValueError, not TypeError: pydantic turns only ValueErrors into validation errors
        raise ValueError("expected a number, not a boolean")  # noqa: TRY004
    return value


Count = Annotated[int, BeforeValidator(_no_bool), Field(gt=0)]
Port = Annotated[int, BeforeValidator(_no_bool), Field(ge=0, le=65535)]  # 0: any free port (tests)

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:ib|b)?|b)?$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(value: Any) -> Any:
    """Bytes from `16MiB`, `16 MB`, `64k`, `1.5g` or a number. Units are powers of 1024 whatever their
    spelling (k = kB = KiB = 1024), as in cassandra.yaml: one rule, no kB/KiB trap."""
    value = _no_bool(value)
    if not isinstance(value, str):
        return value
    match = _SIZE.match(value.strip())
    if match is None:
        raise ValueError("not a size (e.g. 16MiB, 64k, 1048576)")
    return int(float(match[1]) * 1024 ** _POWERS[(match[2] or "").lower()])


ByteSize = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> Any:
    """Seconds from `500ms`, `2s`, `1.5m`, `1h` or a number of seconds."""
    value = _no_bool(value)
    if not isinstance(value, str):
        return value
    match = _DURATION.match(value.strip())
    if match is None:
        raise ValueError("not a duration (e.g. 500ms, 2s, 5m, 1h, or seconds)")
    return float(match[1]) * _SECONDS[(match[2] or "s").lower()]


#: Seconds, > 0.
Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]

# --- names ---------------------------------------------------------------------------------------


def matching(pattern: str, what: str) -> AfterValidator:
    """A regex check whose message says what is expected in words, not as the regex."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"not {what}")
        return value

    return AfterValidator(check)


#: A PostgreSQL/ClickHouse name the writers use unquoted-safe.
Identifier = Annotated[str, matching(r"[A-Za-z_][A-Za-z0-9_]*", "a plain identifier (letters, digits, _)")]
#: `keyspace.table`, exactly.
TableName = Annotated[str, matching(r"[^.\s*?]+\.[^.\s*?]+", "a keyspace.table name")]
#: `keyspace.table` with shell wildcards: `shop.*`, `*.events`.
TablePattern = Annotated[str, matching(r"[^.\s]+\.[^.\s]+",
                                       "a keyspace.table pattern (e.g. shop.* or *.events)")]
#: A Cassandra node's name: part of partition ids (`node/segment`), so no `/`.
NodeName = Annotated[str, matching(r"[A-Za-z0-9][A-Za-z0-9_.-]*", "a node name (letters, digits, _ . -)")]
#: A destination's name: it appears in `RAY_CDC__DESTINATIONS__<NAME>__...` variables and offsets rows.
DestinationName = Annotated[str, matching(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*",
                                          "a destination name (lowercase letters, digits, single _)")]
