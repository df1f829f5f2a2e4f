"""Masking: what a destination may see of a batch.

A `Mask` takes a table's batch for one destination and returns the table schema and batch that
destination receives (same rows, same order: rejected-row indices, dead letters and offsets refer
to it). `no_mask` hands both on; `Masker` applies the configured policies (`ray_cdc.config.masking`):

- hash / tokenize: the column becomes text (a keyed HMAC-SHA256 hex, or a `tok_` token), and so does
  its type in the schema the destination creates its tables from. Values are hashed in their
  canonical text form (uuids as `xxxxxxxx-...`, numbers as digits, blobs as their bytes), so an int
  `patient_id` and a text one give the same token and joins across tables still work.
- redact: NULL, type unchanged; refused on primary key columns (every key would collapse into one).
- keep: as is.

Vectorised: a column is dictionary-encoded, only its distinct values go through HMAC (the Python
cost is per distinct value) and the results are `take`n back; nulls stay null. A masked clustering
column is masked in range-delete bounds (`_range`) too: a range delete with equality bounds on it
still applies, one with inequality bounds compares masked values (documented limitation).
Non-frozen collections and UDTs (element-wise columns) can only be kept: masking them is an error
naming the column, never a silent leak.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.config.masking import MaskingConfig, Policy
from ray_cdc.errors import RayCdcError
from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
from ray_cdc.schema.types import parse_cql_type
from ray_cdc.transforms.classify import Classifier
from ray_cdc.transforms.masking_key import MaskingKey, load_key

TEXT = parse_cql_type("text")
_DIGESTS: dict[str, Callable[[MaskingKey], Callable[[bytes], str]]] = {
    "hash": lambda key: key.hash_hex, "tokenize": lambda key: key.token}


class MaskingError(RayCdcError):
    """A masking policy cannot apply to a column (its type or its role); names destination, table
    and column."""


class Mask(Protocol):
    def __call__(self, batch: pa.RecordBatch, table: TableSchema,
                 destination: str) -> tuple[TableSchema, pa.RecordBatch]:
        """The table schema and batch `destination` receives (same row count and order)."""


def no_mask(batch: pa.RecordBatch, table: TableSchema, destination: str) -> tuple[TableSchema, pa.RecordBatch]:
    return table, batch


@dataclass(frozen=True)
class TableMasking:
    """One table's plan for one destination: the schema it sees, and the columns to mask."""

    table: TableSchema
    policies: dict[str, Policy]  # column -> hash | tokenize | redact (kept columns are absent)


@dataclass
class Masker:
    classifier: Classifier
    key: MaskingKey = field(repr=False)
    _plans: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, config: MaskingConfig, destinations=None) -> Masker:
        """`destinations`: the configured names; a masking entry for any other is an error (a typo
        there would otherwise mask, or worse unmask, nothing that exists)."""
        if destinations is not None:
            check_destinations(config, destinations)
        return cls(Classifier.from_config(config), load_key(config))

    def __call__(self, batch: pa.RecordBatch, table: TableSchema,
                 destination: str) -> tuple[TableSchema, pa.RecordBatch]:
        plan = self.plan(table, destination)
        for name, policy in plan.policies.items():
            batch = _mask_field(batch, name, policy, self.key, table.column(name))
        if plan.policies and "_range" in batch.schema.names:
            batch = _mask_range(batch, plan.policies, self.key, table)
        return plan.table, batch

    def plan(self, table: TableSchema, destination: str) -> TableMasking:
        key = (destination, table)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _plan(self.classifier, table, destination)
        return plan


def check_destinations(config: MaskingConfig, destinations) -> None:
    if unknown := sorted(set(config.destinations) - set(destinations)):
        raise MaskingError(f"masking.destinations: {', '.join(unknown)} not among the destinations "
                           f"({', '.join(sorted(destinations))})")


