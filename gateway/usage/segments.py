"""The on-disk half of the usage ledger: append-only segment files that outlive the process.

Every usage record is appended, as one JSON line with one ``write()``, to this worker's *active*
segment before the request's last byte leaves. ``write()`` puts the bytes in the kernel's page cache,
which a SIGKILL, an OOM kill or a crash of the interpreter cannot take back (only a crash of the host
can, unless ``fsync`` is on — see docs/resilience.md). The recorder seals the active segment each time
it flushes; a sealed segment is deleted once all of its records are in the database.

Ownership is an ``flock``: a worker holds an exclusive lock on every segment it has not finished,
for as long as it lives; the kernel drops the locks of a dead process. Any worker (of any replica that
shares the directory) that can lock a segment it does not own has found an orphan: a dead worker's
records, possibly half inserted already. It replays the whole file — inserts ignore request ids
already stored — and deletes it. Files of the previous spill format (``*.jsonl``) are replayed the
same way.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

log = structlog.get_logger(__name__)

SUFFIX = ".seg"
_PATTERNS = ("*.seg", "*.jsonl", "*.replaying-*")


@dataclass(slots=True, eq=False)
class Segment:
    """A segment file this process holds (locked): its path, descriptor and, while it is the active
    one or small enough to keep, its rows in memory."""

    path: Path
    fd: int
    rows: list[dict[str, Any]] | None = field(default_factory=list)
    """``None`` once the rows were let go to bound memory: they are read back from the file."""
    count: int = 0
    on_disk: bool = True
    """``False`` once a write to the file failed: the rows held in memory are the only copy."""


def encode(row: dict[str, Any]) -> bytes:
    """One line. A record orjson cannot write (an unpaired surrogate, an integer beyond 64 bits) is
    still kept, ASCII-escaped by the standard library: it is quarantined when it is written."""
    try:
        return orjson.dumps(row) + b"\n"
    except TypeError:
        return json.dumps(row, ensure_ascii=True, default=str).encode() + b"\n"


def _decode_line(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)  # the fallback encoding above (or a torn line: ValueError)


def decode_file(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The rows of a segment, and how many lines were unreadable (a torn last line after a kill)."""
    rows: list[dict[str, Any]] = []
    bad = 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                row = _decode_line(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(row, dict) and isinstance(row.get("request_id"), str):
                rows.append(row)
            else:
                bad += 1
    return rows, bad


class SegmentLog:
    """This worker's segments in ``directory``: one active, any number sealed but not yet written."""

    def __init__(self, directory: Path, *, fsync: bool = False) -> None:
        self.directory = directory
        self.fsync = fsync
        self.active: Segment | None = None
        self._owned: set[str] = set()
        self._tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    # -- the request path ------------------------------------------------------------------------
    def append(self, row: dict[str, Any]) -> bool:
        """Append one record to the active segment (opened on first use). ``False`` when it could
        only be kept in memory (the directory is not writable, the disk is full)."""
        segment = self.active
        if segment is None:
            segment = self.active = self._open()
        assert segment.rows is not None
        segment.rows.append(row)
        segment.count += 1
        if not segment.on_disk:
            return False
        data = encode(row)
        try:
            while data:
                written = os.write(segment.fd, data)
                data = data[written:]
            if self.fsync:
                os.fsync(segment.fd)
        except OSError:
            segment.on_disk = False
            log.error("usage_segment_write_failed", file=segment.path.name, exc_info=True)
            return False
        return True

    # -- the recorder's side ---------------------------------------------------------------------
    def seal(self) -> Segment | None:
        """Hand over the active segment (if it holds records); the next append opens a new one."""
        segment = self.active
        if segment is None or segment.count == 0:
            return None
        self.active = None
        return segment

    def finish(self, segment: Segment) -> None:
        """Every record of ``segment`` is in the database: delete the file, then drop the lock."""
        try:
            segment.path.unlink(missing_ok=True)
        finally:
            self._release(segment)

    def release(self, segment: Segment) -> None:
        """Stop holding ``segment`` (process exit): the file stays for whoever replays it next."""
        self._release(segment)

    def read(self, segment: Segment) -> list[dict[str, Any]]:
        if segment.rows is not None:
            return segment.rows
        rows, bad = decode_file(segment.path)
        if bad:
            log.error("usage_segment_lines_unreadable", file=segment.path.name, lines=bad)
        return rows

    def claim_orphans(self) -> Iterator[Segment]:
        """Segments in the directory that no live process holds: each one yielded locked by us
        (``rows=None``: read them with :meth:`read`); ``finish`` or ``release`` each."""
        if not self.directory.is_dir():
            return
        paths = sorted({path for pattern in _PATTERNS for path in self.directory.glob(pattern)})
        for path in paths:
            if path.name in self._owned:
                continue
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # finished by its owner meanwhile
            except OSError:
                log.error("usage_segment_open_failed", file=path.name, exc_info=True)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live worker's
                continue
            if os.fstat(fd).st_nlink == 0:  # its owner finished it between our listing and our lock
                os.close(fd)
                continue
            self._owned.add(path.name)
            yield Segment(path=path, fd=fd, rows=None, count=-1)

    def close(self) -> None:
        """Release the active segment (its file stays, to be replayed)."""
        if self.active is not None:
            segment, self.active = self.active, None
            if segment.count == 0:
                self.finish(segment)
            else:
                self._release(segment)

    # -- files -----------------------------------------------------------------------------------
    def _open(self) -> Segment:
        name = f"usage-{time.time_ns():020d}-{self._tag}{SUFFIX}"
        path = self.directory / name
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError:
            log.error("usage_segment_create_failed", file=name, exc_info=True)
            return Segment(path=path, fd=-1, on_disk=False)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._owned.add(name)
        return Segment(path=path, fd=fd)

    def _release(self, segment: Segment) -> None:
        self._owned.discard(segment.path.name)
        if segment.fd >= 0:
            try:
                os.close(segment.fd)
            finally:
                segment.fd = -1
