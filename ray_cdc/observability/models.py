"""The JSON bodies of the health API. The OpenAPI document (`openapi.py`) is generated from these
models, so what the server sends and what the document promises cannot drift apart."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Phase = Literal["starting", "running", "between_passes"]
SegmentState = Literal["reading", "queued", "waiting"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(_Body):
    status: Literal["alive"] = "alive"
    uptime_seconds: float


class CommittedPosition(_Body):
    position: int | None = Field(description="commitlog position committed (null: nothing yet)")
    completed: bool = Field(description="the destination has applied the whole, finished segment")


class SegmentStatus(_Body):
    segment_id: int
    file: str
    size_bytes: int = Field(description="size on disk")
    end_bytes: int = Field(description="durable end: the offset in _cdc.idx, else the size")
    state: SegmentState = Field(description="reading: a reader has it; queued: waiting for a reader in "
                                            "this pass; waiting: for the next pass")
    reader: str | None = None
    lag_bytes: int = Field(description="end_bytes minus the lowest position any destination committed")
    lag_seconds: float = Field(description="age of the file's last write while any destination lags")
    committed: dict[str, CommittedPosition]


class NodeStatus(_Body):
    segments_total: int = Field(description="segment files in the commitlog directory")
    segments_done: int = Field(description="of them, applied completely by every destination")
    lag_bytes: int = Field(description="sum of the segments' lag_bytes")
    lag_seconds: float = Field(description="the largest segment lag_seconds: the oldest uncommitted segment")
    segments: list[SegmentStatus] = Field(description="the segments not yet done (done ones are counted only)")


class DestinationStatus(_Body):
    rows_written: int = Field(description="rows applied since the pipeline started")
    rows_per_second: float = Field(description="rows applied over the last minute (or since the start)")
    commits: int = Field(description="table batches committed since the pipeline started")
    lag_bytes: int = Field(description="durable bytes of the segments on disk this destination lacks")


class SnapshotTableStatus(_Body):
    ranges_completed: dict[str, int] = Field(description="destination -> token ranges it finished")
    fraction_done: float = Field(description="share of the token ring every destination has committed")


class StatusReport(_Body):
    generated_at: float = Field(description="time.time() of this report")
    phase: Phase
    pass_id: str | None = Field(description="the running pass (its actors are named <pass_id>:<role>)")
    passes: int = Field(description="passes started since the pipeline started")
    nodes: dict[str, NodeStatus]
    destinations: dict[str, DestinationStatus]
    dlq_entries: int | None = Field(description="entries in the dead-letter store (null: unreadable now)")
    snapshot: dict[str, SnapshotTableStatus] = Field(description="keyspace.table -> snapshot progress "
                                                                 "(empty: no snapshot offsets)")


class ActorStatus(_Body):
    name: str
    role: str
    state: str = Field(description="Ray's actor state: ALIVE, PENDING_CREATION, RESTARTING, DEAD, ...")
    required: bool = Field(description="counts for readiness (readers end on their own when done)")


class DestinationCheck(_Body):
    reachable: bool
    detail: str | None = Field(description="why not (secrets removed)")


class ReadyReport(_Body):
    ready: bool
    phase: Phase
    pass_id: str | None
    actors: list[ActorStatus]
    missing_actors: list[str] = Field(description="roles the running pass lacks")
    destinations: dict[str, DestinationCheck]


class ErrorBody(_Body):
    error: str
    detail: str