def _plan(classifier: Classifier, table: TableSchema, destination: str) -> TableMasking:
    policies: dict[str, Policy] = {}
    columns = []
    for column in table.columns:
        policy = classifier.policy(destination, table.keyspace, table.name, column.name)
        if policy != "keep":
            _check_applicable(column, policy, f"{destination}: {table.qualified_name}.{column.name}")
            policies[column.name] = policy
        columns.append(replace(column, type=TEXT) if policy in _DIGESTS else column)
    masked = replace(table, columns=tuple(columns)) if policies else table
    return TableMasking(masked, policies)


def _check_applicable(column: ColumnSchema, policy: Policy, where: str) -> None:
    if column.type.is_multicell:
        raise MaskingError(f"{where}: {policy} cannot apply to a non-frozen collection or UDT "
                           "(changes carry its elements one by one); give it the rule keep, or freeze it")
    if policy == "redact" and column.kind in (ColumnKind.PARTITION_KEY, ColumnKind.CLUSTERING):
        raise MaskingError(f"{where}: redact cannot apply to a primary key column (every key would "
                           "become NULL); use hash or tokenize")
    if policy in _DIGESTS and pa.types.is_nested(column.type.arrow_type()):
        raise MaskingError(f"{where}: {policy} needs a scalar column, not {column.type.cql()}; "
                           "use redact or keep")


def _mask_field(batch: pa.RecordBatch, name: str, policy: Policy, key: MaskingKey,
                column: ColumnSchema) -> pa.RecordBatch:
    index = batch.schema.get_field_index(name)
    if index < 0:
        return batch  # a column the batch's (older) schema does not carry
    masked = mask_values(batch.column(index), policy, key, column.type.name)
    return batch.set_column(index, pa.field(name, masked.type), masked)


def mask_values(values: pa.Array, policy: Policy, key: MaskingKey, cql_type: str) -> pa.Array:
    """`values` masked by `policy`: hash/tokenize give strings (nulls stay null), redact nulls."""
    if policy == "redact":
        return pa.nulls(len(values), values.type)
    if policy == "keep":
        return values
    digest = _DIGESTS[policy](key)
    encoded = pc.dictionary_encode(values)
    distinct = canonical_bytes(encoded.dictionary, cql_type)
    return pa.array([digest(v) for v in distinct], pa.string()).take(encoded.indices)


def canonical_bytes(values: pa.Array, cql_type: str) -> list[bytes]:
    """The bytes a value is hashed as: its text form (the same whatever the column's CQL type), raw
    bytes for blobs."""
    arrow = values.type
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return [v.encode() for v in values.to_pylist()]
    if cql_type in ("uuid", "timeuuid"):
        return [str(uuid.UUID(bytes=v)).encode() for v in values.to_pylist()]
    if pa.types.is_binary(arrow) or pa.types.is_fixed_size_binary(arrow) or pa.types.is_large_binary(arrow):
        return values.to_pylist()
    try:
        return [v.encode() for v in pc.cast(values, pa.string()).to_pylist()]
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):  # e.g. durations: Python's text form
        return [str(v).encode() for v in values.to_pylist()]


def _mask_range(batch: pa.RecordBatch, policies: dict[str, Policy], key: MaskingKey,
                table: TableSchema) -> pa.RecordBatch:
    """Range-delete bounds hold clustering values: mask them like the column itself."""
    masked_ck = [c for c in table.clustering if c.name in policies]
    if not masked_ck:
        return batch
    index = batch.schema.get_field_index("_range")
    ranges = batch.column(index)
    children = {f.name: ranges.field(f.name) for f in ranges.type}
    for side in ("start", "end"):
        bound = children[side]
        fields = {f.name: bound.field(f.name) for f in bound.type}
        for c in masked_ck:
            fields[c.name] = mask_values(fields[c.name], policies[c.name], key, c.type.name)
        children[side] = pa.StructArray.from_arrays(list(fields.values()), names=list(fields),
                                                    mask=pc.is_null(bound))
    masked = pa.StructArray.from_arrays(list(children.values()), names=list(children), mask=pc.is_null(ranges))
    return batch.set_column(index, pa.field("_range", masked.type), masked)
