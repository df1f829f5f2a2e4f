"""Result pages as raw value bytes per column, through cassandra-driver's own extension point.

The driver turns every value of a page into a Python object (`ProtocolHandler.message_types_by_opcode`
is documented as the place to "inject specialized result decoding implementations"). The snapshot
does not want Python objects: a native protocol value is the same serialized form a commitlog cell
holds, so the decoder's column builders (`arrow_batches.raw_to_arrow`, the compiled kernel when built)
turn the bytes into Arrow directly, and snapshot values are exactly what CDC would produce.

A session whose `client_protocol_handler` is `RawRowsHandler` gets each page as a one-element list
`[RawPage]` (use `passthrough_rows` as its row factory); paging (`fetch_size`, `paging_state`) is the
driver's as usual. Only result *rows* change; every other message is the driver's own.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from cassandra.protocol import ResultMessage, read_int
from cassandra.protocol import _ProtocolHandler as _DriverProtocolHandler

_INT = struct.Struct(">i")


@dataclass
class RawPage:
    """One page: `columns[i][row]` is the value bytes of selected column i (None: null)."""

    names: list[str]
    columns: list[list[bytes | None]]
    rows: int


def split_values(body: bytes, rows: int, ncols: int) -> list[list[bytes | None]]:
    """The rows section of a RESULT (after the row count) as per-column lists of value bytes."""
    columns: list[list] = [[] for _ in range(ncols)]
    appends = [c.append for c in columns]
    unpack = _INT.unpack_from
    view = memoryview(body)
    pos = 0
    try:
        for _ in range(rows):
            for append in appends:
                (size,) = unpack(body, pos)
                pos += 4
                if size < 0:
                    append(None)
                else:
                    end = pos + size
                    append(bytes(view[pos:end]))
                    pos = end
    finally:
        view.release()
    return columns


class RawResultMessage(ResultMessage):
    def recv_results_rows(self, f, protocol_version, user_type_map, result_metadata, column_encryption_policy):
        self.recv_results_metadata(f, user_type_map)
        metadata = self.column_metadata or result_metadata
        rows = read_int(f)
        self.column_names = [c[2] for c in metadata]
        self.column_types = [c[3] for c in metadata]
        self.parsed_rows = [RawPage(self.column_names, split_values(f.read(), rows, len(metadata)), rows)]


class RawRowsHandler(_DriverProtocolHandler):
    message_types_by_opcode: ClassVar[dict] = {**_DriverProtocolHandler.message_types_by_opcode,
                                               RawResultMessage.opcode: RawResultMessage}


def passthrough_rows(column_names, rows):
    """Row factory that hands the `[RawPage]` on untouched."""
    return rows
