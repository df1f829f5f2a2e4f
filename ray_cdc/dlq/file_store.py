"""The embedded DLQ: one directory, two files per entry.

`<id>.arrow` holds the payload (Arrow IPC file), `<id>.json` the metadata. Both are written to a
temporary name, fsynced, then renamed into place, payload first: the sidecar's rename is the commit
point, so a crash at any moment leaves either a whole entry or stray files that `list`/`get` never
see (temporaries end in `.tmp`; a payload without its sidecar is not an entry). `remove` deletes the
sidecar first for the same reason. `recover()` sweeps the strays.

Safe for ONE writer process (the DLQ actor; a lock orders its threads); other processes (the CLI's
`dlq list`/`show`) may read at the same time.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from ray_cdc.dlq.entry import DeadLetter, is_valid_id
from ray_cdc.dlq.payload import from_ipc_file, to_ipc_file
from ray_cdc.dlq.store import (
    ALL,
    DeadLetterError,
    DeadLetterFilter,
    DeadLetterNotFoundError,
    Mask,
    after_attempt,
    identity,
    prepared,
)

FORMAT = 1
_TMP = ".tmp"
_FIELDS = ("id", "destination", "keyspace", "table", "table_id", "node", "segment_id", "position",
           "error_class", "message", "rows", "attempts")


class FileDeadLetterStore:
    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        # 0o700 / 0o600: payloads are replicated data, readable by the service user only.
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileDeadLetterStore({str(self.directory)!r})"

    # --- writing -----------------------------------------------------------------------------------

    def add(self, entries: Iterable[DeadLetter], *, mask: Mask = identity) -> list[str]:
        ids = []
        for entry in entries:
            entry = prepared(_checked(entry), mask)
            with self._lock:
                _write_atomic(self._payload_path(entry.id), to_ipc_file(entry.payload))
                _fsync_dir(self.directory)  # the payload's name is durable before the sidecar can be
                _write_atomic(self._sidecar_path(entry.id), _encode(entry))  # the commit point
                _fsync_dir(self.directory)
            ids.append(entry.id)
        return ids

    def remove(self, entry_ids: Iterable[str]) -> int:
        removed = 0
        with self._lock:
            for entry_id in entry_ids:
                if not is_valid_id(entry_id):
                    continue  # cannot name an entry of this store (and must not name another file)
                try:
                    self._sidecar_path(entry_id).unlink()  # gone from list/get from here on
                except FileNotFoundError:
                    continue
                self._payload_path(entry_id).unlink(missing_ok=True)
                removed += 1
            _fsync_dir(self.directory)
        return removed

    def record_attempt(self, entry_id: str, error: BaseException | str,
                       now: datetime | None = None) -> DeadLetter:
        with self._lock:  # under the lock: a concurrent remove must not be undone by this rewrite
            entry = after_attempt(self._read_sidecar(entry_id), error, now)
            _write_atomic(self._sidecar_path(entry_id), _encode(entry))
        _fsync_dir(self.directory)
        return entry

    def recover(self) -> int:
        """Delete what a crash left behind (temporaries, payloads without a sidecar); how many files.
        Only the writer may call it: to another process, an `add` in progress looks just like that."""
        swept = 0
        with self._lock:
            for path in self.directory.iterdir():
                orphan = path.suffix == ".arrow" and not path.with_suffix(".json").exists()
                if path.name.endswith(_TMP) or orphan:
                    path.unlink(missing_ok=True)
                    swept += 1
        return swept

    # --- reading -----------------------------------------------------------------------------------

    def list(self, filter: DeadLetterFilter = ALL) -> list[DeadLetter]:
        now = filter.at()
        entries = []
        for path in self.directory.glob("*.json"):  # temporaries end in .tmp: never matched
            if not is_valid_id(path.stem):
                continue
            try:
                entry = _decode(path.read_bytes(), path)
            except FileNotFoundError:
                continue  # removed while listing
            if filter.matches(entry, now):
                entries.append(entry)
        return sorted(entries, key=lambda e: (e.first_seen, e.id))

    def get(self, entry_id: str) -> DeadLetter:
        entry = self._read_sidecar(entry_id)
        try:
            payload = from_ipc_file(self._payload_path(entry_id).read_bytes())
        except FileNotFoundError:
            raise DeadLetterNotFoundError(entry_id) from None  # removed between the two reads
        except OSError as exc:  # pyarrow's ArrowInvalid is an OSError too
            raise DeadLetterError(f"unreadable payload of dead letter {entry_id} in {self.directory}: {exc}") \
                from exc
        return entry.with_payload(payload)

    def count(self, filter: DeadLetterFilter = ALL) -> int:
        return len(self.list(filter))

    # --- files -------------------------------------------------------------------------------------

    def _sidecar_path(self, entry_id: str) -> Path:
        return self.directory / f"{entry_id}.json"

    def _payload_path(self, entry_id: str) -> Path:
        return self.directory / f"{entry_id}.arrow"

    def _read_sidecar(self, entry_id: str) -> DeadLetter:
        if not is_valid_id(entry_id):
            raise DeadLetterNotFoundError(entry_id)
        path = self._sidecar_path(entry_id)
        try:
            return _decode(path.read_bytes(), path)
        except FileNotFoundError:
            raise DeadLetterNotFoundError(entry_id) from None


def _checked(entry: DeadLetter) -> DeadLetter:
    if not is_valid_id(entry.id):
        raise ValueError(f"dead letter id must be a uuid string, not {entry.id!r}")
    return entry


def _encode(entry: DeadLetter) -> bytes:
    record = {name: getattr(entry, name) for name in _FIELDS}
    record.update(format=FORMAT, first_seen=entry.first_seen.isoformat(), last_seen=entry.last_seen.isoformat())
    return json.dumps(record, indent=1).encode()


def _decode(data: bytes, path: Path) -> DeadLetter:
    try:
        record = json.loads(data)
        if record.get("format") != FORMAT:
            raise ValueError(f"unknown format {record.get('format')!r}")
        return DeadLetter(**{name: record[name] for name in _FIELDS},
                          first_seen=datetime.fromisoformat(record["first_seen"]),
                          last_seen=datetime.fromisoformat(record["last_seen"]))
    except (ValueError, KeyError, TypeError) as exc:
        # Atomic writes never leave a torn sidecar: this is damage from outside, and hiding it would
        # silently drop rows.
        raise DeadLetterError(f"unreadable dead letter sidecar {path}: {exc}") from exc


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that `path` is either absent/old or complete, never partial."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}{_TMP}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)  # the data is on disk before the name points at it
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    """Make renames and unlinks durable (the directory entry, not just the file data)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
