"""`/ready`: is every actor of the running pass alive, and can each destination be reached?

Each destination is checked with its own settings only (kind and DSN), so a destination that is
missing or down never fails another's check. Details never carry a secret: driver messages pass
through `ray_cdc.secrets.redact`, and the DSN itself is cut out of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ray_cdc.observability.models import ActorStatus, DestinationCheck
from ray_cdc.secrets import MASK, redact

#: seconds a destination check may take (connect + one query)
CHECK_TIMEOUT = 3
#: roles every pass has; plus one writer per destination
PASS_ROLES = ("coordinator", "offsets")
#: readers end on their own once their node is done: reported, not required
OPTIONAL_ROLES = ("reader",)


@dataclass(frozen=True)
class DestinationTarget:
    name: str
    kind: str  # postgres, timescaledb, clickhouse
    dsn: str = field(repr=False)  # may hold a password


def check_destination(target: DestinationTarget, timeout: float = CHECK_TIMEOUT) -> DestinationCheck:
    try:
        if target.kind == "clickhouse":
            _check_clickhouse(target.dsn, timeout)
        else:
            _check_postgres(target.dsn, timeout)
    except Exception as exc:  # noqa: BLE001 - every failure of a check means "not reachable", with its reason
        return DestinationCheck(reachable=False, detail=scrub(f"{type(exc).__name__}: {exc}", [target.dsn]))
    return DestinationCheck(reachable=True, detail=None)


def _check_postgres(dsn: str, timeout: float) -> None:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=max(1, round(timeout))) as conn:
        conn.execute("SELECT 1")


def _check_clickhouse(dsn: str, timeout: float) -> None:
    if urlsplit(dsn).scheme == "chdb":
        _check_chdb_directory(dsn)
        return
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=dsn, connect_timeout=timeout, send_receive_timeout=timeout)
    try:
        if not client.ping():
            raise ConnectionError("the server did not answer the ping")
    finally:
        client.close()


def _check_chdb_directory(dsn: str) -> None:
    """chDB runs inside the writer's process, which holds its directory (one process at a time may
    open it): reachable = the writer is alive (the actor check) and the directory is usable."""
    directory = Path(dsn.split("://", 1)[1])
    existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"chDB directory {directory} is not a writable directory")


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` without passwords (`redact`) and without any of `secrets` verbatim."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return redact(text)


def judge_actors(pass_id: str | None, actors: list[tuple[str, str]], destinations: Iterable[str]
                 ) -> tuple[list[ActorStatus], list[str]]:
    """The pass's actors (`(name, Ray state)`, named `<pass_id>:<role>[:<what>...]`) and the ones
    missing from it: a coordinator, an offset actor, and a writer per destination."""
    statuses = [_actor_status(pass_id, name, state) for name, state in actors]
    if pass_id is None:
        return statuses, []  # between passes nothing runs: nothing is missing
    present = {tuple(s.name.removeprefix(f"{pass_id}:").split(":")[:2]) for s in statuses}
    wanted = [(role,) for role in PASS_ROLES] + [("writer", d) for d in destinations]
    return statuses, [":".join(w) for w in wanted if w not in present]


def _actor_status(pass_id: str | None, name: str, state: str) -> ActorStatus:
    role = name.removeprefix(f"{pass_id}:").split(":")[0]
    return ActorStatus(name=name, role=role, state=state, required=role not in OPTIONAL_ROLES)


def actors_ready(statuses: list[ActorStatus], missing: list[str]) -> bool:
    return not missing and all(s.state == "ALIVE" for s in statuses if s.required)
