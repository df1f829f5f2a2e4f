"""Dead letters as the `ray-cdc dlq` commands print them: JSON-safe summaries and payload rows.

Messages pass through `redact()` once more on the way out (stores redact them already; a message
written by an older version must not leak either). Payload rows are the replicated data as the
destination was meant to see it (masked when masking is configured), never connection settings.
"""

from __future__ import annotations

import datetime
import decimal
import ipaddress
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ray_cdc.dlq.entry import DeadLetter
from ray_cdc.dlq.replay import Outcome
from ray_cdc.secrets import redact

MESSAGE_WIDTH = 80  # the one-line table cuts longer messages; --json and `show` have them whole


def summary(entry: DeadLetter) -> dict[str, Any]:
    return {"id": entry.id, "destination": entry.destination, "table": entry.qualified_table,
            "table_id": entry.table_id, "node": entry.node,
            "source": f"{entry.segment_id}:{entry.position}", "rows": entry.rows, "attempts": entry.attempts,
            "first_seen": entry.first_seen.isoformat(), "last_seen": entry.last_seen.isoformat(),
            "error_class": entry.error_class, "message": redact(entry.message)}


def table_lines(entries: list[DeadLetter]) -> Iterator[str]:
    yield f"{'id':36}  {'destination':12}  {'table':24}  rows  tries  {'last seen':19}  error"
    for e in entries:
        message = " ".join(redact(e.message).split())
        if len(message) > MESSAGE_WIDTH:
            message = message[:MESSAGE_WIDTH - 1] + "…"
        yield (f"{e.id:36}  {e.destination:12}  {e.qualified_table:24}  {e.rows:4}  {e.attempts:5}  "
               f"{e.last_seen:%Y-%m-%d %H:%M:%S}  {e.error_class}: {message}")


def payload_rows(batch: pa.RecordBatch) -> Iterator[dict[str, Any]]:
    for row in batch.to_pylist():
        yield {name: json_value(value) for name, value in row.items()}


def json_value(value: Any) -> Any:
    """A payload value as JSON: blobs as `0x…` (as CQL writes them), times in ISO 8601, decimals
    and addresses as text, map entries (Arrow's key/value pairs) as [key, value] lists."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (decimal.Decimal, uuid.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return value


def outcome_line(outcome: Outcome) -> str:
    counts = f"{outcome.rows_written} row(s) written" + (
        f", {outcome.rows_refused} refused" if outcome.rows_refused else "")
    line = f"{outcome.status:8}  {outcome.entry_id}  {outcome.destination}  {outcome.table}  {counts}"
    if outcome.reason:
        line += f"  ({' '.join(redact(outcome.reason).split())})"
    if outcome.new_ids:
        line += f"  -> new entr{'y' if len(outcome.new_ids) == 1 else 'ies'} {', '.join(outcome.new_ids)}"
    return line
