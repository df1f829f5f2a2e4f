"""Table schemas as the commitlog decoder needs them: by table id, with column kinds and types."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from uuid import UUID

from ray_cdc.schema.types import CqlType


class ColumnKind(str, Enum):
    PARTITION_KEY = "partition_key"
    CLUSTERING = "clustering"
    REGULAR = "regular"
    STATIC = "static"


@dataclass(frozen=True)
class ColumnSchema:
    name: str
    type: CqlType
    kind: ColumnKind
    position: int = 0  # order inside the partition key or clustering; 0 for other kinds
    reversed: bool = False  # clustering order DESC (same bytes, format doc §13.1)

    @property
    def is_complex(self) -> bool:
        return self.type.is_multicell


@dataclass(frozen=True)
class DroppedColumn:
    """A column dropped by `ALTER TABLE ... DROP`; data written before `dropped_at` still has it."""

    name: str
    type: CqlType
    dropped_at: int  # microseconds since the epoch
    kind: ColumnKind = ColumnKind.REGULAR


@dataclass(frozen=True)
class TableSchema:
    keyspace: str
    name: str
    id: UUID
    columns: tuple[ColumnSchema, ...]
    dropped: tuple[DroppedColumn, ...] = ()
    options: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        by_name = {c.name: c for c in self.columns}
        if len(by_name) != len(self.columns):
            raise ValueError(f"{self.qualified_name}: duplicate column names")
        object.__setattr__(self, "_by_name", by_name)
        pk = sorted((c for c in self.columns if c.kind is ColumnKind.PARTITION_KEY), key=lambda c: c.position)
        ck = sorted((c for c in self.columns if c.kind is ColumnKind.CLUSTERING), key=lambda c: c.position)
        if not pk:
            raise ValueError(f"{self.qualified_name}: no partition key column")
        object.__setattr__(self, "_pk", tuple(pk))
        object.__setattr__(self, "_ck", tuple(ck))

    @property
    def qualified_name(self) -> str:
        return f"{self.keyspace}.{self.name}"

    @property
    def partition_key(self) -> tuple[ColumnSchema, ...]:
        return self._pk  # type: ignore[attr-defined]

    @property
    def clustering(self) -> tuple[ColumnSchema, ...]:
        return self._ck  # type: ignore[attr-defined]

    @property
    def regular(self) -> tuple[ColumnSchema, ...]:
        return tuple(c for c in self.columns if c.kind is ColumnKind.REGULAR)

    @property
    def static(self) -> tuple[ColumnSchema, ...]:
        return tuple(c for c in self.columns if c.kind is ColumnKind.STATIC)

    def column(self, name: str) -> ColumnSchema | None:
        """The column by its internal name; a dropped column is returned as a regular/static one
        of its last type, so older data that still carries it can be decoded."""
        col = self._by_name.get(name)  # type: ignore[attr-defined]
        if col is not None:
            return col
        for d in self.dropped:
            if d.name == name:
                return ColumnSchema(d.name, d.type, d.kind)
        return None
