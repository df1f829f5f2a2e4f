"""`CommitLog-<v>-<id>_cdc.idx`: how far a segment in `cdc_raw` is durable (format doc §15).

The file is ASCII: the decimal *logical* offset up to which the segment is synced (a section end),
and, once the segment is finished, a second line `COMPLETED`. Cassandra truncates and rewrites it
on every sync, so a reader can briefly see it empty: that is reported as `CdcIndexError` (retry
later), never guessed at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ray_cdc.errors import CdcIndexError

SUFFIX = "_cdc.idx"
COMPLETED = "COMPLETED"
_MAX_BYTES = 64  # an int, a newline and COMPLETED; anything longer is not an index file


@dataclass(frozen=True, slots=True)
class CdcIndex:
    offset: int  # logical offset: data before it is durable, data after it must not be read
    completed: bool  # Cassandra will not write to the segment again

    def text(self) -> str:
        """The file content exactly as Cassandra writes it (`writeCDCIndexFile`)."""
        return f"{self.offset}\n{COMPLETED}" if self.completed else str(self.offset)


def index_path(segment_path: str | Path) -> Path:
    """`.../CommitLog-7-123.log` -> `.../CommitLog-7-123_cdc.idx`."""
    p = Path(segment_path)
    return p.with_name(p.name.removesuffix(".log") + SUFFIX)


def parse_cdc_index(text: bytes, path: str | Path | None = None) -> CdcIndex:
    where = str(path) if path is not None else None
    try:
        lines = text.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise CdcIndexError("CDC index is not ASCII text", path=where) from None
    lines = [line.strip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    if not lines or not lines[0].isdigit():
        raise CdcIndexError(f"CDC index holds no offset: {text[:_MAX_BYTES]!r}", path=where)
    if len(lines) > 2 or (len(lines) == 2 and lines[1] != COMPLETED):
        raise CdcIndexError(f"CDC index has unexpected content: {text[:_MAX_BYTES]!r}", path=where)
    return CdcIndex(int(lines[0]), len(lines) == 2)


def read_cdc_index(path: str | Path) -> CdcIndex:
    """Read one index file; `FileNotFoundError` passes through (no index = nothing known)."""
    with open(path, "rb") as f:
        data = f.read(_MAX_BYTES + 1)
    if len(data) > _MAX_BYTES:
        raise CdcIndexError("CDC index file is too long to be an index", path=str(path))
    return parse_cdc_index(data, path)


def find_cdc_index(segment_path: str | Path) -> CdcIndex | None:
    """The index beside a segment, or None when there is none."""
    try:
        return read_cdc_index(index_path(segment_path))
    except FileNotFoundError:
        return None


def write_cdc_index(path: str | Path, offset: int, completed: bool) -> None:
    """Write an index file. Written to a temporary name and renamed, so that a concurrent reader
    sees the old or the new content, never an empty file (Cassandra itself truncates in place)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(CdcIndex(offset, completed).text(), encoding="ascii")
    os.replace(tmp, path)
